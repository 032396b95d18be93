# SPDX-License-Identifier: Apache-2.0
"""A real NetworkManager in a throwaway network namespace, for end-to-end tests.

What it builds (root only; everything is removed again on exit, also when a test fails):

* a private system bus: a dbus-daemon in the root namespace listening on a unix socket in a
  temp dir (pathname sockets are reachable from any network namespace);
* a network namespace joined to the root namespace by a veth pair: the host end has
  ``HOST_IP`` (10.77.0.1/24) in the root namespace, the namespace end is configured by
  NetworkManager as ``NS_IP`` (10.77.0.2/24, gateway ``HOST_IP``, so the namespace has a default
  route). Traffic never leaves this machine;
* the real ``NetworkManager --debug`` (no daemon, log to stderr) inside the namespace, in a mount namespace of its own
  where /sys is read-only (so it manages devices without udev) and /run and
  /var/lib/NetworkManager are private, with its own config: keyfile plugin, one static profile
  for the veth, ``dns=none``, connectivity checking off, all state under the temp dir. It owns
  ``org.freedesktop.NetworkManager`` on the private bus, never touching the host's NetworkManager.
  Its log is ``NetworkManager.log`` in the temp dir; set ``BGSYNC_KEEP_NM_LOGS=1`` to keep it.

With connectivity checking off, NetworkManager reports ``NM_STATE_CONNECTED_GLOBAL`` as soon as
the profile is up (a default route exists). ``offline()`` is ``nmcli networking off`` (state
``asleep``; the address and route go away, so ``HOST_IP`` becomes unreachable); ``online()`` is
``nmcli networking on``. Both return once NetworkManager reports the new state.

Use as a pytest fixture::

    from netns import real_networkmanager  # noqa: F401  (pytest finds the fixture by name)

    def test_something(real_networkmanager):
        nm = real_networkmanager                      # started, online
        server = start_http_server(nm.HOST_IP, 8080)  # in the root namespace, on the veth host end
        agent = nm.run_in_ns(["bgsyncd", ...], env={"DBUS_SESSION_BUS_ADDRESS": ...})
        nm.offline()                                  # returns when NM says 'asleep'
        nm.online()                                   # returns when NM says 'connected'
        # processes from run_in_ns are killed at teardown

Processes in the namespace reach D-Bus daemons of the root namespace through ``unix:path=``
addresses (a session bus from ``dbus-daemon --session --print-address`` is one here), never
through abstract sockets, which are per network namespace. Only one harness per subnet may
run at a time on a machine: ``NetworkNamespace(subnet="10.78.0")`` picks another.

Or as a context manager: ``with NetworkNamespace() as nm: ...``. The fixture skips the test,
with the reason, when this cannot run here (not root, NetworkManager or ip missing, network
namespaces not permitted).
"""

import itertools
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

DBUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""

NM_CONFIG = """[main]
plugins=keyfile
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false
no-auto-default=*

[keyfile]
path={connections}

[connectivity]
enabled=false

[logging]
level=INFO
"""

PROFILE = """[connection]
id=bgsync-test-veth
uuid={uuid}
type=ethernet
interface-name={interface}
autoconnect=true

[ethernet]

[ipv4]
method=manual
address1={ns_ip}/24,{host_ip}

[ipv6]
method=disabled
"""


