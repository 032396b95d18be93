# SPDX-License-Identifier: Apache-2.0
"""The registration database under stress, through the agent binary: a full disk, a damaged
file (repaired) or one that cannot be used, and the session bus going away."""

import json
import os
import pathlib
import sqlite3
import subprocess
import time

import dbus
import pytest
from gi.repository import GLib

from conftest import IFACE, NAME, PATH, Client, PrivateBus, wait_until
from test_bgsyncctl import ctl
from test_isolation import FLAT, NEEDS_ROOT, run_in_flatpak_sandbox

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


def register_many(bus, tags, window=64):
    """Registers (app, tag) pairs with up to `window` calls in flight (they share commits);
    returns when every one is acknowledged."""
    c = Client(bus)
    register = c.connection.get_object(NAME, PATH, introspect=False).get_dbus_method("Register", IFACE)
    pending = list(tags)
    state = {"in_flight": 0, "failed": []}

    def ok(*_):
        state["in_flight"] -= 1

    def failed(error):
        state["in_flight"] -= 1
        state["failed"].append(str(error))

    context = GLib.MainContext.default()
    deadline = time.monotonic() + 300
    while (pending or state["in_flight"]) and time.monotonic() < deadline:
        while pending and state["in_flight"] < window:
            app, tag = pending.pop()
            state["in_flight"] += 1
            # not-before a day away: each waits, so what is served after a repair is what it saved.
            options = dbus.Dictionary({"n": tag, "not-before": dbus.UInt32(86400)}, signature="sv")
            register(app, tag, "ok", options, signature="sssa{sv}",
                     reply_handler=ok, error_handler=failed, timeout=60)
        context.iteration(True)
    assert not pending and state["in_flight"] == 0, "Registers unanswered after 300 s"
    assert not state["failed"], state["failed"][:3]


def served(bus, apps):
    c = Client(bus)
    return {(app, str(tag)) for app in apps for tag in c.call("GetTags", app)}


def read_only(path):
    """sqlite3 on a file without creating a -wal or -shm beside it."""
    return sqlite3.connect(f"file:{path}?immutable=1", uri=True)


def leaves(path):
    """The registrations table's leaf pages in b-tree order, with their cell counts (dbstat)."""
    with read_only(path) as db:
        return db.execute("SELECT pageno, ncell FROM dbstat WHERE name = 'registrations' AND pagetype = 'leaf' "
                          "ORDER BY path").fetchall()


def keys_on_leaves(path, pages):
    """(app, tag) of the rows on the given leaf pages: rows in rowid order fill the leaves in
    b-tree order."""
    keys, skip = set(), 0
    with read_only(path) as db:
        for page, cells in leaves(path):
            if page in pages:
                keys |= set(db.execute("SELECT app_id, tag FROM registrations ORDER BY rowid LIMIT ? OFFSET ?",
                                       (cells, skip)).fetchall())
            skip += cells
    return keys


APPS = [f"org.example.App{n}" for n in range(3)]
ROWS = 3000
PAGE = 4096


