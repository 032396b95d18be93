# SPDX-License-Identifier: Apache-2.0
"""The user decides: apps switched off in the desktop's permission store do not sync.

A real xdg-permission-store (xdg-desktop-portal's) on the private bus, started by D-Bus
activation from a service file as on a desktop, or by hand with the bus address; the real agent;
GNOME Settings' "Run in background" switch as it writes it (SetPermission on table
`background`), `flatpak permission-set bgsync bgsync APP no` as it writes it (SetPermission on
table `bgsync`), and `bgsyncctl allow/deny/apps`. The agent says what it follows in its log
("switched off by the user: APP", "switched on again by the user: APP"): the tests wait on
those lines, never on a guess of time.
"""

import json
import os
import pathlib
import signal
import subprocess
import time

import dbus
import pytest
from gi.repository import GLib

from conftest import BIN, NAME, Agent, Client, PrivateBus, wait_until
from test_isolation import FLAT, home, isolated_agent, run_in_flatpak_sandbox  # noqa: F401 (fixtures)

STORE = "/usr/libexec/xdg-permission-store"
PS_NAME = "org.freedesktop.impl.portal.PermissionStore"
PS_PATH = "/org/freedesktop/impl/portal/PermissionStore"
APP = "org.example.Held"
OTHER = "org.example.Free"
SECRET = "org.example.Secret"

pytestmark = pytest.mark.skipif(not os.access(STORE, os.X_OK), reason=f"needs {STORE} (Debian: xdg-desktop-portal)")


def store_service_dir(directory):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{PS_NAME}.service").write_text(f"[D-BUS Service]\nName={PS_NAME}\nExec={STORE}\n")
    return directory


def store_pid(connection):
    return int(connection.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                        "GetConnectionUnixProcessID", "s", [PS_NAME]))


def wait_gone(pid, timeout=10.0):
    """Waits for a process we did not start as a child (the bus started it) to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # pytest is a child subreaper (conftest.py): the bus's orphaned child is reparented
            # to it, and ends as its zombie, which kill(pid, 0) would still find.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass  # not reparented to us (yet)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)  # no child to wait on: poll the pid's existence, with a deadline
    return False


class StoreBus:
    """The private bus's side of the permission store: what GNOME Settings and flatpak do."""

    def __init__(self, bus):
        self.connection = bus.connect()

    @property
    def store(self):
        return dbus.Interface(self.connection.get_object(PS_NAME, PS_PATH), PS_NAME)

    def set(self, table, app, permissions):
        """SetPermission(table, create, id = table, app, permissions): GNOME Settings' switch on
        table `background`, `flatpak permission-set bgsync bgsync APP no` on table `bgsync`."""
        self.store.SetPermission(table, True, table, app, dbus.Array(permissions, signature="s"))

    def lookup(self, table):
        try:
            permissions, _ = self.store.Lookup(table, table)
        except dbus.DBusException as error:
            if error.get_dbus_name() == "org.freedesktop.portal.Error.NotFound":
                return {}
            raise
        return {str(app): [str(p) for p in values] for app, values in permissions.items()}

    def pid(self):
        return store_pid(self.connection)


@pytest.fixture
def store_data(tmp_path):
    directory = tmp_path / "xdg-data"
    directory.mkdir()
    return directory


@pytest.fixture
def bus(tmp_path, store_data):
    """A private bus that can start xdg-permission-store, keeping its data under the test's
    directory (XDG_DATA_HOME/flatpak/db): this bus replaces conftest's for this module."""
    b = PrivateBus(service_dirs=[str(store_service_dir(tmp_path / "services"))],
                   env=dict(os.environ, XDG_DATA_HOME=str(store_data)))
    probe = b.connect()
    yield b
    pid = None
    try:
        pid = store_pid(probe)
    except dbus.DBusException:
        pass
    b.stop()
    if pid is not None and not wait_gone(pid):  # the store leaves with its bus; make sure
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def store(bus):
    return StoreBus(bus)


def pump_until(moment):
    """Lets the bus's messages in until the wall clock reaches `moment` (Unix seconds): for
    asserting that something did not happen by a time the agent itself gave."""
    fired = []
    GLib.timeout_add(max(1, int((moment - time.time()) * 1000) + 1), lambda: fired.append(1) or False)
    wait_until(lambda: bool(fired), max(0, moment - time.time()) + 5, f"the clock to reach {moment}")


