# SPDX-License-Identifier: Apache-2.0
"""The `app` handler with a real dbus-daemon doing real activation: the bus's configuration lists
a services directory holding the apps' .service files, the agent calls org.bgsync.App.Sync on
the app id, and the bus starts the app. The example app (examples/python-gio/chat.py) sends its
outbox to a real HTTP server on loopback; tests/integration/sync_app.py stands in for apps that
answer retry, never answer, exit mid-call or answer nonsense. The calls are watched on the bus
itself (eavesdropping, which the private bus allows)."""

import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import threading
import time

import dbus
import pytest

from conftest import BIN, ROOT, Agent, Client, PrivateBus, wait_until
from test_network_dbusmock import CONNECTED_GLOBAL, DISCONNECTED, nm  # noqa: F401  (the offline NetworkManager mock)

CHAT = "org.example.Chat"
SYNC_APP = pathlib.Path(__file__).parent / "sync_app.py"
APP_XML = ROOT / "dbus" / "org.bgsync.App.xml"
NEEDS_ROOT = "needs root: builds a mount namespace with unshare/chroot, as Flatpak does"


def config(event_timeout=20, retry_delay=0.2):
    return f"""\
[sync]
retry-initial-delay={retry_delay}
retry-factor=2
event-timeout={event_timeout}
[limits]
concurrent-events=4
"""


class ChatServer:
    """A real HTTP server on loopback that records the bodies POSTed to it."""

    def __init__(self):
        self.received = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/messages"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Apps:
    """The services directory the private bus activates from, and the apps it started."""

    def __init__(self, root):
        self.services = root / "services"
        self.services.mkdir()
        self.data_home = root / "data"
        self.data_home.mkdir()
        self.logs = root / "app-logs"
        self.logs.mkdir()
        self.env = dict(os.environ, XDG_DATA_HOME=str(self.data_home), BGSYNC_APP_XML=str(APP_XML))
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)

    def install_example(self, example, app_id):
        """An example, built and installed as its Makefile does, into a prefix inside the test's
        directory (the C one built from a copy, against this tree's interface XML)."""
        prefix = self.data_home.parent / "prefix"
        source = ROOT / "examples" / example
        if example == "c-gdbus":
            source = shutil.copytree(source, self.data_home.parent / example)
        subprocess.run(["make", "-s", "-C", str(source), "install", f"PREFIX={prefix}", f"INTERFACE={APP_XML}"],
                       check=True)
        service = prefix / "share" / "dbus-1" / "services" / f"{app_id}.service"
        (self.services / service.name).write_text(service.read_text())
        return prefix / "bin" / app_id

    def install_stand_in(self, app_id, mode, *args):
        log = self.logs / f"{app_id}.jsonl"
        words = " ".join(["/usr/bin/python3", str(SYNC_APP), app_id, str(log), mode, *args])
        (self.services / f"{app_id}.service").write_text(f"[D-BUS Service]\nName={app_id}\nExec={words}\n")
        return log

    def calls(self, app_id):
        log = self.logs / f"{app_id}.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def stop_all(self):
        for pid_file in self.logs.glob("*.pid"):
            try:
                os.kill(int(pid_file.read_text()), 9)
            except (ProcessLookupError, ValueError):
                pass


class SyncCalls:
    """Every org.bgsync.App.Sync call on the bus, seen by eavesdropping: (destination, path, tag, event)."""

    def __init__(self, bus):
        self.connection = bus.connect()
        self.seen = []
        self.connection.add_match_string("eavesdrop='true',type='method_call',interface='org.bgsync.App'")
        self.connection.add_message_filter(self._filter)

    def _filter(self, connection, message):
        if isinstance(message, dbus.lowlevel.MethodCallMessage) and message.get_interface() == "org.bgsync.App":
            tag, event = message.get_args_list()
            self.seen.append((message.get_destination(), message.get_path(), str(tag),
                              {str(k): v for k, v in event.items()}))


@pytest.fixture
def apps(tmp_path):
    a = Apps(tmp_path)
    yield a
    a.stop_all()


@pytest.fixture
def bus(apps):
    """The session bus for this module: it can start the apps of `apps.services`."""
    b = PrivateBus(service_dirs=[apps.services], env=apps.env)
    yield b
    b.stop()


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.stop()


