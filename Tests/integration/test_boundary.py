# SPDX-License-Identifier: Apache-2.0
"""The sandbox boundary after Register, with real processes as root: a client in a Flatpak-like
mount namespace (its root holds `.flatpak-info`, as bwrap sets it up) behind a real
`xdg-dbus-proxy --filter --talk=org.bgsync` (as Flatpak gives an app with --talk-name), and
clients in cgroups named as snapd names a parallel-installed snap's scope. Each tries what
issue 12 lists: other apps' signals, another app's id, a look-alike identity, forged log lines,
and holding every event slot."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import textwrap
import time

import dbus
import pytest

from conftest import FAST_CONFIG, IFACE, NAME, PATH, Client, wait_until

FLAT = "org.example.Flat"
OTHER = "org.example.Other"
DENIED = "org.bgsync.Error.AccessDenied"
NEEDS_ROOT = "needs root: builds a mount namespace and cgroups, as Flatpak and snapd do"

# Runs calls given as JSON lines on stdin, one reply line each; "wait TAG" waits for this
# connection's SyncFinished of TAG; "signals" prints every sync signal this connection got.
CLIENT = textwrap.dedent(f"""\
    import json, sys, time
    import dbus, dbus.mainloop.glib
    from gi.repository import GLib
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(sys.argv[1])
    got = []
    for member in ("SyncStarted", "SyncFinished"):
        bus.add_signal_receiver(lambda *a, m=member: got.append([m] + [str(x) for x in a]), member, None, None, None)
    try:  # eavesdropping, if the bus or the proxy lets it through
        bus.add_match_string("type='signal',interface={IFACE!r},eavesdrop='true'")
    except dbus.DBusException:
        pass
    proxy = bus.get_object({NAME!r}, {PATH!r}, introspect=False)
    context = GLib.MainContext.default()
    for line in sys.stdin:
        request = json.loads(line)
        if request[0] == "wait":
            deadline = time.monotonic() + 20
            while not any(g[0] == "SyncFinished" and g[2] == request[1] for g in got) and time.monotonic() < deadline:
                context.iteration(False) or time.sleep(0.01)
            print(json.dumps(["ok" if time.monotonic() < deadline else "timeout"]), flush=True)
            continue
        if request[0] == "signals":
            while context.iteration(False):
                pass
            print(json.dumps(got), flush=True)
            continue
        method, args, signature = request
        if signature and signature.endswith("a{{sv}}"):
            args[-1] = dbus.Dictionary(args[-1], signature="sv")
        try:
            reply = proxy.get_dbus_method(method, {IFACE!r})(*args, signature=signature)
            print(json.dumps(["ok", json.loads(json.dumps(reply, default=str))]), flush=True)
        except dbus.DBusException as error:
            print(json.dumps([error.get_dbus_name(), error.get_dbus_message()]), flush=True)
""")


class Sandboxed:
    """A client process kept running, spoken to a line at a time."""

    def __init__(self, process):
        self.process = process

    def ask(self, request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the sandboxed client died: {self.process.stderr.read()}"
        return json.loads(line)

    def call(self, method, args, signature):
        return self.ask([method, args, signature])

    def register(self, app, tag, handler, options=None):
        return self.call("Register", [app, tag, handler, options or {}], "sssa{sv}")

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def flatpak_root(tmp_path, app_id):
    """Shell lines that make a root of bind mounts of / plus a .flatpak-info naming app_id."""
    root = tmp_path / "sandbox-root"
    root.mkdir()
    info = f"[Application]\nname={app_id}\nruntime=runtime/org.freedesktop.Platform/x86_64/23.08\n"
    entries = [e for e in os.listdir("/") if os.path.isdir("/" + e) and not os.path.islink("/" + e)]
    links = [e for e in os.listdir("/") if os.path.islink("/" + e)]
    setup = [f"mount -t tmpfs sandbox {root}"]
    setup += [f"mkdir {root}/{e} && mount --rbind /{e} {root}/{e}" for e in entries]
    setup += [f"ln -s {os.readlink('/' + e)} {root}/{e}" for e in links]
    setup += [f"printf '%s' '{info}' > {root}/.flatpak-info"]
    return root, setup


def start_flatpak_behind_proxy(tmp_path, bus, app_id):
    """The app and its xdg-dbus-proxy both inside the sandbox's mount namespace, as Flatpak runs
    them: the agent then finds .flatpak-info through the proxy's process, the one the bus sees.
    They are in a PID namespace of their own, whose init is the app: when the app ends (or
    unshare is killed, --kill-child), the kernel ends the proxy too. It outlived the test before,
    reparented to init, as the shell that started it with & exec'd the app."""
    if not shutil.which("xdg-dbus-proxy"):
        pytest.fail("xdg-dbus-proxy is not installed (scripts/install-deps check installs it)")
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    socket = tmp_path / "proxy.sock"
    root, setup = flatpak_root(tmp_path, app_id)
    setup += [
        f"chroot {root} xdg-dbus-proxy '{bus.address}' {socket} --filter --talk={NAME} &",
        f"for i in $(seq 200); do [ -S {socket} ] && break; sleep 0.05; done",
        f"exec chroot {root} /usr/bin/python3 {script} unix:path={socket}",
    ]
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
         "sh", "-ec", " && ".join(setup[:-3]) + "\n" + "\n".join(setup[-3:])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Sandboxed(process)


