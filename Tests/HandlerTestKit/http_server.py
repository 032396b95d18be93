#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A programmable HTTP server on loopback for the handler tests.

Prints its port on stdout, then serves until killed (or stdin closes, unless --until-killed).

Control (paths under /_control, not recorded):
  POST /_control/script     JSON {"responses": [...], "resources": {"/path": {"body": "...", "etag": "\"v1\""}}}
      responses: served in order to the next requests, each
        {"status": 503, "headers": {"Retry-After": "7"}, "body": "text", "delay": 5, "drop": true}
        (drop: close the connection without answering; delay: seconds before answering)
      delay: seconds every later request without a scripted response waits before its answer
        (a slow server, for uploads that take a while)
      resources: paths served with ETags: GET returns body and ETag (404 if absent); PUT checks
        If-Match (412 if it differs) and If-None-Match: * (412 if it exists), stores the body and
        answers 200/201 with a new ETag.
  GET /_control/requests    JSON list of the requests received: method, path, headers, body (text),
                            length and sha256 (hex) of the body, peer (the client's port: the same
                            port twice means a kept connection)
  GET /_control/blob?size=N N bytes of a fixed pattern (byte i is i % 251), with Content-Length
With no scripted response left, a non-resource path answers 200 "ok".
"""
import hashlib
import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
scripted = []
resources = {}
received = []
etag_counter = [0]
default_delay = [0.0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        body = self.read_body()
        if self.path.startswith("/_control/"):
            return self.control(body)
        with lock:
            received.append({
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace") if len(body) <= 65536 else "",
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "peer": self.client_address[1],
                "time": time.time(),
            })
            step = scripted.pop(0) if scripted else None
            delay = default_delay[0]
        if step is None and delay:
            time.sleep(delay)
        if step is not None:
            if step.get("delay"):
                time.sleep(step["delay"])
            if step.get("drop"):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            return self.answer(step.get("status", 200), step.get("body", "").encode(), step.get("headers"))
        if self.path in resources or self.command == "PUT":
            return self.resource(body)
        self.answer(200, b"ok")

    def resource(self, body):
        with lock:
            current = resources.get(self.path)
            if self.command == "GET":
                if current is None:
                    return self.answer(404)
                return self.answer(200, current["body"].encode(), {"ETag": current["etag"]})
            if_match = self.headers.get("If-Match")
            if_none_match = self.headers.get("If-None-Match")
            if if_match is not None and (current is None or if_match != current["etag"]):
                return self.answer(412)
            if if_none_match == "*" and current is not None:
                return self.answer(412)
            etag_counter[0] += 1
            etag = '"v%d"' % etag_counter[0]
            resources[self.path] = {"body": body.decode("utf-8", "replace"), "etag": etag}
            self.answer(201 if current is None else 200, b"", {"ETag": etag})

    def control(self, body):
        if self.path == "/_control/script":
            script = json.loads(body or b"{}")
            with lock:
                scripted.extend(script.get("responses", []))
                default_delay[0] = float(script.get("delay", default_delay[0]))
                for path, value in script.get("resources", {}).items():
                    resources[path] = value
            return self.answer(200, b"{}")
        if self.path.startswith("/_control/blob?size="):
            size = int(self.path.split("=", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            pattern = bytes(i % 251 for i in range(251 * 256))
            sent = 0
            while sent < size:
                chunk = pattern[: min(len(pattern), size - sent)]
                self.wfile.write(chunk)
                sent += len(chunk)
            return
        if self.path == "/_control/requests":
            with lock:
                data = json.dumps(received).encode()
            return self.answer(200, data, {"Content-Type": "application/json"})
        self.answer(404)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    # Foundation's Process starts us with most signals blocked; our children (dbus-daemon,
    # the mock) must die on SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    if "--until-killed" in sys.argv[1:]:  # the bench: no stdin to close
        threading.Event().wait()
    sys.stdin.read()  # until the test closes stdin (or dies)


if __name__ == "__main__":
    main()
