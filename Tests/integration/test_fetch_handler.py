# SPDX-License-Identifier: Apache-2.0
"""The `fetch` handler through the real agent and worker: Debian's nginx on loopback serving the
files (Range, If-Range, ETags), a relay in front of it that cuts a transfer after N bytes, and
hostile servers (a redirect loop, a Content-Disposition that climbs out, a size far over the
limit, a body longer than it said, a 206 ending at 2^64-1, a name taken by the app's own file, an
ETag with a bare CR)."""

import hashlib
import http.server
import os
import re
import socket
import subprocess
import threading

import dbus
import pytest

from conftest import FAST_CONFIG, wait_until

APP = "org.example.Podcasts"
NGINX = "/usr/sbin/nginx"
# Longer than the fast default: the worker hashes what arrived (debug build) before the rename.
CONFIG = FAST_CONFIG.replace("event-timeout=3", "event-timeout=20")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """nginx with a configuration of the test's own (prefix, logs and pid in a temp dir), serving
    `www` on a free loopback port. The access log records status, Range and If-Range per request."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.www = prefix / "www"
        self.www.mkdir(parents=True)
        (prefix / "temp").mkdir()
        self.access_log = prefix / "access.log"
        for attempt in range(5):
            self.port = free_port()
            conf = prefix / "nginx.conf"
            temp = prefix / "temp"
            user = "user root;\n" if os.geteuid() == 0 else ""
            conf.write_text(f"""{user}worker_processes 1;
