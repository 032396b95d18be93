# SPDX-License-Identifier: Apache-2.0
"""Fixtures for bgsync's integration tests: a private dbus-daemon per test, the real agent on
it, and a real client (dbus-python) that records the agent's signals.

Nothing here touches the user's own session or system bus. Every process started is stopped
at the end of its test, pass or fail.
"""

import ctypes
import os
import pathlib
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import dbus
import dbus.mainloop.glib
import pytest
from gi.repository import GLib

from privatebus import PrivateBus  # noqa: F401  (tests import it from here)

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("BGSYNC_BIN") or ROOT / ".build" / "debug")
TEST_PLUGIN_SOURCES = ROOT / "Tests" / "plugins"
HEADER_DIR = ROOT / "Sources" / "CBGSyncPlugin" / "include"
# The C test plugins the agent tests use (the worker tests use more, such as ones that crash
# while loading; those cost every agent start a probe and add nothing here).
INTEGRATION_PLUGINS = ["ok", "retry", "fail", "segfault", "hang", "noop", "options", "wrong-abi", "no-symbol", "noisy",
                       "stoppable", "progress"]

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

NAME = "org.bgsync"
PATH = "/org/bgsync/Manager"
IFACE = "org.bgsync.Manager"

# Short timings so that back-off runs in fractions of a second.
FAST_CONFIG = """\
[sync]
retry-initial-delay=0.2
retry-factor=2
event-timeout=3
min-periodic-interval=1
[limits]
concurrent-events=4
"""


# Every process a test starts must end with the test. pytest becomes a child subreaper, so a
# process whose parent exits (a daemon that forked, an `sh -c '... &'` child) is reparented to
# pytest, not to init, and stays visible as a descendant; after each test (and each module and
# the session, for fixtures of those scopes) the descendants that were not there before must be
# gone. Processes in another PID namespace (unshare --pid) are seen too: /proc here shows them
# under their host pids, and their orphans go to that namespace's init, itself a descendant (and
# when it ends the kernel ends the rest). Mount namespaces and chroots do not hide a process.
PR_SET_CHILD_SUBREAPER = 36
# How long a process that is already on its way out (signalled by a teardown that did not wait,
# or a worker ending after its agent) may take before it counts as left behind: waited for on
# each process's pidfd, so a clean teardown costs nothing.
EXIT_GRACE = 10.0


def pytest_configure(config):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(error)}")


