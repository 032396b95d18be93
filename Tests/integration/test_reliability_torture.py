# SPDX-License-Identifier: Apache-2.0
"""Crash torture: concurrent clients register, unregister and complete syncs while the agent is
killed with SIGKILL at random moments and restarted. After every restart:

- every periodic registration whose RegisterPeriodic got a reply is there, once;
- none whose UnregisterPeriodic got a reply comes back, and nothing appears that nobody sent;
- at the end every one-off sync whose Register got a reply has run (at least once), and none
  whose SyncFinished(succeeded) was seen ran again after it (the exec handler appends its tag
  to a file, so each run leaves a line).

BGSYNC_TORTURE_CYCLES sets the number of kills (30 by default; `make torture` runs hundreds).
"""

import os
import pathlib
import random
import shutil
import time

import dbus
import pytest
from gi.repository import GLib

from conftest import BIN, IFACE, NAME, PATH, Client, wait_until

CYCLES = int(os.environ.get("BGSYNC_TORTURE_CYCLES", "30"))
APPS = ["org.torture.A", "org.torture.B", "org.torture.C"]
IN_FLIGHT_PER_CLIENT = 6

CONFIG = """\
[sync]
retry-initial-delay=0.2
retry-factor=1
max-attempts=20
event-timeout=5
[limits]
concurrent-events=4
registrations-per-app=100000
"""


@pytest.fixture
def exec_only_plugins(tmp_path):
    """Only the exec handler, so that each of the many restarts probes one plugin."""
    directory = tmp_path / "plugins"
    directory.mkdir()
    shutil.copyfile(BIN / "libbgsync-handler-exec.so", directory / "exec.so")
    return directory


def kill_and_wait_for_its_output_to_close(agent):
    """SIGKILL, then wait until nothing holds the agent's log pipe any more (its workers die with
    it): only then may the next start reset the log reader's state."""
    agent.kill()
    with agent.changed:
        assert agent.changed.wait_for(lambda: agent.exited, 20), "the agent's workers outlived it by 20 s"


class Tag:
    """What the clients know of one registration: sent, acknowledged, removed."""

    def __init__(self, app, name, kind):
        self.app, self.name, self.kind = app, name, kind
        self.register_acked = False
        self.register_unknown = True   # sent; no reply yet, or the agent died before it
        self.unregister_sent = False
        self.unregister_acked = False
        self.unregister_unknown = False
        self.lines_at_success = None   # runs recorded in the file when SyncFinished(succeeded) came


