# SPDX-License-Identifier: Apache-2.0
"""A dbus-daemon of our own for tests and the demo, never the user's bus."""

import os
import select
import shutil
import signal
import subprocess
import tempfile

import dbus


# The limits of Debian's session.conf: a flood test may have thousands of calls in flight.
SESSION_LIMITS = "".join(f'<limit name="{name}">{value}</limit>' for name, value in [
    ("max_incoming_bytes", 1000000000), ("max_outgoing_bytes", 1000000000), ("max_message_size", 1000000000),
    ("max_completed_connections", 100000), ("max_incomplete_connections", 10000),
    ("max_connections_per_user", 100000), ("max_names_per_connection", 50000),
    ("max_match_rules_per_connection", 50000), ("max_replies_per_connection", 50000)])


class PrivateBus:
    """A dbus-daemon of our own, listening on a socket in a temporary directory."""

    def __init__(self, kind="session", service_dirs=(), env=None, wrapper=()):
        """`service_dirs`: directories of D-Bus service files the bus may start (activation);
        `env`: the daemon's environment, which the services it starts inherit; `wrapper`: a
        command the daemon is started through (such as `unshare --net ...`)."""
        self.dir = tempfile.mkdtemp(prefix=f"bgsync-{kind}-bus-")
        self.address = f"unix:path={self.dir}/bus"
        config = os.path.join(self.dir, f"{kind}.conf")
        # Our own configuration, with only the service directories given: an installed bgsyncd
        # package must never be activated in place of the agent under test.
        with open(config, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>{kind}</type><listen>{self.address}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
<allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy>
{"".join(f"<servicedir>{d}</servicedir>" for d in service_dirs)}
{SESSION_LIMITS if kind == "session" else ""}</busconfig>
""")
        # --fork returns only once the bus listens, and prints the daemon's pid.
        out = subprocess.run(
            [*wrapper, "dbus-daemon", f"--config-file={config}", "--fork", "--print-pid=1", "--nopidfile"],
            check=True, capture_output=True, text=True, env=env)
        self.pid = int(out.stdout.split()[0])

    def connect(self):
        return dbus.bus.BusConnection(self.address)

    def stop(self):
        """Ends the daemon and returns once it has exited (the daemon forked: it is not our child,
        unless the caller is a child subreaper, as the integration tests' pytest is; its pidfd
        tells either way)."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            try:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    signal.pidfd_send_signal(pidfd, sig)
                    if select.select([pidfd], [], [], 10)[0]:
                        break
            except ProcessLookupError:
                pass
            finally:
                os.close(pidfd)
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
