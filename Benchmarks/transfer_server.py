#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The loopback HTTP server of BGSyncBench's transfer rows (Benchmarks/BGSyncBench/TransferBench.swift).

Prints its port on stdout, then serves until killed. Built so that it is not what limits a
transfer: a request body is read straight into one 4 MiB buffer (no copy, no hash) and only
counted; a file is sent with sendfile(2). Both the agent's handlers and the reference curl go
to this same server, so what it costs falls on both alike.

  POST/PUT any path      reads the body (Content-Length), answers 204 once every byte is in
  GET /files/NAME        the file NAME of --dir, with Content-Length, ETag and Last-Modified
Each body received is printed as one JSON line on stdout once read: path, arrived (Unix time
of the request line), done (of the last byte), length (bytes read).
"""
import argparse
import json
import os
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 4 << 20
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    directory = "."

    def log_message(self, *args):
        pass

    def parse_request(self):
        self.arrived = time.time()
        return super().parse_request()

    def answer(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def receive(self):
        length = int(self.headers.get("Content-Length") or 0)
        buffer = memoryview(bytearray(CHUNK))
        left = length
        while left > 0:
            n = self.rfile.readinto(buffer[: min(left, CHUNK)])
            if not n:
                break
            left -= n
        entry = {"path": self.path, "arrived": self.arrived, "done": time.time(), "length": length - left}
        with lock:
            print(json.dumps(entry), flush=True)
        if left:
            self.close_connection = True
            return
        self.answer(204)

    do_POST = receive
    do_PUT = receive

    def do_GET(self):
        name = self.path[len("/files/"):] if self.path.startswith("/files/") else ""
        if not name or "/" in name or name.startswith("."):
            self.answer(404)
            return
        try:
            fd = os.open(os.path.join(self.directory, name), os.O_RDONLY)
        except OSError:
            self.answer(404)
            return
        try:
            info = os.fstat(fd)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(info.st_size))
            self.send_header("ETag", '"%x-%x"' % (info.st_size, info.st_mtime_ns))
            self.send_header("Last-Modified", formatdate(info.st_mtime, usegmt=True))
            self.end_headers()
            self.wfile.flush()
            offset = 0
            while offset < info.st_size:
                sent = os.sendfile(self.connection.fileno(), fd, offset, min(info.st_size - offset, 1 << 30))
                if sent == 0:
                    break
                offset += sent
        except OSError:
            self.close_connection = True
        finally:
            os.close(fd)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    Handler.directory = parser.parse_args().dir
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