def snap_cgroup(name):
    base = pathlib.Path("/sys/fs/cgroup/systemd")
    if not base.is_dir():
        base = pathlib.Path("/sys/fs/cgroup")
    cgroup = base / name
    try:
        cgroup.mkdir()
    except OSError as error:
        pytest.fail(f"cannot make a cgroup to stand for a snap's scope here ({error})")
    return cgroup


def start_in_cgroup(tmp_path, bus, cgroup):
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    process = subprocess.Popen(
        ["sh", "-ec", f"echo $$ > {cgroup}/cgroup.procs && exec /usr/bin/python3 {script} \"$0\"", bus.address],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Sandboxed(process)


@pytest.fixture
def home(tmp_path):
    directory = tmp_path / "home"
    for data in (f".var/app/{FLAT}/outbox", "snap/chat_x/outbox", "snap/chat/outbox"):
        (directory / data).mkdir(parents=True)
    return directory


@pytest.fixture
def root_agent(agent_factory, home):
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    return agent_factory(env=dict(os.environ, HOME=str(home))).start()


def test_a_flatpak_app_behind_xdg_dbus_proxy_hears_only_its_own_syncs(root_agent, bus, tmp_path, home):
    monitor = Client(bus)  # unsandboxed, subscribed to every app (bgsyncctl monitor)
    app = start_flatpak_behind_proxy(tmp_path, bus, FLAT)
    try:
        assert app.register(FLAT, "first", "ok") == ["ok", None]
        assert app.ask(["wait", "first"]) == ["ok"], "the app hears its own SyncFinished on its connection"
        # Another app syncs while the sandboxed app listens with a match rule for every signal.
        other = Client(bus, subscribe_all=False)
        other.register(OTHER, "secret-tag", "ok")
        other.wait_finished("secret-tag")
        monitor.wait_finished("secret-tag")
        # Signals from one sender arrive in order: anything about OTHER would be in before this.
        assert app.register(FLAT, "second", "ok") == ["ok", None]
        assert app.ask(["wait", "second"]) == ["ok"]
        assert app.call("Subscribe", [""], "s")[0] == DENIED, "a sandboxed app may not subscribe to every app"
        assert app.call("Subscribe", [OTHER], "s")[0] == DENIED
        heard = app.ask(["signals"])
    finally:
        app.close()
    apps = {signal[1] for signal in heard}
    assert apps == {FLAT}, f"the sandboxed app heard of other apps: {heard}"
    assert [s[0] for s in heard].count("SyncFinished") == 2
    assert any(f[0] == OTHER for f in monitor.finished), "the unsandboxed monitor still hears every app"
    print(f"\nproxy: the Flatpak app heard {len(heard)} signals, all its own; the monitor heard "
          f"{len(monitor.finished)} SyncFinished of {len({f[0] for f in monitor.finished})} apps")


def test_registrations_record_who_made_them(root_agent, bus, tmp_path, home):
    app = start_flatpak_behind_proxy(tmp_path, bus, FLAT)
    try:
        reply = app.call("RegisterPeriodic", [FLAT, "kept", "ok", 3600, {}], "sssta{sv}")
    finally:
        app.close()
    assert reply == ["ok", None]
    owner = Client(bus)
    owner.call("RegisterPeriodic", OTHER, "mine", "ok", dbus.UInt64(3600), dbus.Dictionary({}, signature="sv"),
               signature="sssta{sv}")
    flat = owner.call("GetRegistration", FLAT, "kept")
    assert flat["confinement"] == "flatpak"
    assert flat["root"] == str(home / ".var" / "app" / FLAT)
    mine = owner.call("GetRegistration", OTHER, "mine")
    assert mine["confinement"] == "unconfined" and "root" not in mine


def test_a_parallel_installed_snap_is_held_to_its_instance(root_agent, bus, tmp_path, home):
    cgroup = snap_cgroup(f"snap.chat_x.chat-{os.getpid()}.scope")
    app = start_in_cgroup(tmp_path, bus, cgroup)
    try:
        own = app.register("snap.chat_x", "outbox", "ok")
        # Its own tags: "outbox" may already have run (the agent is online), so the listing is
        # checked on one held back an hour by not-before.
        held = app.register("snap.chat_x", "held", "ok", {"not-before": 3600})
        tags = app.call("GetTags", ["snap.chat_x"], "s")
        results = [
            app.register("snap.chat", "outbox", "ok"),          # the snap it is an instance of
            app.call("GetTags", [OTHER], "s"),                  # another app
            app.register(OTHER, "t", "ok"),
            app.register("snap.chat_x", "run", "exec", {"command": "true"}),  # not sandbox-safe
            app.call("Subscribe", [""], "s"),
        ]
        assert app.ask(["wait", "outbox"]) == ["ok"]
        forged = app.register("snap.chat_x", "n\n<0>forged by a snap", "ok")
        assert app.ask(["wait", "n\n<0>forged by a snap"]) == ["ok"]
        heard = app.ask(["signals"])
    finally:
        app.close()
        cgroup.rmdir()
    assert forged == ["ok", None]
    root_agent.wait_for_log("n\\n<0>forged by a snap: succeeded")  # the log is read by a thread of its own
    assert not [line for line in root_agent.log_text().splitlines() if line.startswith("<0>")]
    assert own == ["ok", None] and held == ["ok", None]
    assert tags[0] == "ok" and "held" in tags[1] and set(tags[1]) <= {"outbox", "held"}, tags
    for result in results:
        assert result[0] == DENIED, result
        assert "snap.chat_x" in result[1], f"the message names the caller's own app id: {result[1]}"
    assert {signal[1] for signal in heard} == {"snap.chat_x"}
    record = Client(bus)
    assert record.call("GetTags", "snap.chat") == [] and record.call("GetTags", OTHER) == []


def test_a_snap_look_alike_that_cannot_be_parsed_is_refused(root_agent, bus, tmp_path):
    # '_' twice is no instance name snapd would make: it used to be taken for unsandboxed.
    cgroup = snap_cgroup(f"snap.chat_x_y.chat-{os.getpid()}.scope")
    app = start_in_cgroup(tmp_path, bus, cgroup)
    try:
        results = [app.call("GetTags", [OTHER], "s"), app.register(OTHER, "t", "exec", {"command": "true"}),
                   app.call("GetTags", ["snap.chat_x_y"], "s")]
    finally:
        app.close()
        cgroup.rmdir()
    for result in results:
        assert result[0] == DENIED, result
        assert "cannot be identified" in result[1]
    assert Client(bus).call("GetTags", OTHER) == []


def test_a_tag_with_a_newline_cannot_start_a_log_line(root_agent, bus):
    client = Client(bus)
    forged = "t\n<0>bgsyncd[1]: critical: forged\r\n<3>x"
    client.register(OTHER, forged, "ok", {"greeting": "hi\n<0>forged greeting"})
    client.wait_finished(forged)
    root_agent.wait_for_log("\\r\\n<3>x: succeeded")  # the log is read by a thread of its own
    lines = root_agent.log_text().splitlines()
    assert any("forged" in line for line in lines), "the tag is logged (escaped)"
    for line in lines:
        # Every line is the agent's own or a worker's, each with its own prefix.
        assert re.match(r"(bgsyncd|bgsync-worker)\[\d+\]: ", line), line
        assert not line.startswith("<0>"), line
    escaped = [line for line in lines if "\\n<0>bgsyncd[1]: critical: forged\\r\\n<3>x" in line]
    assert escaped, "the newline shows as \\n in the line that names the tag"


def test_a_new_apps_sync_starts_while_another_app_holds_the_slots(agent_factory, bus):
    config = FAST_CONFIG.replace("event-timeout=3", "event-timeout=600")
    agent_factory(config=config).start()
    monitor = Client(bus)
    slow = Client(bus, subscribe_all=False)
    for n in range(4):  # as many as concurrent-events
        slow.register("org.example.Slow", f"slow{n}", "hang")
    monitor.call("GetTags", "org.example.Slow")  # a round trip: signals sent before it are in
    wait_until(lambda: len(monitor.started) >= 3, 10, "the slow app's events to start")
    assert len(monitor.started) == 3, "one slot stays free for another app"
    quick = Client(bus, subscribe_all=False)
    began = time.monotonic()
    quick.register("org.example.Quick", "quick", "ok")
    wait_until(lambda: quick.started, 5, "the second app's SyncStarted")
    started_after = time.monotonic() - began
    quick.wait_finished("quick", timeout=5)
    assert [s[1] for s in quick.started] == ["quick"], "the quick app hears of its own sync only"
    assert started_after < 1.0, f"the second app's sync took {started_after:.2f} s while the slots were held"
    print(f"\nfair share: a second app's sync ran {started_after * 1000:.0f} ms after its Register, "
          f"with 3 of 4 slots held by another app's hanging events")


def test_the_readme_gio_example_still_prints_its_sync_finished(agent, bus, tmp_path):
    """Clients that work today keep working without Subscribe: the README's example registers
    and subscribes on one connection, so the agent's unicast SyncFinished reaches it."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("From an app, for example in Python with Gio", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "Gio.bus_get_sync(Gio.BusType.SESSION)" in example
    example = example.replace(
        "Gio.bus_get_sync(Gio.BusType.SESSION)",
        f"Gio.DBusConnection.new_for_address_sync({bus.address!r}, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT"
        " | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)")
    script = tmp_path / "readme_example.py"
    script.write_text(example + textwrap.dedent("""
        import sys
        loop = GLib.MainLoop()
        GLib.timeout_add_seconds(20, lambda: sys.exit("no SyncFinished in 20 s"))
        _print = print
        def print(*args):
            _print(*args, flush=True)
            loop.quit()
        loop.run()
        """))
    out = subprocess.run(["/usr/bin/python3", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("sync ('org.example.Chat', 'outbox', "), out.stdout


# The process that connected exits; its child, which inherited the connection, calls on it.
ORPHANED_CONNECTION = textwrap.dedent(f"""\
    import os, sys, time
    import dbus
    bus = dbus.bus.BusConnection(sys.argv[1])
    read, write = os.pipe()
    if os.fork():
        os._exit(0)  # the process the bus knows is gone; the connection lives on in the child
    os.close(write)
    os.read(read, 1)  # returns at the parent's exit (its end of the pipe closes)
    proxy = bus.get_object({NAME!r}, {PATH!r}, introspect=False)
    try:
        proxy.get_dbus_method("GetTags", {IFACE!r})("org.example.Orphan")
        print("ok")
    except dbus.DBusException as error:
        print(error.get_dbus_name(), error.get_dbus_message())
""")


def test_a_caller_whose_process_exited_is_refused(agent, bus, tmp_path):
    """A real process that exits before the agent reads /proc: the bus still names it (its
    connection was inherited by a child), and the agent must not read whoever has that PID
    now. Its pidfd shows it exited (or it cannot be opened): refused."""
    script = tmp_path / "orphan.py"
    script.write_text(ORPHANED_CONNECTION)
    parent = subprocess.Popen(["/usr/bin/python3", str(script), bus.address], stdout=subprocess.PIPE, text=True)
    assert parent.wait(timeout=20) == 0  # reaped now: its PID is free for reuse
    answer = parent.stdout.read().strip()
    assert answer.startswith(DENIED), answer
    assert "exited before it could be checked" in answer
    assert Client(bus).call("GetTags", "org.example.Orphan") == [], "a live caller is answered"
