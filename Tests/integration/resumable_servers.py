# SPDX-License-Identifier: Apache-2.0
"""Servers for resumable uploads on loopback: tuspyserver (a tus 1.0.0 server from PyPI, not ours)
under uvicorn in a child process; our own server for draft-ietf-httpbis-resumable-upload, written
from the draft's text; and a relay that counts the bytes clients send and cuts connections."""

import hashlib
import http.server
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

TUS_APP = """
import sys
from fastapi import FastAPI
from tuspyserver import create_tus_router
app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=sys.argv[1]))
"""


class TusServer:
    """tuspyserver's router in a FastAPI app under uvicorn, on a loopback socket made here (so
    its port is known before it starts; no port guessed)."""

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        script = self.directory.parent / "tus_app.py"
        script.write_text(TUS_APP)
        code = ("import sys, uvicorn; sys.path.insert(0, sys.argv[3]); import tus_app; "
                "uvicorn.run(tus_app.app, fd=int(sys.argv[2]), log_level='warning')")
        self.process = subprocess.Popen(
            ["/usr/bin/python3", "-c", code, str(self.directory), str(self.listener.fileno()), str(script.parent)],
            pass_fds=[self.listener.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.wait_ready()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"tuspyserver exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"OPTIONS /files HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1.1"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("tuspyserver did not answer")

    def url(self, port=None):
        return f"http://127.0.0.1:{port or self.port}/files"

    def uploads(self):
        """The sha256 of each upload's data the server holds."""
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(self.directory.iterdir())
                if len(p.name) == 32]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.listener.close()


class IetfUploads:
    """What the draft server holds: each upload resource's bytes and whether it is complete."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data = {}
        self.complete = {}
        self.posts = 0
        self.lie_once = False


class IetfHandler(http.server.BaseHTTPRequestHandler):
    """draft-ietf-httpbis-resumable-upload, server side, from the draft: a POST with
    Upload-Complete gets a 104 (Upload Resumption Supported) naming the upload resource before
    the body is read; HEAD on the resource gives Upload-Offset and Upload-Complete; PATCH with
    Upload-Offset appends (409 with the right offset when they disagree). What a cut request
    delivered is kept."""

    protocol_version = "HTTP/1.1"
    store = None  # an IetfUploads, set per server

    def log_message(self, *args):
        pass

    def read_body(self, key):
        length = int(self.headers.get("Content-Length", "0"))
        left = length
        while left > 0:
            chunk = self.rfile.read1(min(left, 65536))
            if not chunk:
                break  # the client went away: keep what arrived
            with self.store.lock:
                self.store.data[key] += chunk
            left -= len(chunk)
        return left == 0

    def do_POST(self):
        key = uuid.uuid4().hex
        with self.store.lock:
            self.store.data[key] = b""
            self.store.complete[key] = False
            self.store.posts += 1
        self.send_response_only(104)
        self.send_header("Location", f"/uploads/{key}")
        self.send_header("Upload-Draft-Interop-Version", self.headers.get("Upload-Draft-Interop-Version", ""))
        self.end_headers()
        self.wfile.flush()
        if not self.read_body(key):
            self.close_connection = True
            return
        with self.store.lock:
            self.store.complete[key] = self.headers.get("Upload-Complete") == "?1"
        self.answer(201, key)

    def answer(self, status, key):
        self.send_response(status)
        self.send_header("Location", f"/uploads/{key}")
        self.send_header("Upload-Offset", str(len(self.store.data[key])))
        self.send_header("Upload-Complete", "?1" if self.store.complete[key] else "?0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def key(self):
        key = self.path.removeprefix("/uploads/")
        if key not in self.store.data:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return key

    def do_HEAD(self):
        key = self.key()
        if key is None:
            return
        self.send_response(204)
        offset = len(self.store.data[key])
        with self.store.lock:
            if self.store.lie_once:
                self.store.lie_once = False
                offset += 10_000_000  # bytes the client never sent
        self.send_header("Upload-Offset", str(offset))
        self.send_header("Upload-Complete", "?1" if self.store.complete[key] else "?0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def do_PATCH(self):
        key = self.key()
        if key is None:
            return
        offset = int(self.headers.get("Upload-Offset", "-1"))
        if offset != len(self.store.data[key]) or self.headers.get("Content-Type") != "application/partial-upload":
            self.send_response(409)
            self.send_header("Upload-Offset", str(len(self.store.data[key])))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self.read_body(key):
            self.close_connection = True
            return
        with self.store.lock:
            self.store.complete[key] = self.headers.get("Upload-Complete") == "?1"
        self.answer(204, key)


class IetfServer:
    def __init__(self):
        self.store = IetfUploads()
        handler = type("Handler", (IetfHandler,), {"store": self.store})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, port=None):
        return f"http://127.0.0.1:{port or self.port}/uploads"

    def uploads(self):
        """The sha256 of each complete upload."""
        with self.store.lock:
            return [hashlib.sha256(d).hexdigest() for k, d in self.store.data.items() if self.store.complete[k]]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Relay:
    """A TCP relay in front of a server: counts every byte clients send through it, and cuts
    (closes both sides of) a connection once it has carried `cut_after` bytes from the client,
    `cuts` times in all. `rate` (bytes/s) slows what it forwards, so a test can act mid-transfer."""

    def __init__(self, target_port, cut_after=None, cuts=0, rate=None, pause_after=None):
        self.target_port = target_port
        # `pause_after`: the first connection to carry that many bytes stops there, its client
        # held (nothing more read from it) until `release`, which then cuts it: a test kills a
        # process in between, and the server gets exactly those bytes (not what the kernel still
        # buffered for the killed process).
        self.pause_after = pause_after
        self.paused = threading.Event()
        self.released = threading.Event()
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.rate = rate
        self.sent = 0
        self.cut = 0
        self.lock = threading.Lock()
        self.moved = threading.Condition(self.lock)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.running = True
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self.forward_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self.forward_down, args=(upstream, client), daemon=True).start()

    def forward_up(self, client, upstream):
        carried = 0
        try:
            while True:
                data = client.recv(16384)
                if not data:
                    break
                with self.lock:
                    cut = self.cut_after is not None and self.cuts_left > 0 and carried + len(data) > self.cut_after
                    if cut:
                        data = data[:self.cut_after - carried]
                    pause = (self.pause_after is not None and not self.paused.is_set()
                             and carried + len(data) >= self.pause_after)
                    if pause:
                        data = data[:self.pause_after - carried]
                upstream.sendall(data)
                carried += len(data)
                with self.lock:
                    self.sent += len(data)
                    if cut:
                        self.cuts_left -= 1
                        self.cut += 1
                    self.moved.notify_all()
                if cut:
                    # A link stalls before it dies: what the server already answered (a 104)
                    # reaches the client before the reset, which would discard it.
                    time.sleep(0.5)
                    break
                if pause:
                    self.paused.set()
                    self.released.wait(60)
                    break
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def forward_down(self, upstream, client):
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait_paused(self, timeout=30):
        if not self.paused.wait(timeout):
            raise AssertionError(f"no connection carried {self.pause_after} bytes ({self.sent} went through)")

    def release(self):
        self.released.set()

    def wait_sent(self, count, timeout=30):
        with self.lock:
            if not self.moved.wait_for(lambda: self.sent >= count, timeout):
                raise AssertionError(f"only {self.sent} bytes went through the relay, waited for {count}")

    def stop(self):
        self.released.set()
        self.running = False
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def children(pid):
    """The child process ids of `pid` (from /proc: the agent's workers)."""
    found = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


if __name__ == "__main__":
    sys.exit("a module for the tests")
