#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`make demo`: the web article's story, played on this machine with no network hardware.

A chat app puts a message in its outbox while offline, asks bgsync to upload it once online, and
exits. Later the network comes back, and the message reaches the server with no app running.

Everything is private to the demo: a session bus, a system bus with a mocked NetworkManager
(python-dbusmock) that starts offline, a chat server on 127.0.0.1, and a state directory.
"""

import http.server
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))
from privatebus import PrivateBus  # noqa: E402  (the private buses the tests use too)

BIN = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".build/debug").resolve()
APP = "org.example.Emojoy"
received = threading.Event()


def step(text):
    print(f"==> {text}", flush=True)


class ChatServer(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(f"    server: received {body.decode(errors='replace')}", flush=True)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
        received.set()

    def log_message(self, *args):
        pass


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="bgsync-demo-"))
    buses, processes = [], []
    try:
        session, system = PrivateBus("session"), PrivateBus("system")
        buses += [session, system]
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=session.address, DBUS_SYSTEM_BUS_ADDRESS=system.address)
        step(f"private session bus {session.address}, and a system bus with a mocked NetworkManager")
        nm = subprocess.Popen([sys.executable, "-m", "dbusmock", "--template", "networkmanager",
                               "--parameters", '{"State": 20}'], env=env, stdout=subprocess.DEVNULL)
        processes.append(nm)
        subprocess.run(["gdbus", "wait", "--system", "--timeout", "20", "org.freedesktop.NetworkManager"],
                       env=env, check=True)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ChatServer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/messages"
        step(f"chat server listening on {url}")

        plugins = work / "plugins"
        plugins.mkdir(mode=0o755)
        for library in BIN.glob("libbgsync-handler-*.so"):
            shutil.copyfile(library, plugins / library.name.removeprefix("libbgsync-handler-"))
            os.chmod(plugins / library.name.removeprefix("libbgsync-handler-"), 0o644)
        agent = subprocess.Popen([str(BIN / "bgsyncd"), "--state-dir", str(work / "state"), "--plugin-dir", str(plugins),
                                  "--worker", str(BIN / "bgsync-worker"), "--network", "networkmanager"],
                                 env=env, stderr=subprocess.PIPE, text=True)
        processes.append(agent)
        for line in agent.stderr:
            if "ready on" in line:
                break
        synced = threading.Event()

        def follow_log():  # the agent logs each outcome; the demo waits for the sync's
            for line in agent.stderr:
                if "outbox: succeeded" in line:
                    synced.set()

        threading.Thread(target=follow_log, daemon=True).start()
        ctl = lambda *args: subprocess.run([str(BIN / "bgsyncctl"), *args], env=env, check=True,
                                           capture_output=True, text=True).stdout
        step("bgsyncd is running; it says: " + " ".join(ctl("state").split()))

        step("the user is offline and types a message: the app writes it to its outbox")
        outbox = work / "outbox"
        outbox.mkdir()
        draft = outbox / ".message.json.part"
        draft.write_text('{"from": "you", "text": "😺👍"}')
        draft.rename(outbox / "0001.json")
        os.utime(outbox / "0001.json", (0, 0))
        ctl("register", APP, "outbox", "upload", "-o", f"outbox={outbox}", "-o", f"url={url}")
        step("the app registered sync 'outbox' with the upload handler, and quit: "
             + " ".join(ctl("status", APP, "outbox").split()))

        step("the network comes back (NetworkManager: CONNECTED_GLOBAL)")
        subprocess.run(["gdbus", "call", "--system", "--dest", "org.freedesktop.NetworkManager", "--object-path",
                        "/org/freedesktop", "--method", "org.freedesktop.DBus.Mock.SetGlobalConnectionState", "70"],
                       env=env, check=True, capture_output=True)
        if not (received.wait(30) and synced.wait(30)):
            step("the message did not arrive within 30 s: something is wrong")
            return 1
        step(f"delivered; {len(list(outbox.glob('*.json')))} messages left in the outbox, and no app was running")
        return 0
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
        for bus in buses:
            bus.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
