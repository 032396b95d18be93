# SPDX-License-Identifier: Apache-2.0
"""A stand-in app for the `app` handler's tests, started by the bus through a service file
(real activation): owns APP_ID, exports org.bgsync.App at APP_ID's GApplication path and
answers Sync as MODE says:

  answer OUTCOME [RETRY_AFTER]  answer OUTCOME (success, retry, failure, or anything else)
  hang                          take the call and never answer
  exit                          exit as soon as the call arrives (mid-call)
  bad-reply                     answer with signature (s) instead of (sa{sv})
  flood-detail                  answer failure with a 200 kB detail full of control characters

Each call is appended as a JSON line to LOG; the process id goes to LOG.pid at start.
Usage: sync_app.py APP_ID LOG MODE [ARGS...]"""

import json
import os
import sys

from gi.repository import Gio, GLib

app_id, log, mode, *mode_args = sys.argv[1:]
path = "/" + app_id.replace(".", "/").replace("-", "_")
with open(log + ".pid", "w") as f:
    f.write(str(os.getpid()))

INTERFACE = Gio.DBusNodeInfo.new_for_xml(open(os.environ["BGSYNC_APP_XML"]).read()).interfaces[0]
held = []  # invocations of `hang`, kept so that they are never answered


def on_call(connection, sender, object_path, interface, method, parameters, invocation):
    tag, event = parameters.unpack()
    with open(log, "a") as f:
        f.write(json.dumps({"tag": tag, "event": event, "sender": sender, "path": object_path}) + "\n")
    if mode == "hang":
        held.append(invocation)
    elif mode == "exit":
        os._exit(3)
    elif mode == "bad-reply":
        # Past GDBus's own check of the reply's type, as a careless or hostile peer would.
        reply = invocation.get_message().new_method_reply()
        reply.set_body(GLib.Variant("(s)", ("success",)))
        connection.send_message(reply, Gio.DBusSendMessageFlags.NONE)
        held.append(invocation)
    elif mode == "flood-detail":
        detail = "line\n\x1b[31mred\x1b[0m\r" * 20000
        invocation.return_value(GLib.Variant("(sa{sv})", ("failure", {"detail": GLib.Variant("s", detail)})))
    else:
        result = {"detail": GLib.Variant("s", f"answered {mode_args[0]} as told")}
        if len(mode_args) > 1:
            result["retry-after"] = GLib.Variant("d", float(mode_args[1]))
        invocation.return_value(GLib.Variant("(sa{sv})", (mode_args[0], result)))


bus = Gio.bus_get_sync(Gio.BusType.SESSION)
bus.register_object(path, INTERFACE, on_call, None, None)
loop = GLib.MainLoop()
Gio.bus_own_name_on_connection(bus, app_id, Gio.BusNameOwnerFlags.NONE, None, lambda *a: loop.quit())
loop.run()