def count_in_log(agent, text):
    return agent.output.count(text.encode())


def wait_for_log_count(agent, text, count, timeout=15.0):
    """Waits until the agent logged `text` at least `count` times."""
    with agent.changed:
        agent.changed.wait_for(lambda: count_in_log(agent, text) >= count or agent.exited, timeout)
        if count_in_log(agent, text) >= count:
            return
    raise AssertionError(f"agent logged {text!r} {count_in_log(agent, text)} times, not {count}:\n{agent.log_text()}")


def ctl(bus, *args, check=True):
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
    result = subprocess.run([str(BIN / "bgsyncctl"), *args], env=env, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"bgsyncctl {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def error_name(call):
    with pytest.raises(dbus.DBusException) as caught:
        call()
    return caught.value.get_dbus_name()


def list_apps(client):
    return {str(app): {str(k): v for k, v in fields.items()} for app, fields in client.call("ListApps").items()}


def off(app):
    return f"switched off by the user: {app}"


def on(app):
    return f"switched on again by the user: {app}"


def test_gnome_settings_switch_holds_the_next_sync_and_lets_the_running_one_finish(agent_factory, bus, store):
    agent = agent_factory().start()
    client = Client(bus)
    client.call("RegisterPeriodic", APP, "tick", "stoppable", dbus.UInt64(1),
                dbus.Dictionary({"seconds": dbus.Double(1.5)}, signature="sv"), signature="sssta{sv}")
    wait_until(lambda: len(client.started) == 1, 15, "the first periodic sync")
    # GNOME Settings: "Run in background" off, while the sync runs.
    store.set("background", APP, ["no"])
    agent.wait_for_log(off(APP))
    # It was not stopped: it ran to its end and succeeded.
    finished = client.wait_finished("tick")
    assert finished[0][2:] == ("succeeded", "not stopped (cancelled=false)")
    registration = client.call("GetRegistration", APP, "tick")
    assert registration["allowed"] is False or registration["allowed"] == dbus.Boolean(False)
    # The next one is held: its due time passes and nothing starts, and no attempt is spent.
    due = int(registration["next-attempt"])
    pump_until(due + 1.5)  # signals keep arriving meanwhile: a start would be seen
    assert len(client.started) == 1, "a switched-off app's periodic sync started"
    registration = client.call("GetRegistration", APP, "tick")
    assert registration["attempts"] == 0 and registration["state"] in ("pending", "waiting")
    assert error_name(lambda: client.register(APP, "new", "ok")) == "org.bgsync.Error.NotAllowed"
    assert error_name(lambda: client.call("Trigger", APP, "tick")) == "org.bgsync.Error.NotAllowed"
    # Another app is not concerned.
    client.register(OTHER, "mail", "ok")
    client.wait_finished("mail")
    # Switched on again: the overdue sync runs at once.
    store.set("background", APP, ["yes"])
    agent.wait_for_log(on(APP))
    wait_until(lambda: len([s for s in client.started if s[0] == APP]) >= 2, 10, "the held sync, once on again")
    assert [s for s in client.started if s[0] == APP][1][:3] == (APP, "tick", 1)


def test_bgsyncctl_and_flatpak_permission_set_write_the_same_switch(agent_factory, bus, store):
    agent = agent_factory().start()
    client = Client(bus)
    # bgsyncctl deny: the store says no, the agent follows, ListApps and bgsyncctl apps agree.
    ctl(bus, "deny", APP)
    assert store.lookup("bgsync") == {APP: ["no"]}
    agent.wait_for_log(off(APP))
    assert error_name(lambda: client.register(APP, "outbox", "ok")) == "org.bgsync.Error.NotAllowed"
    # flatpak permission-set bgsync bgsync APP yes, as flatpak writes it.
    store.set("bgsync", APP, ["yes"])
    agent.wait_for_log(on(APP))
    client.register(APP, "outbox", "ok")
    client.wait_finished("outbox")
    # flatpak permission-set bgsync bgsync APP no, then bgsyncctl allow.
    store.set("bgsync", APP, ["no"])
    wait_for_log_count(agent, off(APP), 2)
    apps = json.loads(ctl(bus, "apps", "--json").stdout)
    assert apps[APP]["allowed"] is False
    line = next(l for l in ctl(bus, "apps").stdout.splitlines() if l.startswith(APP))
    assert " off " in line and "last sync" in line and "succeeded" in line, line
    result = ctl(bus, "allow", APP)
    assert store.lookup("bgsync") == {APP: ["yes"]}
    assert "still switched off" not in result.stderr
    wait_for_log_count(agent, on(APP), 2)
    assert json.loads(ctl(bus, "apps", "--json").stdout)[APP]["allowed"] is True
    # GNOME Settings' switch still counts: bgsyncctl allow says so rather than pretend.
    store.set("background", APP, ["no"])
    wait_for_log_count(agent, off(APP), 3)
    result = ctl(bus, "allow", APP)
    assert "still switched off" in result.stderr
    assert json.loads(ctl(bus, "apps", "--json").stdout)[APP]["allowed"] is False


def test_the_store_restarting_is_followed(agent_factory, bus, store, tmp_path):
    """Activated store killed: the agent re-reads (re-activating it) and hears the new
    instance's changes. Then a store started by hand on other data replaces it: the agent
    re-reads and follows what that one says."""
    store.set("bgsync", APP, ["no"])
    agent = agent_factory().start()
    assert off(APP) in agent.log_text(), "the agent did not read the store at start"
    client = Client(bus)
    first = store.pid()
    os.kill(first, signal.SIGKILL)
    assert wait_gone(first)
    # The agent's re-read activates a new store; its later changes are heard (the signal is
    # followed to the new owner).
    def new_pid():
        try:
            return store.pid()
        except dbus.DBusException:  # between two owners (seen once under AddressSanitizer)
            return None

    wait_until(lambda: new_pid() not in (None, first), 10, "the store to be started again")
    store.set("bgsync", APP, ["yes"])
    agent.wait_for_log(on(APP))
    client.register(APP, "outbox", "ok")
    client.wait_finished("outbox")
    # A store started by hand with the bus address, over data in which APP is switched off:
    # replacing the running one (--replace), the agent re-reads at the owner change.
    other_data = tmp_path / "other-data"
    seeding = PrivateBus(service_dirs=[str(store_service_dir(tmp_path / "seed-services"))],
                         env=dict(os.environ, XDG_DATA_HOME=str(other_data)))
    try:
        StoreBus(seeding).set("background", APP, ["no"])
    finally:
        seeding.stop()
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address, XDG_DATA_HOME=str(other_data))
    replacement = subprocess.Popen([STORE, "--replace"], env=env)
    try:
        wait_for_log_count(agent, off(APP), 2)
        assert store.pid() == replacement.pid
        assert error_name(lambda: client.register(APP, "again", "ok")) == "org.bgsync.Error.NotAllowed"
        # That store gone too (not activatable with that data): the activatable one comes back,
        # where APP is on; the agent re-reads again.
        replacement.terminate()
        replacement.wait(timeout=10)
        wait_for_log_count(agent, on(APP), 2)
        client.register(APP, "again", "ok")
        client.wait_finished("again")
    finally:
        if replacement.poll() is None:
            replacement.kill()
            replacement.wait()