@pytest.mark.parametrize("damage", ["overwritten-page", "zeroed-header", "cut-short", "damaged-log-frame"])
def test_a_damaged_database_is_kept_aside_and_what_can_be_read_is_served(agent_factory, bus, tmp_path, damage):
    agent = agent_factory(config=HELD).start()
    written = {(APPS[n % 3], f"t{n}") for n in range(ROWS)}
    register_many(bus, written)
    db = agent.state_dir / DB_NAME
    if damage == "damaged-log-frame":
        # A clean stop checkpoints the log; then more commits, left in the log by SIGKILL.
        agent.stop()
        agent.start()
        later = {(APPS[n % 3], f"w{n}") for n in range(1000)}
        register_many(bus, later)
        written |= later
        agent.kill()
    else:
        agent.stop()
    expected = set(written)
    if damage == "overwritten-page":
        page, cells = leaves(db)[len(leaves(db)) // 2]
        on_page = keys_on_leaves(db, {page})
        assert len(on_page) == cells
        expected -= on_page
        data = bytearray(db.read_bytes())
        data[(page - 1) * PAGE:page * PAGE] = bytes((i * 7 + 13) % 256 for i in range(PAGE))
        db.write_bytes(bytes(data))
    elif damage == "zeroed-header":
        data = bytearray(db.read_bytes())
        data[:100] = bytes(100)
        db.write_bytes(bytes(data))
    elif damage == "cut-short":
        data = db.read_bytes()
        cut = len(data) // 2 + 1000
        whole = {page for page, _ in leaves(db) if page <= cut // PAGE}
        expected = keys_on_leaves(db, whole)
        db.write_bytes(data[:cut])
    else:
        log = bytearray((agent.state_dir / (DB_NAME + "-wal")).read_bytes())
        frames = (len(log) - 32) // (24 + PAGE)
        at = 32 + frames // 3 * (24 + PAGE) + 24 + 2000
        log[at:at + 64] = bytes(b ^ 0x5A for b in log[at:at + 64])
        (agent.state_dir / (DB_NAME + "-wal")).write_bytes(bytes(log))
        sqlite_reads = sqlite_count_with_log(agent.state_dir, tmp_path)
    kept_bytes = {name: (agent.state_dir / name).read_bytes() for name in (DB_NAME, DB_NAME + "-wal")
                  if (agent.state_dir / name).exists()}

    agent.start()
    log = agent.log_text()
    warning = next((line for line in log.splitlines() if "was damaged" in line), None)
    assert warning is not None and "warning" in warning, log
    now_served = served(bus, APPS)
    repair = json.loads(ctl(bus, "state", "--json").stdout)["Repair"]
    human = ctl(bus, "state").stdout
    # Everything served is what was written, and for the page, the header and the cut, exactly
    # what was readable: the rows outside the damage.
    assert now_served <= written
    if damage == "damaged-log-frame":
        assert len(now_served) > sqlite_reads, "the repair saved no more than SQLite reads alone"
        assert repair["saved"] + repair["lost"] == len(written)
        assert repair["lost"] <= 60, "more lost than one page holds"
    else:
        assert now_served == expected
        if damage == "cut-short":
            # The index pages past the cut went too: only the lost rows the rest names are known.
            assert 0 < repair["lost"] <= len(written - now_served)
        else:
            assert repair["lost"] == len(written - now_served)
    assert repair["saved"] == len(now_served)
    lost_apps = {app: n for app, n in repair["lost-apps"].items()}
    assert sum(lost_apps.values()) == repair["lost"]
    assert f"{repair['saved']} registrations saved, {repair['lost']} known lost" in warning
    for app, n in sorted(lost_apps.items(), key=lambda item: -item[1])[:10]:
        assert f"{app} ({n})" in warning
    # The damaged file, kept byte for byte, with its log.
    kept = pathlib.Path(repair["kept-as"])
    assert kept.parent == agent.state_dir and kept.name.startswith(DB_NAME + ".damaged-")
    assert kept.read_bytes() == kept_bytes[DB_NAME]
    if DB_NAME + "-wal" in kept_bytes:
        assert pathlib.Path(str(kept) + "-wal").read_bytes() == kept_bytes[DB_NAME + "-wal"]
    assert str(kept) in warning and str(kept) in human and "repair:" in human
    # The agent works: a new registration goes into the new file.
    Client(bus).register(APPS[0], "after", "ok")
    print(f"\ndamaged database ({damage}): {repair['saved']} registrations saved, {repair['lost']} known lost "
          f"of {len(written)}, the damaged file kept as {kept.name}"
          + (f"; SQLite alone reads {sqlite_reads}" if damage == "damaged-log-frame" else ""))


def sqlite_count_with_log(state_dir, tmp_path):
    """How many rows SQLite itself reads from the database and its damaged log (on a copy: SQLite
    rewrites what it opens)."""
    copy = tmp_path / "sqlite-view"
    copy.mkdir()
    for name in (DB_NAME, DB_NAME + "-wal"):
        (copy / name).write_bytes((state_dir / name).read_bytes())
    with sqlite3.connect(copy / DB_NAME) as db:
        return db.execute("SELECT count(*) FROM registrations").fetchone()[0]


@pytest.mark.parametrize("damage", ["garbage", "edited-row", "directory"])
def test_garbage_or_a_row_it_cannot_read_is_kept_aside_and_a_directory_in_its_place_stops_the_agent(
        agent_factory, bus, tmp_path, damage):
    state = tmp_path / "state"
    db = state / DB_NAME
    if damage == "edited-row":
        # A value quick_check does not look at, edited by hand into something the agent cannot read.
        agent = agent_factory(config=HELD).start()
        register_many(bus, {(APPS[0], f"t{n}") for n in range(20)})
        agent.stop()
        with sqlite3.connect(db) as edit:
            edit.execute("UPDATE registrations SET state = 'exploded' WHERE tag = 't7'")
        edit.close()
        before = db.read_bytes()
        agent.start()
        assert served(bus, APPS) == {(APPS[0], f"t{n}") for n in range(20) if n != 7}
        repair = json.loads(ctl(bus, "state", "--json").stdout)["Repair"]
        assert "column state of org.example.App0/t7 is 'exploded'" in repair["damage"], repair
        assert repair["saved"] == 19 and repair["lost-apps"] == {APPS[0]: 1}
        assert pathlib.Path(repair["kept-as"]).read_bytes() == before
        assert "org.example.App0/t7" in next(line for line in agent.log_text().splitlines() if "was damaged" in line)
    elif damage == "garbage":
        state.mkdir()
        garbage = b"this is not a database, but someone's registrations may be in it\n" * 100
        db.write_bytes(garbage)
        agent_factory().start()
        repair = json.loads(ctl(bus, "state", "--json").stdout)["Repair"]
        assert repair["saved"] == 0 and "not a database" in repair["damage"]
        assert pathlib.Path(repair["kept-as"]).read_bytes() == garbage
        assert db.read_bytes().startswith(b"SQLite format 3\0"), "a new database in its place"
    else:
        db.mkdir(parents=True)
        log = start_refused(agent_factory, tmp_path)
        assert str(db) in log and ("Cannot open" in log or "cannot open" in log), log
        assert sorted(p.name for p in state.iterdir()) == [DB_NAME], "nothing beside it"
        assert list(db.iterdir()) == [], "the directory was changed"


def test_a_sandboxed_app_learns_no_other_app_and_no_path_from_a_repair(agent_factory, bus, tmp_path):
    """The repair's details name apps (lost-apps, and damage: the row that failed a check) and
    paths in the home (kept-as): a Flatpak app gets only the counts and its own app's losses."""
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    db = tmp_path / "state" / DB_NAME
    agent = agent_factory(config=HELD).start()
    register_many(bus, {(app, f"t{n}") for app in (FLAT, APPS[1]) for n in range(10)})
    agent.stop()
    # One row of each app edited into a state the agent cannot read: both are lost, and named.
    with sqlite3.connect(db) as edit:
        edit.execute("UPDATE registrations SET state = 'exploded' WHERE tag = 't7'")
    edit.close()
    agent.start()
    # Unconfined (bgsyncctl): everything, the other app's row and the kept file included.
    full = json.loads(ctl(bus, "state", "--json").stdout)["Repair"]
    assert full["lost-apps"] == {FLAT: 1, APPS[1]: 1} and "/t7 is 'exploded'" in full["damage"], full
    kept = full["kept-as"]
    assert pathlib.Path(kept).is_file()
    human = ctl(bus, "state").stdout
    assert kept in human and "repair:" in human, human
    results = run_in_flatpak_sandbox(tmp_path, bus, FLAT, [
        ["GetRepair", [], ""],
        ["Get", [IFACE, "Repair"], "ss", "org.freedesktop.DBus.Properties"],
        ["GetAll", [IFACE], "s", "org.freedesktop.DBus.Properties"],
    ])
    assert [r[0] for r in results] == ["ok"] * 3, results
    own, prop, everything = results[0][1], results[1][1], results[2][1]["Repair"]
    assert own == {"time": full["time"], "saved": 18, "lost": 2, "lost-apps": {FLAT: 1}}, own
    assert prop == everything == {"time": full["time"], "saved": 18, "lost": 2}, prop
    seen = json.dumps(results)
    assert APPS[1] not in seen and str(tmp_path) not in seen and "exploded" not in seen, seen
    # A sandbox without an app id learns nothing of the apps.
    (tmp_path / "anonymous").mkdir()
    results = run_in_flatpak_sandbox(tmp_path / "anonymous", bus, "", [["GetRepair", [], ""]])
    assert results[0][0] == "org.bgsync.Error.AccessDenied", results


def test_a_repair_on_a_full_disk_changes_nothing_and_succeeds_once_there_is_room(agent_factory, bus, small_tmpfs):
    agent = agent_factory(config=HELD).start()
    register_many(bus, {(APPS[n % 3], f"t{n}") for n in range(200)}, window=200)  # few commits: the log fits
    agent.stop()
    db = small_tmpfs / DB_NAME
    page = leaves(db)[len(leaves(db)) // 2][0]
    data = bytearray(db.read_bytes())
    data[(page - 1) * PAGE:page * PAGE] = bytes((i * 7 + 13) % 256 for i in range(PAGE))
    db.write_bytes(bytes(data))
    filler = fill(small_tmpfs)
    before = sorted(p.name for p in small_tmpfs.iterdir())
    agent.start(expect_ready=False)
    assert agent.wait_exit() == 1
    log = agent.log_text()
    # SQLite cannot even open the file to check it (no room for its -shm), or the repair has no
    # room for the new file: either way the message names the file and the full disk.
    assert str(db) in log and "is full" in log and "Nothing was changed" in log, log
    assert db.read_bytes() == bytes(data), "the damaged file was changed"
    # Only what SQLite's own open leaves: an empty log and its index.
    left = sorted(set(p.name for p in small_tmpfs.iterdir()) - set(before))
    assert set(left) <= {DB_NAME + "-wal", DB_NAME + "-shm"}, left
    assert not (small_tmpfs / (DB_NAME + "-wal")).exists() or (small_tmpfs / (DB_NAME + "-wal")).stat().st_size == 0
    filler.unlink()
    agent.start()
    repair = json.loads(ctl(bus, "state", "--json").stdout)["Repair"]
    assert 0 < repair["saved"] < 200 and repair["saved"] + repair["lost"] == 200
    assert pathlib.Path(repair["kept-as"]).read_bytes() == bytes(data)
    print(f"\nrepair on a full disk: refused, nothing changed; with room: {repair['saved']} of 200 saved")


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