class OwnerChanges(list):
    """NameOwnerChanged of `name`, as (old, new) pairs, recorded from now on."""

    def __init__(self, bus, name):
        super().__init__()
        self.connection = bus.connect()  # kept: the receiver lives as long as its connection
        self.connection.add_signal_receiver(
            lambda n, old, new: self.append((str(old), str(new))), "NameOwnerChanged", "org.freedesktop.DBus",
            "org.freedesktop.DBus", "/org/freedesktop/DBus", arg0=name)


@pytest.mark.parametrize("example, app_id", [("python-gio", CHAT), ("c-gdbus", "org.example.ChatC")])
def test_the_bus_starts_the_example_app_which_sends_its_outbox_when_the_network_returns(
        apps, bus, nm, agent_factory, server, example, app_id):
    app = apps.install_example(example, app_id)
    agent = agent_factory(network="networkmanager", env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=nm.bus.address),
                          config=config()).start()
    client = Client(bus)
    calls = SyncCalls(bus)
    owners = OwnerChanges(bus, app_id)
    # Offline, the app not running: it queues a message, registers, and quits.
    env = dict(apps.env, DBUS_SESSION_BUS_ADDRESS=bus.address)
    sent = subprocess.run([str(app), "send", "--server", server.url, "hello from the outbox"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert client.call("GetRegistration", app_id, "outbox")["handler"] == "app"
    assert client.call("GetRegistration", app_id, "outbox")["state"] == "pending"
    assert not client.connection.name_has_owner(app_id), "the app quit after registering"
    outbox = apps.data_home / app_id / "outbox"
    assert len(list(outbox.iterdir())) == 1
    # Online: the agent calls the app, the bus starts it, it sends the outbox and answers.
    nm.set_state(CONNECTED_GLOBAL)
    finished = client.wait_finished("outbox", timeout=30)
    assert finished == [(app_id, "outbox", "succeeded", "sent 1 message(s)")]
    assert server.received == ["hello from the outbox"]
    assert list(outbox.iterdir()) == []
    destination, path, tag, event = calls.seen[0]
    assert (destination, path, tag) == (app_id, "/" + app_id.replace(".", "/"), "outbox")
    assert event["attempt"] == 1 and event["last-chance"] is not True and not event["periodic"]
    assert event["server"] == server.url, "the registration's own options reach the app"
    assert abs(event["deadline"] / 1e6 - (time.time() + 20)) < 10, "the deadline is the time cap from now"
    assert len(calls.seen) == 1
    # The bus started the app (an owner appeared), and it quit again once it had answered.
    wait_until(lambda: len(owners) >= 2, 15, f"the app to take its name and quit again: {owners}")
    assert owners[0][0] == "" and owners[0][1].startswith(":") and owners[-1][1] == ""
    with pytest.raises(dbus.DBusException, match="NotFound"):
        client.call("GetRegistration", app_id, "outbox")
    assert "attempt 1 with app" in agent.log_text()


def test_an_app_answering_retry_gets_back_off_and_a_last_chance(apps, bus, agent_factory):
    app_id = "org.example.Retry"
    apps.install_stand_in(app_id, "answer", "retry", "0.8")
    agent_factory(config=config()).start()
    client = Client(bus)
    client.register(app_id, "outbox", "app", {"max-attempts": dbus.UInt32(3)})
    finished = client.wait_finished("outbox", count=3, timeout=30)
    assert [f[2] for f in finished] == ["retry-scheduled", "retry-scheduled", "failed"]
    assert all(f[3] == "answered retry as told" for f in finished)
    assert [(s[2], bool(s[3])) for s in client.started] == [(1, False), (2, False), (3, True)]
    events = [c["event"] for c in apps.calls(app_id)]
    assert [(e["attempt"], e["last-chance"]) for e in events] == [(1, False), (2, False), (3, True)]
    # The app's retry-after (0.8 s) is longer than the configured back-off (0.2 s, then 0.4 s),
    # so it sets the wait; the deadline of each event is later than the one before.
    assert events[1]["deadline"] - events[0]["deadline"] >= 0.8e6
    assert events[2]["deadline"] - events[1]["deadline"] >= 0.8e6


def test_an_app_that_never_answers_is_cut_at_the_cap(apps, bus, agent_factory):
    app_id = "org.example.Hang"
    apps.install_stand_in(app_id, "hang")
    cap = 3
    agent = agent_factory(config=config(event_timeout=cap)).start()
    client = Client(bus)
    started = time.monotonic()
    client.register(app_id, "outbox", "app")
    finished = client.wait_finished("outbox", timeout=cap * 10)
    elapsed = time.monotonic() - started
    assert finished[0][2:] == ("retry-scheduled", "timeout")
    assert elapsed >= cap * 0.95, f"cut after {elapsed:.2f} s, before the {cap} s cap"
    print(f"\napp handler: a hung app cut after {elapsed:.2f} s ({cap} s cap)")
    assert len(apps.calls(app_id)) == 1
    assert "did not answer Sync within the time cap" in agent.log_text()
    assert client.call("GetRegistration", app_id, "outbox")["last-error"] == "timeout"


def test_an_app_that_exits_mid_call_ends_the_attempt_at_once(apps, bus, agent_factory):
    app_id = "org.example.Crash"
    apps.install_stand_in(app_id, "exit")
    cap = 30
    agent_factory(config=config(event_timeout=cap)).start()
    client = Client(bus)
    started = time.monotonic()
    client.register(app_id, "outbox", "app")
    finished = client.wait_finished("outbox", timeout=cap)
    elapsed = time.monotonic() - started
    assert finished[0][2] == "retry-scheduled"
    assert finished[0][3].startswith("exited: "), finished
    assert len(apps.calls(app_id)) == 1, "the app had the call when it exited"
    # The attempt ended when the app left, not at the cap: well under a tenth of it.
    assert elapsed / cap < 0.1, f"{elapsed:.2f} s of a {cap} s cap"
    print(f"\napp handler: an app exiting mid-call ended the attempt after {elapsed:.2f} s "
          f"({elapsed / cap:.3f} of the {cap} s cap, activation included)")


def test_an_app_without_a_service_file_is_warned_about_and_fails_clearly(bus, agent_factory):
    app_id = "org.example.Missing"
    agent = agent_factory(config=config()).start()
    client = Client(bus)
    client.register(app_id, "outbox", "app")
    agent.wait_for_log(f"{app_id}/outbox uses handler 'app', but {app_id} is not running")
    finished = client.wait_finished("outbox")
    assert finished[0][2] == "retry-scheduled"
    assert f"no service file {app_id}.service" in finished[0][3]
    assert f"{app_id}.service" in client.call("GetRegistration", app_id, "outbox")["last-error"]


def test_an_app_that_is_running_or_activatable_is_not_warned_about(apps, bus, agent_factory):
    apps.install_stand_in("org.example.Fine", "answer", "success")
    agent = agent_factory(config=config()).start()
    client = Client(bus)
    client.register("org.example.Fine", "outbox", "app")
    assert client.wait_finished("outbox")[0][2] == "succeeded"
    client.register("org.example.Missing", "other", "app")
    agent.wait_for_log("org.example.Missing/other uses handler 'app'")  # the later check, as a marker
    assert "org.example.Fine/outbox uses handler 'app'" not in agent.log_text()


@pytest.mark.parametrize("mode, args, detail", [
    ("answer", ["maybe"], "answered Sync with the unknown outcome 'maybe' (expected success, retry or failure)"),
    ("bad-reply", [], "answered Sync with a reply of the wrong type: the reply has signature 's', not 'sa{sv}'"),
])
def test_bad_answers_fail_the_sync_saying_what_was_wrong(apps, bus, agent_factory, mode, args, detail):
    app_id = "org.example.Odd"
    apps.install_stand_in(app_id, mode, *args)
    agent_factory(config=config()).start()
    client = Client(bus)
    client.register(app_id, "outbox", "app")
    assert client.wait_finished("outbox")[0][2:] == ("failed", f"{app_id} {detail}")


def test_a_flood_of_detail_is_cut_and_escaped_before_it_reaches_signals_and_the_log(apps, bus, agent_factory):
    app_id = "org.example.Loud"
    apps.install_stand_in(app_id, "flood-detail")
    agent = agent_factory(config=config()).start()
    client = Client(bus)
    client.register(app_id, "outbox", "app")
    detail = client.wait_finished("outbox")[0][3]
    assert len(detail.encode()) <= 1024 + len("…".encode())
    assert detail.startswith("line\\u{a}\\u{1b}[31mred") and detail.endswith("…")
    assert not any(ord(c) < 0x20 for c in detail)
    agent.wait_for_log(f"{app_id}/outbox: failed: line")
    assert "\x1b" not in agent.log_text()


def test_the_object_path_called_is_the_one_gapplication_exports(bus, agent_factory):
    """A real GApplication with a '-' in its id, which does not implement org.bgsync.App: GLib
    itself says where it lives, the agent calls it there, and its refusal fails the sync clearly."""
    app_id = "org.example.my-app"
    app = subprocess.Popen(["/usr/bin/python3", "-c", f"""
import sys
from gi.repository import Gio, GLib
app = Gio.Application(application_id={app_id!r})
app.register(None)
print(app.get_dbus_object_path(), flush=True)
GLib.MainLoop().run()"""], env=dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address),
                           stdout=subprocess.PIPE, text=True)
    try:
        glib_path = app.stdout.readline().strip()
        agent_factory(config=config()).start()
        client = Client(bus)
        calls = SyncCalls(bus)
        client.register(app_id, "outbox", "app")
        finished = client.wait_finished("outbox")
        assert calls.seen[0][:2] == (app_id, glib_path) == (app_id, "/org/example/my_app")
        assert finished[0][2:] == (
            "failed", f"{app_id} does not implement org.bgsync.App.Sync at /org/example/my_app (UnknownMethod)")
    finally:
        app.kill()
        app.wait()


def test_the_handler_is_listed_and_sandbox_safe(bus, agent_factory):
    agent_factory(config=config()).start()
    assert "app" in Client(bus).prop("Handlers")


def test_a_flatpak_app_may_register_app_for_its_own_id_only(bus, agent_factory, tmp_path):
    from test_isolation import run_in_flatpak_sandbox

    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    agent_factory(config=config(), network="networkmanager",
                  env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/no-system-bus")).start()
    own, other = "org.example.Flat", "org.example.Other"
    results = run_in_flatpak_sandbox(tmp_path, bus, own, [
        ["Register", [own, "outbox", "app", {}], "sssa{sv}"],
        ["Register", [other, "outbox", "app", {}], "sssa{sv}"],
        ["RegisterPeriodic", [other, "news", "app", 3600, {}], "sssta{sv}"],
    ])
    assert results[0] == ["ok", None]
    assert results[1][0] == results[2][0] == "org.bgsync.Error.AccessDenied"
    assert own in results[1][1]
    client = Client(bus)
    assert client.call("GetTags", own) == ["outbox"] and client.call("GetTags", other) == []


def readme_block(heading):
    """The first ```sh block after `heading` in README.md, as printed."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_the_readme_serve_example_runs_as_printed(bus, agent_factory, tmp_path):
    # The default back-off (5 min), as a reader has it: the retry waits for `serve` to trigger it.
    agent_factory(config=config(retry_delay=300)).start()
    client = Client(bus)
    script = readme_block("### Watch the contract with `bgsyncctl serve`")
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", DBUS_SESSION_BUS_ADDRESS=bus.address)
    out = subprocess.run(["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    # The first attempt found no app (retry-scheduled); serve asked for the next at once.
    assert re.search(r"^Sync outbox attempt=2 .*server='https://chat.example.org/messages' -> success$",
                     out.stdout, re.M), out.stdout
    assert [f[2] for f in client.wait_finished("outbox", count=2)] == ["retry-scheduled", "succeeded"]
    assert out.stdout.rstrip().endswith("-> success"), "and `bgsyncctl tags` lists nothing afterwards"


def test_the_readme_example_app_runs_as_printed(tmp_path):
    """The README's example-app block, line for line, with HOME in the test's directory. The
    block's server listens on its fixed port 8765: the bus (and so the app it starts) and the
    block run in a network namespace of their own, so nothing else on the machine is in the way."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a network namespace keeps the example's fixed port 8765 private")
    home = tmp_path / "home"
    services = home / ".local" / "share" / "dbus-1" / "services"
    services.mkdir(parents=True)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ, HOME=str(home), PATH=f"{home}/.local/bin:{BIN}:{os.environ['PATH']}")
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "DBUS_SESSION_BUS_ADDRESS"):
        env.pop(name, None)
    bus = PrivateBus(service_dirs=[services], env=env,
                     wrapper=["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'])
    server_pid = agent = None
    try:
        (tmp_path / "agent").mkdir()
        # No plugins at all: `app` is built into the agent.
        agent = Agent(bus, tmp_path / "agent", plugin_dir=tmp_path / "agent", config=config(event_timeout=30))
        agent.start()
        client = Client(bus)
        script = readme_block("[`examples/python-gio/`](examples/python-gio/) is a complete app")
        run_env = dict(env, DBUS_SESSION_BUS_ADDRESS=bus.address)
        out = subprocess.run(["nsenter", f"--target={bus.pid}", "--net", "sh", "-ec", script], env=run_env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        server_pid = int(re.search(r"^(\d+)$", out.stdout, re.M).group(1))
        finished = client.wait_finished("outbox", timeout=30)
        assert finished == [(CHAT, "outbox", "succeeded", "sent 1 message(s)")]
        assert (tmp_path / "chat-server.log").read_text() == "hello from the outbox\n"
        assert (home / ".local" / "bin" / CHAT).exists()
    finally:
        if agent:
            agent.stop()
        if server_pid:
            os.kill(server_pid, 9)
        bus.stop()


def test_serve_answers_as_told_prints_json_and_will_not_take_a_name_in_use(bus, agent_factory):
    agent_factory(config=config(retry_delay=300)).start()
    client = Client(bus)
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
    serve = subprocess.Popen([str(BIN / "bgsyncctl"), "serve", "org.example.Dev", "--outcome", "retry",
                              "--retry-after", "600", "--detail", "not yet", "--count", "1", "--json"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: client.connection.name_has_owner("org.example.Dev"), 15, "serve to own its name")
        second = subprocess.run([str(BIN / "bgsyncctl"), "serve", "org.example.Dev"], env=env,
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 1 and "already owned" in second.stderr
        client.register("org.example.Dev", "outbox", "app", {"n": dbus.UInt32(7)})
        out, err = serve.communicate(timeout=30)
    finally:
        serve.kill()
    assert serve.returncode == 0, err
    call = json.loads(out)
    assert (call["tag"], call["attempt"], call["last_chance"], call["options"]) == ("outbox", 1, False, {"n": 7})
    assert call["outcome"] == "retry"
    assert client.wait_finished("outbox")[0][2:] == ("retry-scheduled", "not yet")
    # The app's retry-after (600 s) is longer than the back-off (300 s): it sets the wait.
    assert client.call("GetRegistration", "org.example.Dev", "outbox")["next-attempt"] >= time.time() + 590


def test_an_app_still_syncing_when_the_network_drops_is_interrupted_after_the_grace_period(
        apps, bus, nm, agent_factory):
    app_id = "org.example.Hang"
    apps.install_stand_in(app_id, "hang")  # takes Sync and never answers: it cannot be told to stop
    nm.set_state(CONNECTED_GLOBAL)
    agent = agent_factory(network="networkmanager", env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=nm.bus.address),
                          config=config(event_timeout=60) + "[sync]\ninterrupt-grace-period=0.5\n").start()
    client = Client(bus)
    wait_until(lambda: client.prop("Online"), 10, "online")
    client.register(app_id, "outbox", "app")
    wait_until(lambda: client.started, 15, "SyncStarted")
    stopped = time.monotonic()
    nm.set_state(DISCONNECTED)
    finished = client.wait_finished("outbox", timeout=15)
    elapsed = time.monotonic() - stopped
    assert finished[0][2:] == ("interrupted", "interrupted (the app did not answer in time)")
    assert 0.4 < elapsed < 10, f"dropped {elapsed:.2f} s after the drop, the grace period being 0.5 s"
    registration = client.call("GetRegistration", app_id, "outbox")
    assert registration["attempts"] == 0 and registration["state"] == "pending"
    assert len(apps.calls(app_id)) == 1
