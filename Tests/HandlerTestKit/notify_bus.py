#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A private session bus with python-dbusmock's notification_daemon, for the notify test.

Prints the bus address on stdout once the mock owns org.freedesktop.Notifications. Then each
line "calls" on stdin prints one JSON line: the Notify calls the mock received, as lists of
their arguments. Closing stdin tears everything down. With --no-daemon, the bus has no notification daemon.
"""
import json
import signal
import os
import sys

import dbus
import dbusmock


def plain(value):
    if isinstance(value, (dbus.Array, list)):
        return [plain(v) for v in value]
    if isinstance(value, (dbus.Dictionary, dict)):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (dbus.String, str)):
        return str(value)
    if isinstance(value, (dbus.Boolean, bool)):
        return bool(value)
    return int(value)


def main():
    # Foundation's Process starts us with most signals blocked; our children (dbus-daemon,
    # the mock) must die on SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    case = dbusmock.DBusTestCase
    case.start_session_bus()
    address = os.environ["DBUS_SESSION_BUS_ADDRESS"]
    if "--no-daemon" in sys.argv:
        print(address, flush=True)
        sys.stdin.read()
        case.stop_dbus(case.session_bus_pid)
        return
    server, mock = case.spawn_server_template("notification_daemon", {}, stdout=sys.stderr)
    print(address, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "calls":
                calls = mock.GetMethodCalls("Notify", dbus_interface=dbusmock.MOCK_IFACE)
                print(json.dumps([plain(args) for _, args in calls]), flush=True)
    finally:
        server.terminate()
        server.wait()
        case.stop_dbus(case.session_bus_pid)


if __name__ == "__main__":
    main()
