# SPDX-License-Identifier: Apache-2.0
"""Handlers as the agent runs them: in worker processes, with the time cap, and with the shipped
handlers doing real work (a command, an upload to a real HTTP server on loopback)."""

import http.server
import os
import threading

import dbus

from conftest import NAME, PATH, Client

APP = "org.example.Chat"


def ping(client):
    proxy = client.connection.get_object(NAME, PATH, introspect=False)
    proxy.Ping(dbus_interface="org.freedesktop.DBus.Peer")


def test_a_crashing_handler_fails_the_attempt_not_the_agent(client):
    client.register(APP, "boom", "segfault")
    finished = client.wait_finished("boom")
    assert finished[0][2:] == ("retry-scheduled", "crashed")
    ping(client)
    client.register(APP, "after", "ok")
    assert client.wait_finished("after")[0][2] == "succeeded"


def test_a_handler_past_the_time_cap_is_stopped(agent_factory, bus):
    agent_factory(config="[sync]\nevent-timeout=0.5\nretry-initial-delay=100\n").start()
    c = Client(bus)
    c.register(APP, "slow", "hang")
    finished = c.wait_finished("slow", timeout=10)
    assert finished[0][2:] == ("retry-scheduled", "timeout")
    assert c.call("GetRegistration", APP, "slow")["last-error"] == "timeout"
    ping(c)


def test_back_off_then_last_chance_then_failed(agent_factory, bus):
    agent_factory(config="[sync]\nretry-initial-delay=0.1\nretry-factor=2\nmax-attempts=3\n").start()
    c = Client(bus)
    c.register(APP, "doomed", "retry", {"retry-after": dbus.Int32(0)})
    finished = c.wait_finished("doomed", count=3)
    assert [s[2:] for s in c.started] == [(1, False), (2, False), (3, True)]
    assert [f[2] for f in finished] == ["retry-scheduled", "retry-scheduled", "failed"]
    assert c.call("GetTags", APP) == []


def test_broken_plugins_are_refused_with_a_reason(agent, client):
    handlers = list(client.prop("Handlers"))
    assert "wrong-abi" not in handlers
    log = agent.log_text()
    assert "test-wrong-abi.so" in log and "test-no-symbol.so" in log


def test_exec_runs_the_command_with_the_event_in_its_environment(client, tmp_path):
    out = tmp_path / "env.txt"
    script = f'echo "$BGSYNC_APP_ID $BGSYNC_TAG $BGSYNC_ATTEMPT $BGSYNC_LAST_CHANCE" > {out}'
    client.register(APP, "cmd", "exec", {"command": dbus.Array(["sh", "-c", script], signature="s")})
    assert client.wait_finished("cmd")[0][2] == "succeeded"
    assert out.read_text().split() == [APP, "cmd", "1", "0"]


class Inbox(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Inbox.received.append(body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_upload_drains_the_outbox_after_the_client_is_gone(client, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Inbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        (outbox / "0001.json").write_text('{"text": "🐱"}')
        os.utime(outbox / "0001.json", (1, 1))  # written long ago: not a file still being written
        client.register(APP, "outbox", "upload",
                        {"outbox": str(outbox), "url": f"http://127.0.0.1:{server.server_port}/messages"})
        assert client.wait_finished("outbox")[0][2] == "succeeded"
        assert Inbox.received == [b'{"text": "\xf0\x9f\x90\xb1"}']
        assert list(outbox.glob("*.json")) == []
    finally:
        server.shutdown()
