# SPDX-License-Identifier: Apache-2.0
"""Link swaps after Register, end to end: a Flatpak-like app (its root holds `.flatpak-info`)
registers `upload`, `settings` and `fetch` for paths inside its data directory while offline, then
swaps the outbox, a parent directory, a file and a download directory for symbolic links to the
user's ~/.ssh. When the
mocked NetworkManager goes online, the real agent runs the real handlers with the confinement
it recorded at Register: no byte of the outside files reaches the server, nothing outside is
moved, deleted or written, and each sync ends with a detail that says why. An unconfined app
doing the same swap is followed, as `open(2)` would (the control that shows the swap is seen)."""

import http.server
import os
import threading
import time

import pytest

from conftest import Client, wait_until
from test_boundary import FLAT, OTHER, snap_cgroup, start_flatpak_behind_proxy, start_in_cgroup
from test_network_dbusmock import CONNECTED_GLOBAL, nm  # noqa: F401  (the mocked NetworkManager fixture)

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- the user's key"


class Recorder(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.send_header("ETag", '"1"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST

    def do_GET(self):
        # What a `fetch` would write into ~/.ssh if it followed the swapped link.
        body = b"ssh-ed25519 AAAA attacker"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Recorder.bodies = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def old(path):
    """Files younger than 1 s are not sent yet (see Plugins/README.md)."""
    past = time.time() - 60
    os.utime(path, (past, past))


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_links_swapped_in_after_register_reach_nothing_outside(agent_factory, nm, tmp_path, bus, server):
    if os.geteuid() != 0:
        pytest.skip("needs root: builds a mount namespace, as Flatpak does")
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519").write_bytes(SECRET)
    (ssh / "settings.ini").write_bytes(SECRET)
    for name in ("id_ed25519", "settings.ini"):
        old(ssh / name)
    before = snapshot(ssh)
    own = home / ".var" / "app" / FLAT
    (own / "outbox").mkdir(parents=True)
    (own / "config").mkdir()
    (own / "config" / "settings.ini").write_text("[own]\n")
    (own / "notes.ini").write_text("[own]\n")
    (own / "podcasts").mkdir()
    public = home / "public"
    public.mkdir()
    (public / "hello.txt").write_bytes(b"PUBLIC")
    old(public / "hello.txt")
    (home / "other-outbox").mkdir()

    env = dict(os.environ, HOME=str(home), DBUS_SYSTEM_BUS_ADDRESS=nm.bus.address)
    agent = agent_factory(network="networkmanager", env=env).start()
    monitor = Client(bus)
    app = start_flatpak_behind_proxy(tmp_path, bus, FLAT)
    try:
        registered = [
            app.register(FLAT, "outbox", "upload", {"outbox": f"{own}/outbox", "url": server + "/up"}),
            app.register(FLAT, "parent", "settings", {"file": f"{own}/config/settings.ini", "url": server + "/s1"}),
            app.register(FLAT, "file", "settings", {"file": f"{own}/notes.ini", "url": server + "/s2"}),
            app.register(FLAT, "fetch", "fetch", {"directory": f"{own}/podcasts", "url": server + "/authorized_keys"}),
        ]
    finally:
        app.close()
    assert registered == [["ok", None]] * 4
    monitor.register(OTHER, "control", "upload", {"outbox": f"{home}/other-outbox", "url": server + "/c"})

    # After Register: the outbox, a parent directory and a file become links to ~/.ssh.
    (own / "outbox").rename(own / "outbox.was")
    (own / "outbox").symlink_to(ssh)
    (own / "config").rename(own / "config.was")
    (own / "config").symlink_to(ssh)
    (own / "notes.ini").unlink()
    (own / "notes.ini").symlink_to(ssh / "id_ed25519")
    (own / "podcasts").rename(own / "podcasts.was")
    (own / "podcasts").symlink_to(ssh)
    (home / "other-outbox").rmdir()
    (home / "other-outbox").symlink_to(public)

    nm.set_state(CONNECTED_GLOBAL)
    wait_until(lambda: {f[1] for f in monitor.finished} >= {"outbox", "parent", "file", "fetch", "control"}, 30,
               "the five syncs to finish")
    outcomes = {f[1]: (f[2], f[3]) for f in monitor.finished}
    for tag in ("outbox", "parent", "file", "fetch"):
        outcome, detail = outcomes[tag]
        assert outcome in ("failed", "retry-scheduled"), (tag, outcome, detail)
        assert detail, f"{tag}: the outcome says why"
    assert not any(SECRET in body for body in Recorder.bodies), "no byte of the outside files was sent"
    assert snapshot(ssh) == before, "nothing outside was moved, deleted or written"
    assert outcomes["control"][0] == "succeeded" and b"PUBLIC" in Recorder.bodies, \
        "the unconfined app's swapped link was followed: the swaps were in place when the syncs ran"
    print(f"\nlink swaps: {len(Recorder.bodies)} request bodies, none from ~/.ssh; "
          + "; ".join(f"{tag}: {outcomes[tag][0]} ({outcomes[tag][1]})"
                      for tag in ("outbox", "parent", "file", "fetch")))
    agent.stop()


def test_a_snap_instances_swapped_links_reach_nothing_outside(agent_factory, nm, tmp_path, bus, server):
    """The same for a client in a parallel-installed snap's scope, `snap.chat_x.chat-….scope`."""
    if os.geteuid() != 0:
        pytest.skip("needs root: makes a cgroup, as snapd does")
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519").write_bytes(SECRET)
    old(ssh / "id_ed25519")
    before = snapshot(ssh)
    own = home / "snap" / "chat_x"
    (own / "outbox").mkdir(parents=True)
    (own / "notes.ini").write_text("[own]\n")
    env = dict(os.environ, HOME=str(home), DBUS_SYSTEM_BUS_ADDRESS=nm.bus.address)
    agent_factory(network="networkmanager", env=env).start()
    monitor = Client(bus)
    cgroup = snap_cgroup(f"snap.chat_x.chat-{os.getpid()}.scope")
    app = start_in_cgroup(tmp_path, bus, cgroup)
    try:
        registered = [
            app.register("snap.chat_x", "outbox", "upload", {"outbox": f"{own}/outbox", "url": server + "/up"}),
            app.register("snap.chat_x", "file", "settings", {"file": f"{own}/notes.ini", "url": server + "/s"}),
        ]
    finally:
        app.close()
        cgroup.rmdir()
    assert registered == [["ok", None]] * 2
    (own / "outbox").rename(own / "outbox.was")
    (own / "outbox").symlink_to(ssh)
    (own / "notes.ini").unlink()
    (own / "notes.ini").symlink_to(ssh / "id_ed25519")
    nm.set_state(CONNECTED_GLOBAL)
    wait_until(lambda: {f[1] for f in monitor.finished} >= {"outbox", "file"}, 30, "both syncs to finish")
    for app_id, tag, outcome, detail in monitor.finished:
        assert app_id == "snap.chat_x" and outcome in ("failed", "retry-scheduled") and "link" in detail, detail
    assert not any(SECRET in body for body in Recorder.bodies)
    assert snapshot(ssh) == before