def process_table():
    """{(pid, start time): (parent pid, state, command)} of every process: the start time tells a
    process from a later one that got the same pid."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # ended meanwhile
        # pid (comm) state ppid ... starttime (field 22); comm may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        table[(int(entry), int(fields[19]))] = (int(fields[1]), fields[0], command or f"[{comm}]")
    return table


def descendants():
    """The processes below pytest, as in `process_table`."""
    table = process_table()
    children = {}
    for key, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(key)
    found, pending = {}, [os.getpid()]
    while pending:
        for key in children.get(pending.pop(), []):
            found[key] = table[key]
            pending.append(key[0])
    return found


def reap_zombies(before):
    """Collects the exit status of ended children that were not there before: orphans
    reparented to pytest, and children a test never waited for (pytest is done with those)."""
    for (pid, start), (parent, state, _) in descendants().items():
        if state == "Z" and parent == os.getpid() and (pid, start) not in before:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def new_processes(before):
    return {key: value for key, value in descendants().items() if key not in before and value[1] != "Z"}


def wait_for_exit(keys, timeout):
    """Waits on the processes' pidfds until each has ended or `timeout` has passed."""
    deadline = time.monotonic() + timeout
    fds = []
    try:
        for pid, _ in keys:
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                pass
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        waiting = len(fds)
        while waiting and (remaining := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(remaining * 1000):
                poller.unregister(fd)
                waiting -= 1
    finally:
        for fd in fds:
            os.close(fd)


def check_no_process_outlives(before, what):
    """Fails naming every process started since `before` that is still running (after
    EXIT_GRACE), once it has killed them, so the next test starts clean."""
    reap_zombies(before)
    left = new_processes(before)
    if left:
        wait_for_exit(left, EXIT_GRACE)
        reap_zombies(before)
        left = new_processes(before)
    if not left:
        return
    named = [f"{pid} {command!r}" for (pid, _), (_, _, command) in sorted(left.items())]
    # Killed until none is left: a killed parent's children come to pytest, or die with their
    # PID namespace's init.
    for _ in range(10):
        for pid, _ in (remaining := new_processes(before)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not remaining:
            break
        wait_for_exit(remaining, EXIT_GRACE)
        reap_zombies(before)
    pytest.fail(f"{what} left {len(named)} process(es) running (now killed): " + "; ".join(named), pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def no_process_outlives_the_session():
    before = descendants()
    yield
    check_no_process_outlives(before, "the session's fixtures")


@pytest.fixture(autouse=True, scope="module")
def no_process_outlives_its_module(request):
    before = descendants()
    yield
    check_no_process_outlives(before, f"{request.module.__name__}'s module fixtures")


@pytest.fixture(autouse=True)
def no_process_outlives_its_test(request):
    before = descendants()
    yield
    check_no_process_outlives(before, request.node.name)


def wait_until(predicate, timeout=10.0, what="condition"):
    """Iterates the GLib main context (where D-Bus signals arrive) until predicate() is true."""
    context = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    timer_fired = []
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        # Wake at the deadline even if nothing arrives; otherwise block on the bus.
        source = GLib.timeout_add(int(remaining * 1000) + 1, lambda: timer_fired.append(1) or False)
        context.iteration(True)
        GLib.source_remove(source) if not timer_fired else timer_fired.clear()
    return True


class Agent:
    """bgsyncd on a private bus, with its own state dir, plugins and config."""

    def __init__(self, bus, workdir, plugin_dir, config=FAST_CONFIG, network="always-online", extra_args=(), env=None,
                 launcher=subprocess.Popen, power="ac"):
        self.bus = bus
        self.workdir = pathlib.Path(workdir)
        self.state_dir = self.workdir / "state"
        self.config_path = self.workdir / "bgsyncd.conf"
        self.config_path.write_text(config)
        self.plugin_dir = plugin_dir
        self.network = network
        # "ac" unless a test gives a private system bus with UPower: never the machine's own.
        self.power = power
        self.extra_args = list(extra_args)
        self.env = env
        self.launcher = launcher  # how to start a process: subprocess.Popen, or into a namespace
        self.process = None
        self.output = b""
        self.exited = False
        self.changed = threading.Condition()
        self.log_path = self.workdir / "agent.log"

    def command(self):
        return [str(BIN / "bgsyncd"), "--address", self.bus.address, "--config", str(self.config_path),
                "--state-dir", str(self.state_dir), "--plugin-dir", str(self.plugin_dir),
                "--worker", str(BIN / "bgsync-worker"), "--network", self.network, "--power", self.power, "--verbose",
                *self.extra_args]

    def start(self, expect_ready=True):
        env = dict(os.environ if self.env is None else self.env)
        env.pop("JOURNAL_STREAM", None)
        process = self.launcher(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        with self.changed:  # at once, so that a previous process's reader sees either all old or all new
            self.process = process
            self.output = b""
            self.exited = False
        threading.Thread(target=self._read_output, args=(process,), daemon=True).start()
        if expect_ready:
            self.wait_for_log("ready on")
        return self

    def _read_output(self, process):
        """Copies the agent's log into memory and a file, waking whoever waits for a line. The
        pipe of a stopped agent can stay open a while after a restart (its dying workers hold it):
        only the current process's reader may touch the state that start() reset."""
        with open(self.log_path, "ab") as log:
            while chunk := process.stdout.read1(65536):
                log.write(chunk)
                log.flush()
                with self.changed:
                    if process is self.process:
                        self.output += chunk
                    self.changed.notify_all()
        with self.changed:
            if process is self.process:
                self.exited = True
            self.changed.notify_all()

    def wait_for_log(self, text, timeout=20.0):
        """Waits for the agent to log `text` (its own announcement, not a guess of time)."""
        needle = text.encode()
        with self.changed:
            self.changed.wait_for(lambda: needle in self.output or self.exited, timeout)
            if needle in self.output:
                return
        if self.exited:
            self.process.wait(timeout=20)
            raise AssertionError(f"agent exited with {self.process.returncode} before logging {text!r}:\n{self.log_text()}")
        raise AssertionError(f"agent never logged {text!r} in {timeout} s:\n{self.log_text()}")

    def wait_exit(self, timeout=20.0):
        return self.process.wait(timeout=timeout)

    def log_text(self):
        return self.output.decode(errors="replace")

    def kill(self, sig=signal.SIGKILL):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Client:
    """A real D-Bus client of the agent that records its signals. The agent sends sync signals
    only to connections that asked (they are never broadcast): with `subscribe_all`, the client
    subscribes to every app's, as `bgsyncctl monitor` does, now and whenever an agent starts;
    without, it hears only of the app ids it has called the agent about."""

    def __init__(self, bus, subscribe_all=True):
        self.connection = bus.connect()
        self.started = []
        self.finished = []
        self.properties = []
        self.connection.add_signal_receiver(
            lambda *a: self.started.append(tuple(a)), "SyncStarted", IFACE, None, PATH)
        self.connection.add_signal_receiver(
            lambda *a: self.finished.append(tuple(a)), "SyncFinished", IFACE, None, PATH)
        self.connection.add_signal_receiver(
            lambda iface, changed, invalidated: self.properties.append(dict(changed)),
            "PropertiesChanged", "org.freedesktop.DBus.Properties", None, PATH)
        if subscribe_all:
            self.connection.add_signal_receiver(
                lambda name, old, new: new and self._subscribe_async(), "NameOwnerChanged", "org.freedesktop.DBus",
                "org.freedesktop.DBus", "/org/freedesktop/DBus", arg0=NAME)
            if self.connection.name_has_owner(NAME):
                self.call("Subscribe", "")

    def _subscribe_async(self):
        proxy = self.connection.get_object(NAME, PATH, introspect=False)
        proxy.get_dbus_method("Subscribe", IFACE)("", reply_handler=lambda: None, error_handler=lambda e: None)

    @property
    def manager(self):
        return dbus.Interface(self.connection.get_object(NAME, PATH, introspect=False), IFACE)

    def call(self, method, *args, signature=None):
        proxy = self.connection.get_object(NAME, PATH, introspect=False)
        return proxy.get_dbus_method(method, IFACE)(*args, signature=signature)

    def prop(self, name):
        proxy = self.connection.get_object(NAME, PATH, introspect=False)
        return proxy.Get(IFACE, name, dbus_interface="org.freedesktop.DBus.Properties")

    def register(self, app, tag, handler, options=None):
        return self.call("Register", app, tag, handler, dbus.Dictionary(options or {}, signature="sv"),
                         signature="sssa{sv}")

    def finished_for(self, tag):
        return [f for f in self.finished if f[1] == tag]

    def wait_finished(self, tag, count=1, timeout=15.0):
        wait_until(lambda: len(self.finished_for(tag)) >= count, timeout, f"{count} SyncFinished for {tag!r}")
        return self.finished_for(tag)


def compile_plugin(source, output):
    subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Werror", f"-I{HEADER_DIR}", "-o", str(output), str(source)],
                   check=True)
    os.chmod(output, 0o644)


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory):
    """The shipped handlers from the build plus the C test plugins, as the agent would find them."""
    directory = tmp_path_factory.mktemp("plugins")
    os.chmod(directory, 0o755)
    for library in BIN.glob("libbgsync-handler-*.so"):
        name = library.name.removeprefix("libbgsync-handler-")
        shutil.copyfile(library, directory / name)
        os.chmod(directory / name, 0o644)
    for stem in INTEGRATION_PLUGINS:
        compile_plugin(TEST_PLUGIN_SOURCES / f"{stem}.c", directory / f"test-{stem}.so")
    return directory


@pytest.fixture
def bus():
    b = PrivateBus()
    yield b
    b.stop()


@pytest.fixture
def agent_factory(bus, tmp_path, plugin_dir):
    agents = []

    def make(**kwargs):
        kwargs.setdefault("plugin_dir", plugin_dir)
        a = Agent(bus, tmp_path, **kwargs)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.stop()


@pytest.fixture
def agent(agent_factory):
    return agent_factory().start()


@pytest.fixture
def client(bus, agent):
    return Client(bus)