def test_without_a_permission_store_every_app_is_allowed(tmp_path, plugin_dir):
    """No service file for the store and none running: nothing is switched off, and bgsyncctl
    deny says it cannot reach the store instead of pretending."""
    bare = PrivateBus()  # conftest's kind of bus: no service directory at all
    agent = Agent(bare, tmp_path, plugin_dir)
    try:
        agent.start()
        assert "no permission store on the session bus" in agent.log_text()
        client = Client(bare)
        client.register(APP, "outbox", "ok")
        assert client.wait_finished("outbox")[0][2] == "succeeded"
        assert list_apps(client)[APP]["allowed"]
        result = ctl(bare, "deny", APP, check=False)
        assert result.returncode == 3 and "permission store" in result.stderr, result.stderr
        client.register(APP, "again", "ok")
        client.wait_finished("again")
    finally:
        agent.stop()
        bare.stop()


def test_listapps_shows_each_app_and_its_figures_survive_a_restart(agent_factory, bus, store):
    agent = agent_factory().start()
    client = Client(bus)
    client.register(APP, "outbox", "ok")
    client.wait_finished("outbox")
    client.register(APP, "later", "retry", {"max-attempts": dbus.UInt32(50)})
    client.wait_finished("later")
    client.register(OTHER, "mail", "fail")
    client.wait_finished("mail")
    before = list_apps(client)
    assert set(before) == {APP, OTHER}
    assert before[APP]["registrations"] == 1 and before[APP]["allowed"]
    assert before[APP]["last-outcome"] in ("retry-scheduled", "succeeded")
    assert before[OTHER]["registrations"] == 0 and before[OTHER]["last-outcome"] == "failed"
    assert before[OTHER]["last-sync"] > 0 and before[OTHER]["bytes-sent"] == 0
    agent.stop()
    agent.start()
    after = list_apps(Client(bus))
    # The finished app's history is back from the file; the other's registration too.
    assert after[OTHER] == before[OTHER]
    assert after[APP]["registrations"] == 1
    assert after[APP]["last-sync"] >= before[APP]["last-sync"]