def skip_reason():
    """Why the real-NetworkManager harness cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs and NetworkManager)"
    for tool in ("NetworkManager", "nmcli", "ip", "unshare", "dbus-daemon", "gdbus"):
        if shutil.which(tool) is None:
            if tool in ("NetworkManager", "nmcli"):
                return f"NetworkManager not installed ({tool} not found)"
            return f"{tool} not found"
    probe = f"bgsync-probe-{os.getpid()}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"cannot create a network namespace here: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class HarnessError(Exception):
    """The harness could not set something up; the message says what and where to look."""


class NetworkNamespace:
    """A network namespace with a real NetworkManager on a private system bus (see module doc).

    Attributes: ``HOST_IP`` / ``host_ip`` (the veth end in the root namespace, for servers the
    namespace should reach), ``NS_IP`` (the namespace end), ``name`` (the netns name),
    ``bus_address`` (the private system bus), ``tmpdir`` (logs: ``NetworkManager.log``,
    ``dbus-daemon.log``).
    """

    HOST_IP = "10.77.0.1"
    NS_IP = "10.77.0.2"
    _instances = itertools.count()

    def __init__(self, subnet="10.77.0", start_timeout=30.0):
        """``subnet``: the /24 of the veth pair (its .1 is the host end, .2 the namespace end);
        harnesses running at the same time on one machine need different subnets."""
        self.HOST_IP = f"{subnet}.1"
        self.NS_IP = f"{subnet}.2"
        self.start_timeout = start_timeout
        tag = f"{os.getpid() % 10000}x{next(self._instances) % 100}"
        self.name = f"bgsync-nm-{tag}"
        self.host_if = f"bgsh{tag}"  # interface names: at most 15 characters
        self.ns_if = f"bgsn{tag}"
        self.host_ip = self.HOST_IP
        self.tmpdir = None
        self.bus_address = None
        self._dbus = None
        self._nm = None
        self._children = []
        self._netns_created = False

    # Lifecycle

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        """Builds everything and returns once NetworkManager reports 'connected'."""
        self.tmpdir = tempfile.mkdtemp(prefix="bgsync-nm-")
        self._start_bus()
        self._create_namespace()
        self._start_networkmanager()
        self.wait_for_state("connected", self.start_timeout)

    def stop(self):
        """Kills every process the harness started, deletes the namespace and the temp dir.
        Safe to call more than once and after a partial start."""
        for child in self._children:
            _kill(child)
        self._children = []
        _kill(self._nm, signal.SIGTERM)
        self._nm = None
        _kill(self._dbus)
        self._dbus = None
        if self._netns_created:
            # Deleting the namespace destroys its veth end, and with it the host end.
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self._netns_created = False
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        if self.tmpdir:
            if os.environ.get("BGSYNC_KEEP_NM_LOGS"):
                print(f"NetworkManager harness logs kept in {self.tmpdir}")
            else:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    # What tests use

    def env(self, extra=None):
        """The environment for a process that should see this NetworkManager."""
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address
        env.update(extra or {})
        return env

    def run_in_ns(self, argv, env=None, **popen_kwargs):
        """Starts ``argv`` inside the namespace with the private system bus in its environment
        (plus ``env``); returns the Popen. The harness kills it at teardown if still running."""
        child = subprocess.Popen(["ip", "netns", "exec", self.name, *argv],
                                 env=self.env(env), **popen_kwargs)
        self._children.append(child)
        return child

    def nmcli(self, *args, timeout=15):
        """Runs nmcli against this NetworkManager; returns its stdout (raises when it fails)."""
        result = subprocess.run(["nmcli", *args], env=self.env(), capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0:
            raise HarnessError(f"nmcli {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def state(self):
        """NetworkManager's global state as nmcli words it: 'connected', 'asleep', …"""
        return self.nmcli("-t", "-f", "STATE", "general").strip()

    def offline(self, timeout=10.0):
        """``nmcli networking off``; returns when NetworkManager reports 'asleep'."""
        self._switch("off", "asleep", timeout)

    def online(self, timeout=10.0):
        """``nmcli networking on``; returns when NetworkManager reports 'connected'."""
        self._switch("on", "connected", timeout)

    def wait_for_state(self, wanted, timeout=10.0):
        """Waits until NetworkManager's state is ``wanted`` ('connected' means connected-global),
        woken by ``nmcli monitor``'s announcements."""
        with self._monitor() as monitor:
            self._wait(monitor, wanted, timeout)

    # Internals

    def _switch(self, networking, wanted, timeout):
        # Subscribe first so the announcement cannot slip past between command and wait.
        with self._monitor() as monitor:
            self.nmcli("networking", networking)
            self._wait(monitor, wanted, timeout)

    def _monitor(self):
        # stdbuf: nmcli's stdout is a pipe here and would otherwise hold announcements back.
        return _Monitor(subprocess.Popen(["stdbuf", "-oL", "nmcli", "monitor"], env=self.env(), stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, bufsize=1))

    def _wait(self, monitor, wanted, timeout):
        deadline = time.monotonic() + timeout
        while self.state() != wanted:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(f"NetworkManager did not reach '{wanted}' within {timeout} s "
                                   f"(state '{self.state()}'); see {self.tmpdir}/NetworkManager.log")
            # Wakes on NetworkManager's next announcement. nmcli monitor subscribes a moment
            # after it starts and a change can fall into that moment, so the state is read
            # again at least every half second as well.
            monitor.next_line(min(remaining, 0.5))

    def _start_bus(self):
        socket_path = os.path.join(self.tmpdir, "system_bus_socket")
        config = os.path.join(self.tmpdir, "system-bus.conf")
        with open(config, "w") as f:
            f.write(DBUS_CONFIG.format(socket=socket_path))
        log = open(os.path.join(self.tmpdir, "dbus-daemon.log"), "w")
        self._dbus = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address"],
                                      stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        address = self._dbus.stdout.readline().strip()
        if not address:
            raise HarnessError(f"dbus-daemon did not start; see {self.tmpdir}/dbus-daemon.log")
        self.bus_address = address

    def _create_namespace(self):
        _run(["ip", "netns", "add", self.name])
        self._netns_created = True
        _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
        _run(["ip", "link", "set", self.ns_if, "netns", self.name])
        _run(["ip", "addr", "add", f"{self.HOST_IP}/24", "dev", self.host_if])
        _run(["ip", "link", "set", self.host_if, "up"])
        _run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"])

    def _start_networkmanager(self):
        root = self.tmpdir
        for sub in ("connections", "conf.d", "system-conf.d", "run", "lib"):
            os.makedirs(os.path.join(root, sub))
        config = os.path.join(root, "NetworkManager.conf")
        with open(config, "w") as f:
            f.write(NM_CONFIG.format(connections=os.path.join(root, "connections")))
        profile = os.path.join(root, "connections", "bgsync-test-veth.nmconnection")
        with open(os.open(profile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(PROFILE.format(uuid=uuid.uuid4(), interface=self.ns_if,
                                   ns_ip=self.NS_IP, host_ip=self.HOST_IP))
        # In a private mount namespace: read-only /sys makes NetworkManager manage devices
        # without udev; /run and /var/lib/NetworkManager are private so the host's are untouched.
        private_lib = (f"mount --bind {root}/lib /var/lib/NetworkManager && "
                       if os.path.isdir("/var/lib/NetworkManager") else "")
        script = (
            "set -e; mount -o remount,bind,ro /sys; "
            f"mount -t tmpfs -o mode=755 bgsync-nm-run /run; {private_lib}"
            f"exec NetworkManager --debug --config={config} --config-dir={root}/conf.d "
            f"--system-config-dir={root}/system-conf.d --intern-config={root}/lib/intern.conf "
            f"--state-file={root}/lib/NetworkManager.state --pid-file={root}/run/NetworkManager.pid"
        )
        log = open(os.path.join(root, "NetworkManager.log"), "w")
        self._nm = subprocess.Popen(
            ["ip", "netns", "exec", self.name, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", script],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        # gdbus wait follows NameOwnerChanged: returns as soon as NetworkManager is on the bus.
        waited = subprocess.run(["gdbus", "wait", "--system", "--timeout", str(int(self.start_timeout)),
                                 "org.freedesktop.NetworkManager"], env=self.env(), capture_output=True)
        if waited.returncode != 0 or self._nm.poll() is not None:
            raise HarnessError(f"NetworkManager did not appear on the private bus; "
                               f"see {root}/NetworkManager.log")


class _Monitor:
    """``nmcli monitor`` as a stream of announcements."""

    def __init__(self, process):
        self.process = process
        self.ended = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _kill(self.process)
        return False

    def next_line(self, timeout):
        """Waits for the next announcement; False on timeout or when nmcli monitor ended."""
        if self.ended:  # nothing left to wake us: just let the time pass
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return False
        self.ended = self.process.stdout.readline() == ""
        return not self.ended


def _run(argv):
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def _kill(process, first_signal=signal.SIGKILL):
    if process is None or process.poll() is not None:
        return
    process.send_signal(first_signal)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def real_networkmanager():
    """A started, online ``NetworkNamespace``; torn down after the test whatever happens.
    Skips (with the reason) where the harness cannot run."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with NetworkNamespace() as nm:
        yield nm
