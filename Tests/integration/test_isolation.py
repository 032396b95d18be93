# SPDX-License-Identifier: Apache-2.0
"""App isolation with real processes: a client inside a mount namespace whose root holds a
`.flatpak-info` (as Flatpak's bwrap sets it up), and one inside a `snap.NAME.*.scope` cgroup (as
snapd does). The agent finds them from their credentials on the bus and /proc, and holds each to
its own app id, sandbox-safe handlers, and options inside its own data directory."""

import json
import os
import pathlib
import subprocess
import textwrap

import pytest

from privatebus import PrivateBus

from conftest import FAST_CONFIG, IFACE, NAME, PATH, Client

FLAT = "org.example.Flat"
OTHER = "org.example.Other"
NEEDS_ROOT = "needs root: builds a mount namespace with unshare/chroot and a cgroup, as Flatpak and snapd do"

CLIENT = textwrap.dedent(f"""\
    import json, sys
    import dbus
    bus = dbus.bus.BusConnection(sys.argv[1])
    proxy = bus.get_object({NAME!r}, {PATH!r}, introspect=False)
    results = []
    for method, args, signature, *interface in json.loads(sys.argv[2]):
        if signature and signature.endswith("a{{sv}}"):
            args[-1] = dbus.Dictionary(args[-1], signature="sv")
        try:
            reply = proxy.get_dbus_method(method, (interface or [{IFACE!r}])[0])(*args, signature=signature)
            results.append(["ok", json.loads(json.dumps(reply, default=str))])
        except dbus.DBusException as error:
            results.append([error.get_dbus_name(), error.get_dbus_message()])
    print(json.dumps(results))
""")


def run_in_flatpak_sandbox(tmp_path, bus, app_id, calls):
    """Each call is [method, args, signature] on the Manager interface, or with a fourth element,
    another interface (such as org.freedesktop.DBus.Properties). Runs the client chrooted into a root made of bind mounts of / plus a `.flatpak-info`, in
    its own mount namespace: /proc/PID/root/.flatpak-info then resolves for the agent."""
    root = tmp_path / "sandbox-root"
    root.mkdir()
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    info = f"[Application]\nname={app_id}\nruntime=runtime/org.freedesktop.Platform/x86_64/23.08\n"
    entries = [e for e in os.listdir("/") if os.path.isdir("/" + e) and not os.path.islink("/" + e)]
    links = [e for e in os.listdir("/") if os.path.islink("/" + e)]
    setup = [f"mount -t tmpfs sandbox {root}"]
    setup += [f"mkdir {root}/{e} && mount --rbind /{e} {root}/{e}" for e in entries]
    setup += [f"ln -s {os.readlink('/' + e)} {root}/{e}" for e in links]
    setup += [f"printf '%s' '{info}' > {root}/.flatpak-info",
              f"exec chroot {root} /usr/bin/python3 {script} '{bus.address}' '{json.dumps(calls)}'"]
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", " && ".join(setup)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def run_in_snap_cgroup(tmp_path, bus, snap, calls):
    """Runs the client in a cgroup named as snapd names a snap's scope."""
    cgroup = pathlib.Path(f"/sys/fs/cgroup/systemd/snap.{snap}.{snap}-{os.getpid()}.scope")
    if not pathlib.Path("/sys/fs/cgroup/systemd").is_dir():
        cgroup = pathlib.Path(f"/sys/fs/cgroup/snap.{snap}.{snap}-{os.getpid()}.scope")
    try:
        cgroup.mkdir()
    except OSError as error:
        pytest.skip(f"cannot make a cgroup to stand for a snap's scope here ({error})")
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    try:
        out = subprocess.run(
            ["sh", "-ec", f"echo $$ > {cgroup}/cgroup.procs && exec /usr/bin/python3 {script} \"$0\" \"$1\"",
             bus.address, json.dumps(calls)], capture_output=True, text=True, timeout=60)
    finally:
        cgroup.rmdir()
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def home(tmp_path):
    directory = tmp_path / "home"
    (directory / ".var" / "app" / FLAT / "outbox").mkdir(parents=True)
    (directory / ".var" / "app" / OTHER / "outbox").mkdir(parents=True)
    (directory / "snap" / "chat" / "outbox").mkdir(parents=True)
    return directory


