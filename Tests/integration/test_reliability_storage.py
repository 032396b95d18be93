# SPDX-License-Identifier: Apache-2.0
"""The registration database under stress, through the agent binary: a full disk, a damaged or
unreadable file, and the session bus going away."""

import os
import pathlib
import sqlite3
import subprocess
import time

import dbus
import pytest
from gi.repository import GLib

from conftest import IFACE, NAME, PATH, Client, PrivateBus, wait_until

APP = "org.example.Chat"
DB_NAME = "registrations.sqlite3"
# One event slot, held by a sync that hangs: registrations stay put to be looked at.
HELD = "[sync]\nevent-timeout=3600\n[limits]\nconcurrent-events=1\nregistrations-per-app=100000\n"


def error_name(excinfo):
    return excinfo.value.get_dbus_name()


def hold_the_slot(bus):
    c = Client(bus)
    c.register("org.blocker.App", "slot", "hang")
    wait_until(lambda: c.started, 10, "the blocking sync to start")
    return c


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs for the state dir, so that the test can fill the disk."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a small tmpfs (mount -t tmpfs -o size=1m) to fill")
    mountpoint = tmp_path / "state"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "bgsync-test", str(mountpoint)], check=True)
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(directory):
    """Writes a file until the disk is full; returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_refuses_registrations_whole_and_recovers(agent_factory, bus, small_tmpfs):
    agent = agent_factory(config=HELD).start()
    hold_the_slot(bus)
    c = Client(bus)
    payload = dbus.Dictionary({"note": "x" * 2000}, signature="sv")
    acknowledged = []
    for n in range(20):
        c.register(APP, f"before{n}", "ok", payload)
        acknowledged.append(f"before{n}")
    filler = fill(small_tmpfs)
    refused = []
    for n in range(200):  # the WAL may have room for a few more pages; the disk has none
        try:
            c.register(APP, f"full{n}", "ok", payload)
            acknowledged.append(f"full{n}")
        except dbus.DBusException as error:
            assert error.get_dbus_name() == "org.bgsync.Error.Storage", error
            assert "full" in error.get_dbus_message() and "free some space" in error.get_dbus_message()
            refused.append(f"full{n}")
    assert len(refused) >= 100, f"only {len(refused)} of 200 registrations refused on a full disk"
    tags = list(c.call("GetTags", APP))
    assert tags == acknowledged, "a refused registration shows up, or an acknowledged one is gone"
    with pytest.raises(dbus.DBusException) as excinfo:
        c.call("Unregister", APP, "before0")
    assert error_name(excinfo) == "org.bgsync.Error.Storage"
    assert c.call("GetTags", APP) == tags, "a refused removal removed nothing"
    # Space comes back: it works again, and what is on disk is exactly what was acknowledged.
    filler.unlink()
    c.register(APP, "after", "ok", payload)
    assert c.call("Unregister", APP, "before0") == True  # noqa: E712
    expected = acknowledged[1:] + ["after"]
    agent.kill()
    agent.start()
    c = Client(bus)
    assert list(c.call("GetTags", APP)) == expected
    print(f"\nfull disk: {len(refused)} registrations refused with org.bgsync.Error.Storage on a full 1 MiB tmpfs, "
          f"{len(acknowledged)} acknowledged ones intact after SIGKILL and restart, working again once space came back")


def test_concurrent_registrations_on_a_filling_disk_are_acknowledged_only_once_on_it(agent_factory, bus, small_tmpfs):
    """Group commit under a full disk: many Registers in flight at once share transactions; the
    disk fills part way. After SIGKILL, what the file holds is exactly what was acknowledged."""
    agent = agent_factory(config=HELD).start()
    hold_the_slot(bus)
    c = Client(bus)
    register = c.connection.get_object(NAME, PATH, introspect=False).get_dbus_method("Register", IFACE)
    payload = dbus.Dictionary({"note": "x" * 2000}, signature="sv")
    acknowledged, refused, other = [], [], []
    state = {"sent": 0, "in_flight": 0, "filler": None}
    total, window = 600, 32

    def send():
        tag = f"t{state['sent']}"
        state["sent"] += 1
        state["in_flight"] += 1

        def ok(*_):
            state["in_flight"] -= 1
            acknowledged.append(tag)
            if len(acknowledged) == 40 and state["filler"] is None:
                state["filler"] = fill(small_tmpfs)  # the disk fills with dozens of calls in flight

        def failed(error):
            state["in_flight"] -= 1
            (refused if error.get_dbus_name() == "org.bgsync.Error.Storage" else other).append((tag, str(error)))

        register(APP, tag, "ok", payload, signature="sssa{sv}", reply_handler=ok, error_handler=failed, timeout=60)

    context = GLib.MainContext.default()
    deadline = time.monotonic() + 120
    while (state["sent"] < total or state["in_flight"]) and time.monotonic() < deadline:
        while state["sent"] < total and state["in_flight"] < window:
            send()
        context.iteration(True)
    assert state["in_flight"] == 0, f"{state['in_flight']} Registers unanswered after 120 s"
    assert not other, other[:3]
    assert state["filler"] is not None and len(refused) >= 100, f"{len(refused)} refused"
    agent.kill()  # SIGKILL: what was only in the agent's memory is gone
    state["filler"].unlink()
    with sqlite3.connect(agent.state_dir / DB_NAME) as db:
        on_disk = {tag for (tag,) in db.execute("SELECT tag FROM registrations WHERE app_id = ?", (APP,))}
    lost = set(acknowledged) - on_disk
    assert not lost, f"{len(lost)} acknowledged registrations are not on the disk, e.g. {sorted(lost)[:5]}"
    unacknowledged = on_disk - set(acknowledged)
    assert not unacknowledged, f"refused yet on the disk: {sorted(unacknowledged)[:5]}"
    agent.start()
    assert set(Client(bus).call("GetTags", APP)) == set(acknowledged)
    print(f"\nfilling disk, {window} Registers in flight: {len(acknowledged)} acknowledged, all on the disk after "
          f"SIGKILL; {len(refused)} refused with org.bgsync.Error.Storage, none on the disk")


def start_refused(agent_factory, tmp_path):
    agent = agent_factory()
    agent.start(expect_ready=False)
    assert agent.wait_exit() == 1
    log = agent.log_text()
    assert "ready on" not in log
    return log


def damage_pages(path):
    """Overwrites everything after the 100-byte header of a real database with garbage."""
    data = bytearray(path.read_bytes())
    for i in range(100, len(data)):
        data[i] = (i * 7 + 13) % 256
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garbage", "damaged-pages", "directory"])
def test_a_damaged_or_unreadable_database_stops_the_agent_and_is_left_alone(agent_factory, bus, tmp_path, damage):
    state = tmp_path / "state"
    db = state / DB_NAME
    if damage == "garbage":
        state.mkdir()
        db.write_bytes(b"this is not a database, but someone's registrations may be in it\n" * 100)
    elif damage == "damaged-pages":
        first = agent_factory().start()
        c = Client(bus)
        for n in range(50):
            c.call("RegisterPeriodic", APP, f"t{n}", "ok", dbus.UInt64(3600), dbus.Dictionary({}, signature="sv"))
        first.stop()
        damage_pages(db)
    else:
        db.mkdir(parents=True)
    before = db.read_bytes() if db.is_file() else None
    log = start_refused(agent_factory, tmp_path)
    assert str(db) in log, f"the message names the file:\n{log}"
    if damage == "directory":
        assert "Cannot open" in log or "cannot open" in log
    else:
        assert "damaged" in log and "move it aside" in log and ".recover" in log, log
        assert db.read_bytes() == before, "the agent wrote over the damaged file"
    assert sorted(p.name for p in state.iterdir() if not p.name.startswith(DB_NAME)) == [], "no new database beside it"
    print(f"\ndamaged database ({damage}): the agent refused to start, naming {db.name} and what to do")


def test_when_the_bus_goes_away_everything_acknowledged_is_on_disk(agent_factory, bus, tmp_path):
    agent = agent_factory(config=HELD).start()
    hold_the_slot(bus)
    c = Client(bus)
    for n in range(30):
        c.register(APP, f"t{n}", "ok", {"n": dbus.UInt32(n)})
    for n in range(0, 30, 3):
        c.call("Unregister", APP, f"t{n}")
    expected = [f"t{n}" for n in range(30) if n % 3]
    bus.stop()
    assert agent.wait_exit() == 0
    assert "bus went away" in agent.log_text()
    # On disk, read with sqlite3 itself: exactly what was acknowledged, and the database is sound.
    with sqlite3.connect(agent.state_dir / DB_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT tag FROM registrations WHERE app_id = ? ORDER BY tag", (APP,)).fetchall()
    assert sorted(r[0] for r in rows) == sorted(expected)
    # And a new agent on a new bus serves them.
    new_bus = PrivateBus()
    try:
        agent.bus = new_bus
        agent.start()
        assert list(Client(new_bus).call("GetTags", APP)) == expected
        agent.stop()
    finally:
        new_bus.stop()