error_log {prefix}/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    log_format fetch escape=none '$status|$http_range|$http_if_range|$body_bytes_sent';
    access_log {self.access_log} fetch;
    client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.www};
    }}
}}
""")
            self.process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_until(lambda: self.process.poll() is not None or self.accepts(), 10, "nginx listening")
            except AssertionError:
                self.stop()
                raise
            if self.process.poll() is None:
                return
            error = self.process.stderr.read().decode()
            if "Address already in use" not in error:
                raise AssertionError(f"nginx did not start: {error}")
        raise AssertionError("no free port for nginx after 5 tries")

    def accepts(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self):
        """(status, range, if-range, body bytes) of each request so far."""
        if not self.access_log.exists():
            return []
        lines = self.access_log.read_text().splitlines()
        return [tuple(line.split("|")) for line in lines]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stderr.close()


class Relay:
    """A TCP relay on loopback in front of `port`. The first `cuts` connections are cut once
    `cut_after` bytes came back from the server (both sides closed, as a lost link does);
    `on_cut` runs right after a cut. Counts the bytes the server sent through it."""

    def __init__(self, port, cut_after, cuts=1, on_cut=None):
        self.target = port
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.on_cut = on_cut
        self.bytes_down = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                cut = self.cut_after if self.cuts_left > 0 else None
                self.cuts_left -= 1
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pipe, args=(client, server, None, False), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, cut, True), daemon=True).start()

    def pipe(self, source, sink, cut, down):
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if cut is not None:
                    data = data[: cut - sent]
                sink.sendall(data)
                sent += len(data)
                if down:
                    with self.lock:
                        self.bytes_down += len(data)
                if cut is not None and sent >= cut:
                    if self.on_cut:
                        self.on_cut()
                    break
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def stop(self):
        self.stopped = True
        self.listener.close()


@pytest.fixture
def nginx(tmp_path):
    server = Nginx(tmp_path / "nginx")
    yield server
    server.stop()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def done_marker(url):
    """What the handler keeps beside a file in place: its name and validator, for a 304 next time."""
    return f".fetch-{sha256(url.encode())[:24]}.bgsync-done"


def test_a_cut_transfer_resumes_with_range_and_only_the_rest_comes_again(agent_factory, bus, nginx, tmp_path):
    from conftest import Client
    agent_factory(config=CONFIG).start()
    client = Client(bus)
    episode = os.urandom(3_000_000)
    (nginx.www / "episode-42.mp3").write_bytes(episode)
    relay = Relay(nginx.port, cut_after=1_000_000)
    try:
        directory = tmp_path / "Podcasts"
        client.register(APP, "episode-42", "fetch", {
            "url": relay.url("/episode-42.mp3"), "directory": str(directory), "sha256": sha256(episode)})
        finished = client.wait_finished("episode-42", count=2, timeout=30)
    finally:
        relay.stop()
    assert [f[2] for f in finished] == ["retry-scheduled", "succeeded"], finished
    assert finished[1][3] == "fetched 1 file: episode-42.mp3"
    assert (directory / "episode-42.mp3").read_bytes() == episode
    # No partial file, no validator: only the file and what a repeat asks the server with.
    assert leftovers(directory) == [done_marker(relay.url("/episode-42.mp3")), "episode-42.mp3"]
    requests = nginx.requests()
    assert [r[0] for r in requests] == ["200", "206"], requests
    first_cut = 1_000_000
    # The rest from exactly what had arrived: the cut's bytes less the first response's headers.
    assert requests[1][1].startswith("bytes=") and first_cut - 1024 < int(requests[1][1][6:-1]) < first_cut, requests
    assert requests[1][2].startswith('"'), "If-Range carries nginx's strong ETag"
    # What came over the wire: the file once, plus two responses' headers (each under 1 KiB).
    print(f"\nfetch resume: {len(episode)} bytes file, {relay.bytes_down} bytes through the relay "
          f"(cut after {first_cut})")
    assert len(episode) <= relay.bytes_down <= len(episode) + 2048


def test_a_file_changed_between_range_requests_starts_over(agent_factory, bus, nginx, tmp_path):
    from conftest import Client
    agent_factory(config=CONFIG).start()
    client = Client(bus)
    old = os.urandom(2_000_000)
    new = os.urandom(1_500_000)
    path = nginx.www / "episode.mp3"
    path.write_bytes(old)

    def replace():
        path.write_bytes(new)
        os.utime(path, (1_000_000_000, 1_000_000_000))  # another mtime, so another ETag

    relay = Relay(nginx.port, cut_after=700_000, on_cut=replace)
    try:
        directory = tmp_path / "Podcasts"
        client.register(APP, "changed", "fetch", {"url": relay.url("/episode.mp3"), "directory": str(directory)})
        finished = client.wait_finished("changed", count=2, timeout=30)
    finally:
        relay.stop()
    assert [f[2] for f in finished] == ["retry-scheduled", "succeeded"], finished
    assert (directory / "episode.mp3").read_bytes() == new
    assert leftovers(directory) == [done_marker(relay.url("/episode.mp3")), "episode.mp3"]
    requests = nginx.requests()
    # The second asked for the rest (Range, If-Range with the old ETag) and got the whole new file.
    assert [r[0] for r in requests] == ["200", "200"], requests
    assert requests[1][1].startswith("bytes=") and requests[1][2].startswith('"')
    assert int(requests[1][3]) == len(new)


ENDLESS = b"an episode a server cuts short with a hostile Content-Range"


class Hostile(http.server.BaseHTTPRequestHandler):
    """Servers that lie or attack, by path. `seen` holds (path, Range, If-None-Match) per request."""
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def endless_206(self):
        """206 from the byte asked for (0 without Range) to 2^64-1, total unknown."""
        start = (self.headers.get("Range") or "bytes=0-")[6:-1]
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-18446744073709551615/*")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"rest")

    def do_GET(self):
        Hostile.seen.append((self.path, self.headers.get("Range"), self.headers.get("If-None-Match")))
        if self.path == "/endless.mp3" and self.headers.get("Range"):
            self.endless_206()
        elif self.path == "/endless.mp3":
            self.send_response(200)
            self.send_header("ETag", '"e2"')
            self.send_header("Content-Length", str(len(ENDLESS)))
            self.end_headers()
            self.wfile.write(ENDLESS)
        elif self.path == "/only-endless.mp3":
            self.endless_206()
        elif self.path in ("/cd-notes", "/cr-etag.mp3"):
            body = b"from the server"
            self.send_response(200)
            if self.path == "/cd-notes":
                self.send_header("Content-Disposition", 'attachment; filename="notes.txt"')
            else:
                self.send_header("ETag", '"a\rb"')  # a bare CR, which libcurl passes on
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/climb.mp3":
            body = b"ssh-ed25519 AAAA attacker\n"
            self.send_response(200)
            self.send_header("Content-Disposition", 'attachment; filename="../../.ssh/authorized_keys"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/huge.mp3":
            # Announces 10 GB, then sends as long as the client reads.
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024**3))
            self.end_headers()
            try:
                for _ in range(10 * 1024):
                    self.wfile.write(b"\0" * 1024 * 1024)
            except OSError:
                pass
        elif self.path == "/unannounced.mp3":
            # No length at all (the body ends when the connection does): 3 MB.
            self.close_connection = True
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(3):
                    self.wfile.write(b"\1" * 1024 * 1024)
            except OSError:
                pass
        elif self.path == "/longer.mp3":
            # Says 1000 bytes, sends 2 MB.
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                self.wfile.write(b"\2" * 2 * 1024 * 1024)
            except OSError:
                pass
            self.close_connection = True
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def hostile():
    Hostile.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def fetch_once(client, tag, options):
    client.register(APP, tag, "fetch", {"max-attempts": dbus.UInt32(1), **options})
    return client.wait_finished(tag, timeout=30)[0]


def test_a_redirect_loop_is_a_clear_failure(client, hostile, tmp_path):
    finished = fetch_once(client, "loop", {"url": hostile + "/loop", "directory": str(tmp_path / "d")})
    assert finished[2] == "failed"
    assert "more than 10 redirects (a redirect loop?)" in finished[3]
    assert leftovers(tmp_path / "d") == []


def test_a_content_disposition_that_climbs_out_writes_nothing(client, hostile, tmp_path):
    home = tmp_path / "home"
    directory = home / "Podcasts" / "show"
    directory.parent.mkdir(parents=True)  # `show` itself the handler makes
    finished = fetch_once(client, "climb", {"url": hostile + "/climb.mp3", "directory": str(directory)})
    assert finished[2] == "failed"
    assert "'../../.ssh/authorized_keys' is refused: it holds a path separator" in finished[3]
    assert leftovers(directory) == []
    assert not (home / ".ssh").exists() and not (home / "Podcasts" / ".ssh").exists()
    assert not list(tmp_path.rglob("authorized_keys"))


def test_an_announced_size_over_the_total_fails_and_leaves_nothing(client, hostile, tmp_path):
    directory = tmp_path / "d"
    finished = fetch_once(client, "huge", {"url": hostile + "/huge.mp3", "directory": str(directory),
                                           "download-total": dbus.UInt64(1_000_000)})
    assert finished[2] == "failed"
    assert "announced 10737418240 bytes, over download-total (1000000 bytes); nothing kept" in finished[3]
    assert leftovers(directory) == []


def test_a_body_without_length_is_counted_as_it_arrives(client, hostile, tmp_path):
    directory = tmp_path / "d"
    finished = fetch_once(client, "unannounced", {"url": hostile + "/unannounced.mp3", "directory": str(directory),
                                                  "download-total": dbus.UInt64(1_000_000)})
    assert finished[2] == "failed"
    assert "the server sent more than download-total (1000000 bytes) allows; nothing kept" in finished[3]
    assert leftovers(directory) == []


def test_a_body_longer_than_announced_is_cut_at_what_was_announced(client, hostile, tmp_path):
    directory = tmp_path / "d"
    finished = fetch_once(client, "longer", {"url": hostile + "/longer.mp3", "directory": str(directory),
                                             "download-total": dbus.UInt64(1_000_000)})
    assert finished[2:] == ("succeeded", "fetched 1 file: longer.mp3")
    assert (directory / "longer.mp3").read_bytes() == b"\2" * 1000
    assert leftovers(directory) == [done_marker(hostile + "/longer.mp3"), "longer.mp3"]


def leave_partial(directory, url, data, validator):
    """What a cut attempt leaves: the partial file and the validator beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    key = sha256(url.encode())[:24]
    (directory / f".fetch-{key}.bgsync-part").write_bytes(data)
    (directory / f".fetch-{key}.bgsync-validator").write_text(validator + "\n")