@pytest.fixture
def isolated_agent(agent_factory, home):
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    # Offline, so registrations stay put: NetworkManager mode on a system bus where NetworkManager
    # does not run. (With no system bus at all the agent falls back to the kernel's default route,
    # which this machine has: syncs then ran and finished under the test's feet.)
    system_bus = PrivateBus("system")
    env = dict(os.environ, HOME=str(home), DBUS_SYSTEM_BUS_ADDRESS=system_bus.address)
    yield agent_factory(network="networkmanager", env=env).start()
    system_bus.stop()


def register(app, tag, handler, options=None):
    return ["Register", [app, tag, handler, options or {}], "sssa{sv}"]


def test_a_flatpak_app_reaches_only_its_own_registrations(isolated_agent, bus, tmp_path, home):
    owner = Client(bus)  # unsandboxed: the other app's own, trusted
    owner.register(OTHER, "secret", "hang")
    own_data = home / ".var" / "app" / FLAT
    allowed = {"outbox": f"{own_data}/outbox", "url": "https://sync.example.org/up"}
    calls = [
        register(FLAT, "outbox", "upload", allowed),                                        # 0 own id, safe handler
        ["GetTags", [FLAT], "s"],                                                            # 1
        ["GetRegistration", [FLAT, "outbox"], "ss"],                                         # 2
        register(OTHER, "outbox", "upload", allowed),                                        # 3 another app's id
        ["GetTags", [OTHER], "s"],                                                           # 4
        ["GetRegistration", [OTHER, "secret"], "ss"],                                        # 5
        ["Unregister", [OTHER, "secret"], "ss"],                                             # 6
        ["Trigger", [OTHER, "secret"], "ss"],                                                # 7
        ["GetPeriodicTags", [OTHER], "s"],                                                   # 8
        ["RegisterPeriodic", [OTHER, "p", "ok", 3600, {}], "sssta{sv}"],                     # 9
        register(FLAT, "run", "exec", {"command": "true"}),                                  # 10 not sandbox-safe
        ["Unregister", [FLAT, "outbox"], "ss"],                                              # 11 own: allowed
    ]
    results = run_in_flatpak_sandbox(tmp_path, bus, FLAT, calls)
    denied = "org.bgsync.Error.AccessDenied"
    assert results[0] == ["ok", None]
    assert results[1] == ["ok", ["outbox"]]
    assert results[2][0] == "ok" and results[2][1]["handler"] == "upload"
    for index in range(3, 11):
        assert results[index][0] == denied, (index, calls[index], results[index])
        assert FLAT in results[index][1], f"the message says which app the caller is: {results[index][1]}"
    assert "not available to sandboxed apps" in results[10][1]
    assert results[11] == ["ok", True]
    # The other app's registration is untouched, and unsandboxed callers still reach everything.
    assert owner.call("GetTags", OTHER) == ["secret"]
    assert owner.call("GetRegistration", OTHER, "secret")["handler"] == "hang"
    assert owner.call("GetTags", FLAT) == []
    print(f"\nisolation (Flatpak): {len(calls)} calls from a sandboxed process checked, "
          f"{sum(r[0] == denied for r in results)} refused with AccessDenied")


def test_a_flatpak_app_names_only_paths_and_urls_inside_its_own_data(isolated_agent, bus, tmp_path, home):
    """Path and URL options are the ones each handler's plugin declares (HandlerInfo.pathOptions
    and .urlOptions): `upload` declares `outbox` and `url`, `settings` declares `file` and `url`."""
    own_data = home / ".var" / "app" / FLAT
    (own_data / "escape").symlink_to(home / ".var" / "app" / OTHER)
    allowed = {"outbox": f"{own_data}/outbox", "url": "https://sync.example.org/up"}
    calls = [
        register(FLAT, "o2", "upload", dict(allowed, outbox="/etc")),                        # 0 path outside
        register(FLAT, "o3", "upload", dict(allowed, outbox=f"{own_data}/../{OTHER}/outbox")),  # 1 climbing out
        register(FLAT, "o4", "upload", dict(allowed, outbox=f"{own_data}/escape/outbox")),  # 2 symlink out
        register(FLAT, "o5", "upload", dict(allowed, outbox=f"{own_data}ter/outbox")),      # 3 prefix look-alike
        register(FLAT, "o6", "upload", dict(allowed, url="file:///etc/passwd")),            # 4 not http(s)
        register(FLAT, "o7", "settings", {"file": f"{home}/.config/x.ini", "url": "https://a.example/"}),  # 5
        register(FLAT, "outbox", "upload", allowed),                                        # 6 inside: allowed
    ]
    results = run_in_flatpak_sandbox(tmp_path, bus, FLAT, calls)
    for index in range(0, 6):
        assert results[index][0] == "org.bgsync.Error.AccessDenied", (index, calls[index], results[index])
        assert FLAT in results[index][1]
    assert results[6] == ["ok", None]
    assert Client(bus).call("GetTags", FLAT) == ["outbox"]


