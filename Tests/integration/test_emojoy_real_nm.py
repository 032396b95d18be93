# SPDX-License-Identifier: Apache-2.0
"""The web article's Emojoy story, for real: the agent in a network namespace follows a real
NetworkManager; the user goes offline, sends a chat message (the app puts it in its outbox and
registers an upload), closes the app, goes online, and the message reaches the server exactly
once with no app running. Needs root (skips with the reason otherwise)."""

import http.server
import os
import subprocess
import threading

from conftest import BIN, Client, wait_until
from netns import real_networkmanager  # noqa: F401  (the fixture)

APP = "org.example.Emojoy"


class ChatServer(http.server.ThreadingHTTPServer):
    def __init__(self, address):
        self.messages = []
        self.arrived = threading.Event()
        super().__init__(address, ChatHandler)


class ChatHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.messages.append(body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.arrived.set()

    def log_message(self, *args):
        pass


def test_a_message_sent_offline_arrives_once_when_online(real_networkmanager, agent_factory, bus, tmp_path):
    nm = real_networkmanager
    server = ChatServer((nm.HOST_IP, 0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        nm.offline()
        agent = agent_factory(network="networkmanager", env=nm.env(),
                              launcher=lambda argv, env, **kw: nm.run_in_ns(argv, env=env, **kw)).start()
        watcher = Client(bus)  # only watches the signals; the app below is gone before we go online
        assert watcher.prop("Online") == False  # noqa: E712

        # The app: writes the message to its outbox (temp name, then rename), registers, exits.
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        (outbox / ".1.part").write_text('{"text": "🐱💬"}')
        os.rename(outbox / ".1.part", outbox / "0001.json")
        os.utime(outbox / "0001.json", (1, 1))
        app = subprocess.run(
            [str(BIN / "bgsyncctl"), "register", APP, "outbox", "upload", "-o", f"outbox={outbox}",
             "-o", f"url=http://{nm.HOST_IP}:{server.server_port}/messages"],
            env=dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address), capture_output=True, text=True)
        assert app.returncode == 0, app.stderr
        assert watcher.call("GetRegistration", APP, "outbox")["state"] == "pending"
        assert server.messages == []

        nm.online()
        assert server.arrived.wait(30), "the message never reached the server:\n" + agent.log_text()
        watcher.wait_finished("outbox")
        assert [f[2] for f in watcher.finished_for("outbox")] == ["succeeded"]
        assert server.messages == ['{"text": "🐱💬"}'.encode()], "exactly once"
        assert list(outbox.glob("*.json")) == []
        wait_until(lambda: watcher.prop("Online"), 5, "Online=true")
    finally:
        server.shutdown()