def test_a_206_that_ends_at_2_64_minus_1_starts_the_file_over(client, hostile, tmp_path):
    """Content-Range: bytes N-18446744073709551615/* once crashed the worker (an overflow in the
    check): now it is refused, and the file starts over in the same event."""
    directory = tmp_path / "d"
    url = hostile + "/endless.mp3"
    leave_partial(directory, url, ENDLESS[:10], '"e1"')
    finished = fetch_once(client, "endless", {"url": url, "directory": str(directory)})
    assert finished[2:] == ("succeeded", "fetched 1 file: endless.mp3")
    assert (directory / "endless.mp3").read_bytes() == ENDLESS
    assert leftovers(directory) == [done_marker(url), "endless.mp3"]
    assert [r[1] for r in Hostile.seen] == ["bytes=10-", None]


def test_a_server_of_endless_206s_fails_clearly_and_leaves_nothing(client, hostile, tmp_path):
    directory = tmp_path / "d"
    url = hostile + "/only-endless.mp3"
    leave_partial(directory, url, b"0123456789", '"e1"')
    finished = fetch_once(client, "only-endless", {"url": url, "directory": str(directory)})
    assert finished[2] == "failed", finished
    assert finished[3] == f"{url}: a 206 to a request without Range, nothing arrived", finished
    assert leftovers(directory) == []
    assert [r[1] for r in Hostile.seen] == ["bytes=10-", None]