def test_a_flatpak_app_fetches_only_into_its_own_data(isolated_agent, bus, tmp_path, home):
    """`fetch` declares `directory` a path option and `url`/`urls` URL options: a directory
    outside the app's data, or any URL of the list that is not http(s), is refused at Register."""
    own_data = home / ".var" / "app" / FLAT
    episode = "https://cdn.example.org/show/42.mp3"
    calls = [
        register(FLAT, "f1", "fetch", {"directory": f"{home}/Podcasts", "url": episode}),            # 0 outside
        register(FLAT, "f2", "fetch", {"directory": f"{own_data}/../{OTHER}/x", "url": episode}),    # 1 climbing out
        register(FLAT, "f3", "fetch", {"directory": f"{own_data}/podcasts",
                                       "urls": [episode, "file:///etc/passwd"]}),                    # 2 a file:// URL
        register(FLAT, "f4", "fetch", {"directory": f"{own_data}/podcasts",
                                       "urls": [episode, "https://cdn.example.org/show/43.mp3"]}),   # 3 inside: allowed
    ]
    results = run_in_flatpak_sandbox(tmp_path, bus, FLAT, calls)
    for index in range(0, 3):
        assert results[index][0] == "org.bgsync.Error.AccessDenied", (index, calls[index], results[index])
        assert FLAT in results[index][1]
    assert "Option 'directory' must be a path inside" in results[0][1]
    assert "Option 'urls' must be an http:// or https:// URL" in results[2][1]
    assert results[3] == ["ok", None]
    assert Client(bus).call("GetTags", FLAT) == ["f4"]
    assert not (home / "Podcasts").exists()


def test_a_flatpak_sandbox_without_an_app_id_is_refused(isolated_agent, bus, tmp_path):
    # A runtime's sandbox has [Runtime] and no [Application] name.
    results = run_in_flatpak_sandbox(tmp_path, bus, "", [["GetTags", [FLAT], "s"]])
    assert results[0][0] == "org.bgsync.Error.AccessDenied"
    assert "no app id" in results[0][1]


def test_a_snap_reaches_only_its_own_registrations(isolated_agent, bus, tmp_path, home):
    Client(bus).register(OTHER, "secret", "hang")
    calls = [
        register("snap.chat", "outbox", "upload", {"outbox": f"{home}/snap/chat/outbox", "url": "https://x.example/"}),
        ["GetTags", ["snap.chat"], "s"],
        ["GetTags", [OTHER], "s"],
        ["Unregister", [OTHER, "secret"], "ss"],
        register("snap.chat", "run", "exec", {"command": "true"}),
        # The path option `upload` declares, outside the snap's data directory.
        register("snap.chat", "o2", "upload",
                 {"outbox": f"{home}/.var/app/{OTHER}/outbox", "url": "https://x.example/"}),
    ]
    results = run_in_snap_cgroup(tmp_path, bus, "chat", calls)
    assert results[0] == ["ok", None]
    assert results[1] == ["ok", ["outbox"]]
    for index in range(2, 6):
        assert results[index][0] == "org.bgsync.Error.AccessDenied", (index, results[index])
        assert "snap.chat" in results[index][1]
    assert Client(bus).call("GetTags", OTHER) == ["secret"]
    print(f"\nisolation (Snap cgroup): {len(calls)} calls checked, 4 refused with AccessDenied")


def test_unsandboxed_callers_are_trusted(isolated_agent, bus):
    c = Client(bus)
    c.register(OTHER, "t", "exec", {"command": "true"})
    c.register(FLAT, "t", "hang")
    assert c.call("GetTags", OTHER) == ["t"] and c.call("GetTags", FLAT) == ["t"]
