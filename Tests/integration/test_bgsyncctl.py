# SPDX-License-Identifier: Apache-2.0
"""bgsyncctl against the real agent, as a user and a script would run it."""

import json
import os
import select
import signal
import subprocess
import time

from conftest import BIN, Client, PrivateBus

APP = "org.example.Chat"


def ctl(bus, *args, check=True):
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
    result = subprocess.run([str(BIN / "bgsyncctl"), *args], env=env, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"bgsyncctl {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def test_register_with_typed_options_then_inspect_and_remove(bus, agent_factory):
    agent_factory(config="[sync]\nretry-initial-delay=3600\n").start()
    client = Client(bus)
    ctl(bus, "register", APP, "outbox", "retry", "-o", "command=['sh','-c','echo hi']", "-o", "retries=uint32 5",
        "-o", "note=just text", "--network", "unmetered", "--max-attempts", "4")
    client.wait_finished("outbox")
    info = client.call("GetRegistration", APP, "outbox")
    assert info["options"]["command"] == ["sh", "-c", "echo hi"]
    assert info["options"]["retries"] == 5 and info["options"]["retries"].__class__.__name__ == "UInt32"
    assert info["options"]["note"] == "just text"
    assert info["network"] == "unmetered" and info["max-attempts"] == 4
    assert ctl(bus, "tags", APP).stdout.split() == ["outbox"]
    status = json.loads(ctl(bus, "status", APP, "outbox", "--json").stdout)
    assert status["state"] == "waiting" and status["attempts"] == 1
    ctl(bus, "unregister", APP, "outbox")
    assert ctl(bus, "tags", APP).stdout.strip() == ""


def test_state_shows_the_network_and_handlers(bus, agent):
    state = json.loads(ctl(bus, "state", "--json").stdout)
    assert state["Online"] is True
    assert "exec" in state["Handlers"]
    human = ctl(bus, "state").stdout
    assert "online" in human.lower()


def test_exit_codes_scripts_rely_on(bus, agent):
    assert ctl(bus, "status", APP, "nothing", check=False).returncode == 4
    bad = ctl(bus, "register", "not-an-app", "t", "ok", check=False)
    assert bad.returncode == 1 and "InvalidArgs" in bad.stderr
    assert ctl(bus, "frobnicate", check=False).returncode == 2
    empty = PrivateBus()
    try:
        assert ctl(empty, "tags", APP, check=False).returncode == 3
    finally:
        empty.stop()


def test_trigger_and_periodic(bus, agent_factory):
    agent_factory(config="[sync]\nretry-initial-delay=3600\nmin-periodic-interval=60\n").start()
    ctl(bus, "register-periodic", APP, "news", "ok", "--every", "1h")
    assert ctl(bus, "tags", APP, "--periodic").stdout.split() == ["news"]
    status = json.loads(ctl(bus, "status", APP, "news", "--json").stdout)
    assert status["min-interval"] == 3600
    client = Client(bus)
    ctl(bus, "trigger", APP, "news")
    client.wait_finished("news")


class LineReader:
    """Lines from a child's pipe, read from its fd into a buffer of our own: select() on a
    buffered file object misses a line already read into the object's buffer (SyncStarted and
    SyncFinished written together came back in one read, and the second was never seen)."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buffer = b""

    def read_line(self, timeout=15.0):
        """One line, "" at end of file, or an error after `timeout` seconds (never hangs the suite)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no line within {timeout} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest.decode()
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode() + "\n"


def test_monitor_prints_syncs_as_they_happen(bus, agent):
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
    monitor = subprocess.Popen([str(BIN / "bgsyncctl"), "monitor"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        # The monitor says on stderr once it is subscribed; only then can nothing be missed.
        assert "monitoring" in LineReader(monitor.stderr).read_line()
        ctl(bus, "register", APP, "watched", "ok")
        lines = []
        output = LineReader(monitor.stdout)
        while not any("watched" in line and "succeeded" in line for line in lines):
            line = output.read_line()
            assert line, "monitor exited early"
            lines.append(line)
        assert any("watched" in line and "start" in line.lower() for line in lines)
    finally:
        monitor.send_signal(signal.SIGINT)
        assert monitor.wait(timeout=10) == 0


def test_monitor_hears_every_app_again_after_the_agent_restarts(bus, agent):
    """Sync signals go only to subscribers: the monitor subscribes to every app, and again when
    a new agent takes the name."""
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
    monitor = subprocess.Popen([str(BIN / "bgsyncctl"), "monitor"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert "monitoring" in LineReader(monitor.stderr).read_line()
        agent.stop()
        agent.start()
        # Its new subscription goes out when it sees the new owner: register until one is heard.
        heard = []
        output = LineReader(monitor.stdout)
        for n in range(50):
            ctl(bus, "register", f"org.example.App{n}", "after", "ok")
            try:
                heard.append(output.read_line(timeout=0.2))
                break
            except AssertionError:
                continue
        assert heard and "org.example.App" in heard[0], heard
    finally:
        monitor.send_signal(signal.SIGINT)
        assert monitor.wait(timeout=10) == 0


def test_monitor_ends_with_a_message_and_status_3_when_the_bus_goes_away():
    """The monitor's loop stops when the bus connection drops; it then says so on stderr and
    exits 3 (the agent cannot be reached), the status `serve` ends with too."""
    own = PrivateBus()
    monitor = None
    try:
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=own.address)
        monitor = subprocess.Popen([str(BIN / "bgsyncctl"), "monitor"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, bufsize=1)
        errors = LineReader(monitor.stderr)
        assert "monitoring" in errors.read_line()
        os.kill(own.pid, signal.SIGKILL)
        assert errors.read_line() == "bgsyncctl: the bus connection was lost\n"
        assert errors.read_line() == ""  # nothing after it: no crash report
        assert monitor.wait(timeout=10) == 3
        assert monitor.stdout.read() == ""
    finally:
        if monitor is not None and monitor.poll() is None:
            monitor.kill()
            monitor.wait()
        own.stop()