def test_a_name_the_server_chose_never_replaces_a_file_the_app_keeps(client, hostile, tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "notes.txt").write_text("the app's own notes")
    url = hostile + "/cd-notes"
    finished = fetch_once(client, "notes", {"url": url, "directory": str(directory)})
    assert finished[2] == "failed"
    assert finished[3].startswith(f"{url}: a file named notes.txt is already in the directory and is not from an "
                                  "earlier download of this URL; it is kept"), finished
    assert (directory / "notes.txt").read_text() == "the app's own notes"
    assert leftovers(directory) == ["notes.txt"]


def test_an_etag_with_a_bare_cr_is_not_kept_and_repeats_still_work(client, hostile, tmp_path):
    """Kept, it went back as If-None-Match, which HTTPClient refuses: every later event failed."""
    directory = tmp_path / "d"
    url = hostile + "/cr-etag.mp3"
    for _ in range(2):
        client.finished.clear()
        finished = fetch_once(client, "cr", {"url": url, "directory": str(directory)})
        assert finished[2:] == ("succeeded", "fetched 1 file: cr-etag.mp3"), finished
    assert [r[2] for r in Hostile.seen] == [None, None]
    assert (directory / done_marker(url)).read_text() == "cr-etag.mp3\n\n"


def test_several_files_then_a_repeat_costs_only_304s(client, nginx, tmp_path):
    files = {f"e{i}.ogg": os.urandom(100_000 + i) for i in range(3)}
    for name, data in files.items():
        (nginx.www / name).write_bytes(data)
    directory = tmp_path / "d"
    names = ["one.ogg", "two.ogg", "three.ogg"]
    urls = [nginx.url("/" + n) for n in files]
    options = {
        "urls": dbus.Array(urls, signature="s"), "names": dbus.Array(names, signature="s"),
        "sha256": dbus.Array([sha256(d) for d in files.values()], signature="s"), "directory": str(directory)}
    finished = fetch_once(client, "many", options)
    assert finished[2:] == ("succeeded", "fetched 3 files: one.ogg, two.ogg, three.ogg")
    assert [(directory / n).read_bytes() for n in names] == list(files.values())
    assert leftovers(directory) == sorted(names + [done_marker(u) for u in urls])
    # The same again (a repeat, or a retry after a later file failed): nothing is downloaded twice.
    (nginx.www / "e1.ogg").write_bytes(b"a new second episode")
    client.finished.clear()
    finished = fetch_once(client, "many", {k: v for k, v in options.items() if k != "sha256"})
    assert finished[2:] == ("succeeded", "fetched 1 file: two.ogg; unchanged: one.ogg, three.ogg")
    assert (directory / "two.ogg").read_bytes() == b"a new second episode"
    assert [r[0] for r in nginx.requests()] == ["200", "200", "200", "304", "200", "304"]