class Torture:
    def __init__(self, bus, agent, runs_file):
        self.bus, self.agent, self.runs_file = bus, agent, runs_file
        self.tags = {}
        self.pending = 0
        self.sending = False
        self.counter = 0
        self.calls = 0
        self.observer = None
        self.clients = []
        self.errors = []

    def connect(self):
        self.clients = [(app, Client(self.bus)) for app in APPS]
        self.observer = self.clients[0][1].connection
        self.observer.add_signal_receiver(self.on_finished, "SyncFinished", IFACE, None, PATH)

    def runs(self):
        counts = {}
        if self.runs_file.exists():
            for line in self.runs_file.read_text().splitlines():
                counts[line] = counts.get(line, 0) + 1
        return counts

    def on_finished(self, app, tag, outcome, detail):
        t = self.tags.get((app, tag, "one-off"))
        if t is not None and outcome == "succeeded" and t.lines_at_success is None:
            t.lines_at_success = self.runs().get(f"{app}/{tag}", 0)

    # Calls, asynchronous: each reply (or error) sends the next while the cycle lasts.
    def send_one(self, app, client):
        self.counter += 1
        proxy = client.connection.get_object(NAME, PATH, introspect=False)
        removable = [t for t in self.tags.values()
                     if t.app == app and t.kind == "periodic" and t.register_acked and not t.unregister_sent]
        choice = random.random()
        if choice < 0.3 and removable:
            t = random.choice(removable)
            t.unregister_sent = t.unregister_unknown = True
            self.call(proxy, "UnregisterPeriodic", (app, t.name), "ss", t, "unregister", app, client)
        elif choice < 0.65:
            t = Tag(app, f"p{self.counter}", "periodic")
            self.tags[(app, t.name, t.kind)] = t
            self.call(proxy, "RegisterPeriodic",
                      (app, t.name, "exec", dbus.UInt64(3600), dbus.Dictionary({"command": "true"}, signature="sv")),
                      "sssta{sv}", t, "register", app, client)
        else:
            t = Tag(app, f"s{self.counter}", "one-off")
            self.tags[(app, t.name, t.kind)] = t
            command = dbus.Array(["/bin/sh", "-c", f'echo "$BGSYNC_APP_ID/$BGSYNC_TAG" >> {self.runs_file}'],
                                 signature="s")
            self.call(proxy, "Register", (app, t.name, "exec", dbus.Dictionary({"command": command}, signature="sv")),
                      "sssa{sv}", t, "register", app, client)

    def call(self, proxy, method, args, signature, tag, what, app, client):
        self.pending += 1
        self.calls += 1

        def done(*_):
            self.pending -= 1
            if what == "register":
                tag.register_acked, tag.register_unknown = True, False
            else:
                tag.unregister_acked, tag.unregister_unknown = True, False
            if self.sending:
                self.send_one(app, client)

        def failed(error):
            self.pending -= 1  # unknown: the agent may or may not have acted before it died
            if self.sending and error.get_dbus_name() not in (
                    "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.ServiceUnknown"):
                self.errors.append(f"{method} failed: {error.get_dbus_name()}: {error.get_dbus_message()}")

        proxy.get_dbus_method(method, IFACE)(*args, signature=signature, reply_handler=done, error_handler=failed,
                                            timeout=30)

    def load_then_kill(self, duration):
        """Keeps every client busy for `duration` seconds, then SIGKILLs the agent mid-flight."""
        self.sending = True
        for app, client in self.clients:
            for _ in range(IN_FLIGHT_PER_CLIENT):
                self.send_one(app, client)
        deadline = time.monotonic() + duration
        context = GLib.MainContext.default()
        while time.monotonic() < deadline:
            context.iteration(False) or time.sleep(0.0005)
        kill_and_wait_for_its_output_to_close(self.agent)
        self.sending = False
        wait_until(lambda: self.pending == 0, 30, "replies or errors for every call in flight")
        assert not self.errors, self.errors[:5]

    def verify_registrations(self):
        """After a restart: acknowledged registrations present once, acknowledged removals gone."""
        c = self.clients[0][1]
        checked = 0
        for app in APPS:
            present = list(c.call("GetPeriodicTags", app))
            assert len(present) == len(set(present)), f"duplicated tags for {app}: {present}"
            present = set(present)
            for t in [t for t in self.tags.values() if t.app == app and t.kind == "periodic"]:
                checked += 1
                there = t.name in present
                if t.unregister_acked:
                    assert not there, f"{app}/{t.name} came back after its UnregisterPeriodic was acknowledged"
                elif t.register_acked and not t.unregister_sent:
                    assert there, f"{app}/{t.name} was acknowledged but is gone after SIGKILL"
                # The unknown ones settle to what the agent kept.
                if t.register_unknown:
                    t.register_acked, t.register_unknown = there, False
                if t.unregister_unknown:
                    t.unregister_acked, t.unregister_unknown = not there, False
                if not t.register_acked or t.unregister_acked:
                    assert not there
            known = {t.name for t in self.tags.values() if t.app == app and t.kind == "periodic"}
            assert present <= known, f"registrations nobody made: {present - known}"
        return checked


def test_sigkill_torture(agent_factory, bus, tmp_path, exec_only_plugins):
    random.seed(int(os.environ.get("BGSYNC_TORTURE_SEED", str(os.getpid()))))
    agent = agent_factory(config=CONFIG, plugin_dir=exec_only_plugins).start()
    t = Torture(bus, agent, tmp_path / "runs.txt")
    t.connect()
    started = time.monotonic()
    checked = 0
    for _ in range(CYCLES):
        t.load_then_kill(random.uniform(0.05, 0.6))
        agent.start()
        checked += t.verify_registrations()
    # Let every acknowledged one-off sync run, then look at the runs file.
    c = t.clients[0][1]
    wait_until(lambda: all(len(c.call("GetTags", app)) == 0 for app in APPS), 120, "every one-off sync to finish")
    runs = t.runs()
    one_offs = [x for x in t.tags.values() if x.kind == "one-off"]
    acked = [x for x in one_offs if x.register_acked]
    succeeded_seen = [x for x in one_offs if x.lines_at_success is not None]
    for x in acked:
        assert runs.get(f"{x.app}/{x.name}", 0) >= 1, f"{x.app}/{x.name} was acknowledged but never ran"
    for x in succeeded_seen:
        assert runs.get(f"{x.app}/{x.name}", 0) == x.lines_at_success, \
            f"{x.app}/{x.name} ran again after its success was recorded"
    repeats = sum(runs.get(f"{x.app}/{x.name}", 0) - 1 for x in acked if runs.get(f"{x.app}/{x.name}", 0) > 1)
    elapsed = time.monotonic() - started
    print(f"\ntorture: {CYCLES} SIGKILL cycles survived in {elapsed:.1f} s; {t.calls} calls sent; "
          f"{checked} periodic registration checks after restarts; {len(acked)} acknowledged one-off syncs all ran, "
          f"{len(succeeded_seen)} seen succeeding never ran again; {repeats} re-runs of syncs cut off mid-event "
          f"(at-least-once)")
