#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Chat: a small desktop app whose outbox bgsync sends, with the app's own code.

    chat.py send [--server URL] TEXT   put TEXT in the outbox, ask bgsync for a sync, quit
    chat.py --gapplication-service     what the bus runs to wake the app (see the .service file)

`send` writes the message into the outbox and registers the sync `outbox` with handler `app`:
"call me when the network is up". The app quits. When the machine is online, bgsync calls
org.bgsync.App.Sync on org.example.Chat; the bus starts this app for it (DBusActivatable,
org.example.Chat.service), the app POSTs each message to the server named in the registration,
deletes it once the server accepted it, answers "success" and quits.

The outbox is $CHAT_OUTBOX, or $XDG_DATA_HOME/org.example.Chat/outbox; the server is --server,
or $CHAT_SERVER, or http://127.0.0.1:8765/messages (chat-server.py's default).
"""

import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

APP_ID = "org.example.Chat"
TAG = "outbox"
DEFAULT_SERVER = "http://127.0.0.1:8765/messages"

# dbus/org.bgsync.App.xml, installed as /usr/share/dbus-1/interfaces/org.bgsync.App.xml.
SYNC_INTERFACE = Gio.DBusNodeInfo.new_for_xml("""
<node>
  <interface name="org.bgsync.App">
    <method name="Sync">
      <arg name="tag" type="s" direction="in"/>
      <arg name="event" type="a{sv}" direction="in"/>
      <arg name="outcome" type="s" direction="out"/>
      <arg name="result" type="a{sv}" direction="out"/>
    </method>
  </interface>
</node>""").interfaces[0]


def outbox():
    return os.environ.get("CHAT_OUTBOX") or os.path.join(GLib.get_user_data_dir(), APP_ID, "outbox")


def send(text, server):
    """Puts a message in the outbox (written aside, then renamed in: never half a file) and
    registers the sync. Registering again before it ran is fine: bgsync syncs once."""
    directory = outbox()
    os.makedirs(directory, exist_ok=True)
    name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.txt"
    with open(os.path.join(directory, "." + name), "w", encoding="utf-8") as f:
        f.write(text)
    os.rename(os.path.join(directory, "." + name), os.path.join(directory, name))
    bus = Gio.bus_get_sync(Gio.BusType.SESSION)
    options = {"server": GLib.Variant("s", server)}
    bus.call_sync("org.bgsync", "/org/bgsync/Manager", "org.bgsync.Manager", "Register",
                  GLib.Variant("(sssa{sv})", (APP_ID, TAG, "app", options)),
                  None, Gio.DBusCallFlags.NONE, -1, None)
    print(f"queued {name}; bgsync will wake {APP_ID} to send it when the network is up")


def deliver(server, deadline_us):
    """POSTs each message, oldest first, deleting each once the server took it (so a repeat
    after a cut-off sends only what is left). Returns (outcome, detail)."""
    directory = outbox()
    names = sorted(n for n in os.listdir(directory) if not n.startswith(".")) if os.path.isdir(directory) else []
    sent = 0
    for name in names:
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            body = f.read()
        # Stay within bgsync's time cap for this event.
        remaining = max(1.0, deadline_us / 1e6 - time.time() - 1) if deadline_us else 30.0
        request = urllib.request.Request(server, data=body, method="POST",
                                         headers={"Content-Type": "text/plain; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=min(remaining, 60)) as response:
                response.read()
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code not in (408, 429):
                return "failure", f"the server refused {name}: HTTP {error.code}"
            return "retry", f"the server answered HTTP {error.code}; {sent} of {len(names)} sent"
        except OSError as error:
            return "retry", f"cannot reach {server}: {error}; {sent} of {len(names)} sent"
        os.unlink(path)
        sent += 1
    return "success", f"sent {sent} message(s)"


class Chat(Gio.Application):
    def __init__(self):
        super().__init__(application_id=APP_ID, flags=Gio.ApplicationFlags.DEFAULT_FLAGS)
        self.sync_registration = 0

    def do_dbus_register(self, connection, object_path):
        # Called before the app owns its name, so the bus delivers Sync only once it is exported.
        Gio.Application.do_dbus_register(self, connection, object_path)
        self.sync_registration = connection.register_object(object_path, SYNC_INTERFACE, self.on_call, None, None)
        return True

    def do_dbus_unregister(self, connection, object_path):
        if self.sync_registration:
            connection.unregister_object(self.sync_registration)
            self.sync_registration = 0
        Gio.Application.do_dbus_unregister(self, connection, object_path)

    def do_activate(self):
        print(f"{APP_ID}: nothing to show; use `chat.py send TEXT`", file=sys.stderr)

    def on_call(self, connection, sender, path, interface, method, parameters, invocation):
        tag, event = parameters.unpack()
        self.hold()  # keeps the app alive while it works; an app the bus started quits after release
        try:
            print(f"{APP_ID}: Sync {tag} attempt {event.get('attempt')}"
                  f"{' (last chance)' if event.get('last-chance') else ''}", file=sys.stderr)
            if tag != TAG:
                outcome, detail = "failure", f"{APP_ID} has no sync '{tag}'"
            else:
                outcome, detail = deliver(event.get("server", DEFAULT_SERVER), event.get("deadline", 0))
        except Exception as error:  # the app's own bug: say so, and let bgsync retry
            outcome, detail = "retry", f"{type(error).__name__}: {error}"
        invocation.return_value(GLib.Variant("(sa{sv})", (outcome, {"detail": GLib.Variant("s", detail)})))
        self.release()


def main(argv):
    if len(argv) >= 2 and argv[1] == "send":
        args = argv[2:]
        server = os.environ.get("CHAT_SERVER", DEFAULT_SERVER)
        if len(args) >= 2 and args[0] == "--server":
            server, args = args[1], args[2:]
        if len(args) != 1:
            print(__doc__, file=sys.stderr)
            return 2
        send(args[0], server)
        return 0
    return Chat().run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
