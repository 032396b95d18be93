#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A chat server for the example, on loopback: prints each message POSTed to it, one a line,
and appends it to --log. With --background it forks once it listens and prints its pid, so a
script can go on at once without racing it."""

import argparse
import http.server
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log", help="append each message, one a line, to this file")
    parser.add_argument("--background", action="store_true", help="fork once listening; print the pid")
    args = parser.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            text = self.rfile.read(length).decode("utf-8", "replace")
            if args.log:
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(text + "\n")
            print(f"received: {text}", flush=True)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
    if args.background:
        pid = os.fork()
        if pid:
            print(pid, flush=True)
            os._exit(0)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