def test_a_sandboxed_caller_sees_only_its_own_app_in_listapps(isolated_agent, bus, tmp_path, home):
    owner = Client(bus)
    owner.register(FLAT, "outbox", "ok")
    owner.register(SECRET, "secret", "ok")
    everything = list_apps(owner)
    assert {FLAT, SECRET} <= set(everything)
    results = run_in_flatpak_sandbox(tmp_path, bus, FLAT, [["ListApps", [], ""]])
    assert results[0][0] == "ok", results
    assert list(results[0][1]) == [FLAT], f"a Flatpak app saw other apps: {list(results[0][1])}"
    assert results[0][1][FLAT]["registrations"] == 1
    # A sandbox without an app id learns nothing.
    (tmp_path / "anonymous").mkdir()
    results = run_in_flatpak_sandbox(tmp_path / "anonymous", bus, "", [["ListApps", [], ""]])
    assert results[0][0] == "org.bgsync.Error.AccessDenied", results


def test_a_forged_changed_signal_is_ignored_and_a_deleted_entry_switches_back_on(agent_factory, bus, store):
    """Any process on the session bus can emit a signal named like the store's: only the store's
    own (from the owner of its name) counts. The forged one is sent to the agent's unique name:
    dbus-daemon delivers a signal with a destination whatever the match rules say (a broadcast
    the agent's sender= rule would drop at the daemon), so this is the agent's own check at work."""
    agent = agent_factory().start()
    forger = bus.connect()
    forged = dbus.lowlevel.SignalMessage(PS_PATH, PS_NAME, "Changed")
    forged.set_destination(forger.get_name_owner(NAME))
    forged.append("bgsync", "bgsync", False, dbus.Byte(0, variant_level=1),
                  dbus.Dictionary({OTHER: dbus.Array(["no"], signature="s")}, signature="sas"),
                  signature="ssbva{sas}")
    forger.send_message(forged)
    forger.flush()
    # A real change after the forged one, from the real store: once it is followed, the forged
    # one (sent before it) has been seen and must have done nothing.
    store.set("bgsync", APP, ["no"])
    agent.wait_for_log(off(APP))
    assert off(OTHER) not in agent.log_text()
    client = Client(bus)
    client.register(OTHER, "mail", "ok")
    client.wait_finished("mail")
    # `flatpak permission-remove bgsync bgsync`: the whole entry goes (Changed with deleted).
    store.store.Delete("bgsync", "bgsync")
    agent.wait_for_log(on(APP))
    client.register(APP, "outbox", "ok")
    client.wait_finished("outbox")


def test_a_store_that_does_not_answer_does_not_hold_up_the_agent(agent_factory, bus, store):
    """The store running but stopped (SIGSTOP): the agent waits for it a few seconds at most,
    starts with every app allowed, and applies the answer once the store answers."""
    store.set("bgsync", APP, ["no"])
    pid = store.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        agent = agent_factory().start()
        assert "did not answer within" in agent.log_text()
        client = Client(bus)
        client.register(OTHER, "mail", "ok")
        client.wait_finished("mail")
    finally:
        os.kill(pid, signal.SIGCONT)
    agent.wait_for_log(off(APP))
    assert error_name(lambda: client.register(APP, "outbox", "ok")) == "org.bgsync.Error.NotAllowed"