def test_a_wrong_checksum_fails_and_keeps_nothing(client, nginx, tmp_path):
    (nginx.www / "e.ogg").write_bytes(b"the real episode")
    directory = tmp_path / "d"
    finished = fetch_once(client, "sum", {"url": nginx.url("/e.ogg"), "directory": str(directory),
                                          "sha256": sha256(b"another episode")})
    assert finished[2] == "failed"
    assert re.search(r"e\.ogg: the SHA-256 is [0-9a-f]{64}, not [0-9a-f]{64} as given; nothing kept", finished[3])
    assert leftovers(directory) == []


def test_the_readme_fetch_example_runs_as_printed(plugin_dir, tmp_path):
    """The README's podcast block, line for line, with HOME in the test's directory. Its stand-in
    server listens on the fixed port 8642: the bus, the agent (and so its workers) and the block
    run in a network namespace of their own, so nothing else on the machine is in the way."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a network namespace keeps the example's fixed port 8642 private")
    from conftest import BIN, ROOT, Agent, Client, PrivateBus
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Download in the background: handler `fetch`"):]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    home = tmp_path / "home"
    home.mkdir()
    bus = PrivateBus(wrapper=["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'])
    enter = ["nsenter", f"--target={bus.pid}", "--net"]
    agent = None
    try:
        (tmp_path / "agent").mkdir()
        agent = Agent(bus, tmp_path / "agent", plugin_dir=plugin_dir, config=CONFIG,
                      launcher=lambda argv, **kw: subprocess.Popen(enter + argv, **kw))
        agent.start()
        client = Client(bus)
        env = dict(os.environ, HOME=str(home), PATH=f"{BIN}:{os.environ['PATH']}",
                   DBUS_SESSION_BUS_ADDRESS=bus.address)
        out = subprocess.run([*enter, "sh", "-ec", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.splitlines()[-1] == "episode-42.mp3", out.stdout
        finished = client.wait_finished("episode-42", timeout=30)
        assert finished == [(APP, "episode-42", "succeeded", "fetched 1 file: episode-42.mp3")]
        served = (tmp_path / "feed" / "episode-42.mp3").read_bytes()
        assert (home / "Podcasts" / "episode-42.mp3").read_bytes() == served
    finally:
        if agent:
            agent.stop()
        # What the block started and did not stop (its server, if it failed half-way): every
        # process left in the namespace but the bus, which stops last.
        namespace = os.readlink(f"/proc/{bus.pid}/ns/net")
        own = os.readlink("/proc/self/ns/net")
        for entry in os.listdir("/proc") if namespace != own else []:
            if entry.isdigit() and int(entry) != bus.pid:
                try:
                    if os.readlink(f"/proc/{entry}/ns/net") == namespace:
                        os.kill(int(entry), 9)
                except OSError:
                    pass
        bus.stop()
