# SPDX-License-Identifier: Apache-2.0
"""The Debian packages, built, linted, installed and used as a user would use them.

Slow (a release build) and it changes this machine: it installs bgsyncd and
libbgsync-plugin-dev with dpkg -i and purges them at the end (also when they were installed
before). Needs root, as here and in CI. Run it alone with `make deb-check`.
BGSYNC_DEB_REUSE=1 tests the packages of the last build in .build-deb/ instead of building.
"""

import json
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("BGSYNC_DEB_OUTDIR", ROOT / ".build-deb"))
PACKAGES = ["bgsyncd", "libbgsync-plugin-dev"]
MULTIARCH = subprocess.run(
    ["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True, text=True, check=True
).stdout.strip()
PRIVATE = Path(f"/usr/lib/{MULTIARCH}/bgsync")
HANDLERS = ["exec", "upload", "settings", "notify", "fetch"]
ELF_FILES = [Path("/usr/bin/bgsyncd"), Path("/usr/bin/bgsyncctl"), Path("/usr/libexec/bgsync/bgsync-worker")] + [
    PRIVATE / "plugins" / f"{handler}.so" for handler in HANDLERS
]
TOOLCHAIN = Path("/opt/swift")
# `systemctl --global enable` (deb-systemd-helper --user) makes this link for every user.
ENABLED_LINK = Path("/etc/systemd/user/default.target.wants/bgsyncd.service")
APP = "org.example.PackagingTest"

# How the exec handler takes its command (Plugins/exec): a string array, run without a shell.
EXEC_COMMAND_OPTION = "command"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="installs the packages with dpkg -i, which needs root (CI runs as root)")


def run(*argv, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([str(a) for a in argv], **kwargs)


def can_hide_toolchain() -> bool:
    """Whether we may bind-mount over /opt/swift in a private mount namespace."""
    return run("unshare", "--mount", "true").returncode == 0


def without_toolchain(argv: list) -> list:
    """argv, run where /opt/swift looks empty (a private mount namespace), when we can."""
    if not TOOLCHAIN.exists() or not can_hide_toolchain():
        return argv
    script = 'mount --bind "$0" /opt/swift && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, EMPTY_DIR.name, *map(str, argv)]


EMPTY_DIR = tempfile.TemporaryDirectory(prefix="bgsync-empty-")  # removed when Python exits


# --- Building and linting -------------------------------------------------------------------


@pytest.fixture(scope="module")
def packages() -> dict:
    """The freshly built .changes and .deb files."""
    if os.environ.get("BGSYNC_DEB_REUSE") != "1":
        result = run(ROOT / "packaging" / "build-deb", capture_output=False)
        assert result.returncode == 0, "packaging/build-deb failed (its output is above)"
    changes = sorted(OUT.glob("bgsync_*.changes"))
    assert len(changes) == 1, f"expected one .changes in {OUT}, found {changes}"
    debs = {package: sorted(OUT.glob(f"{package}_*.deb")) for package in PACKAGES}
    for package, found in debs.items():
        assert len(found) == 1, f"expected one {package} .deb in {OUT}, found {found}"
    return {"changes": changes[0], **{package: found[0] for package, found in debs.items()}}


def test_lintian_reports_no_errors(packages):
    result = run("lintian", "--fail-on", "error", "--tag-display-limit", "0", packages["changes"])
    print(result.stdout)
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert result.returncode == 0 and not errors, "lintian found errors:\n" + "\n".join(errors) + result.stderr


def test_the_agent_package_holds_no_toolchain_paths(packages):
    """No RUNPATH into the toolchain: the package must work where no toolchain is installed."""
    contents = run("dpkg-deb", "--contents", packages["bgsyncd"], check=True).stdout
    assert str(TOOLCHAIN) not in contents
    with tempfile.TemporaryDirectory() as unpacked:
        run("dpkg-deb", "-x", packages["bgsyncd"], unpacked, check=True)
        for elf in ELF_FILES:
            dynamic = run("readelf", "-d", Path(unpacked + str(elf)), check=True).stdout
            runpath = [line for line in dynamic.splitlines() if "RUNPATH" in line or "RPATH" in line]
            assert runpath and all(str(TOOLCHAIN) not in line for line in runpath), f"{elf}: {runpath}"
            assert any(f"{PRIVATE}/swift" in line for line in runpath), f"{elf} does not look in {PRIVATE}/swift: {runpath}"


# --- Installed --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(packages):
    """The packages installed with dpkg -i; purged afterwards, leaving the machine as it was."""
    result = run("dpkg", "-i", packages["bgsyncd"], packages["libbgsync-plugin-dev"])
    try:
        assert result.returncode == 0, f"dpkg -i failed:\n{result.stdout}{result.stderr}"
        yield
    finally:
        purge = run("dpkg", "--purge", *PACKAGES)
        assert purge.returncode == 0, f"dpkg --purge failed:\n{purge.stdout}{purge.stderr}"
        leftovers = [
            str(path) for path in ["/etc/bgsync", "/usr/bin/bgsyncd", PRIVATE, "/usr/include/bgsync", ENABLED_LINK]
            if Path(path).exists() or Path(path).is_symlink()
        ]
        assert not leftovers, f"left after purge: {leftovers}"


@needs_root
def test_files_are_where_the_fhs_and_debian_put_them(installed):
    expected = [
        *ELF_FILES,
        PRIVATE / "swift" / "libswiftCore.so",
        Path("/etc/bgsync/bgsyncd.conf"),
        Path("/usr/lib/systemd/user/bgsyncd.service"),
        Path("/usr/share/dbus-1/services/org.bgsync.service"),
        Path("/usr/share/dbus-1/interfaces/org.bgsync.Manager.xml"),
        Path("/usr/share/dbus-1/interfaces/org.bgsync.App.xml"),
        Path("/usr/include/bgsync/bgsync-plugin.h"),
        Path(f"/usr/lib/{MULTIARCH}/pkgconfig/bgsync-plugin.pc"),
        Path("/usr/share/man/man8/bgsyncd.8.gz"),
        Path("/usr/share/man/man1/bgsyncctl.1.gz"),
        Path("/usr/share/man/man5/bgsyncd.conf.5.gz"),
        Path("/usr/share/man/man7/bgsync-plugin.7.gz"),
        Path("/usr/share/bash-completion/completions/bgsyncctl"),
        Path("/usr/share/zsh/vendor-completions/_bgsyncctl"),
        Path("/usr/share/fish/vendor_completions.d/bgsyncctl.fish"),
    ]
    missing = [str(path) for path in expected if not path.exists()]
    assert not missing, f"not installed: {missing}"


@needs_root
def test_the_user_unit_is_enabled_for_every_user(installed):
    assert ENABLED_LINK.is_symlink(), f"{ENABLED_LINK} is missing: the unit would not start with the session"
    assert os.readlink(ENABLED_LINK) == "/usr/lib/systemd/user/bgsyncd.service"


@needs_root
def test_installed_programs_and_handlers_load_the_bundled_runtime(installed):
    for elf in ELF_FILES:
        libraries = run("ldd", elf, check=True).stdout
        assert "not found" not in libraries, f"{elf}:\n{libraries}"
        assert str(TOOLCHAIN) not in libraries, f"{elf} loads from the toolchain:\n{libraries}"
        assert f"{PRIVATE}/swift/libswiftCore.so" in libraries, f"{elf}:\n{libraries}"


@needs_root
def test_installed_programs_run_with_the_toolchain_hidden(installed):
    if not can_hide_toolchain():
        pytest.skip("cannot hide /opt/swift: unshare --mount is not permitted here (needs CAP_SYS_ADMIN)")
    for program in ["/usr/bin/bgsyncctl", "/usr/bin/bgsyncd"]:
        result = run(*without_toolchain([program, "--help"]))
        assert result.returncode == 0, f"{program} --help without /opt/swift: {result.stderr}"
    # The installed worker loads each installed handler (one Swift runtime for both) and reads
    # what it is: `--probe` prints the plugin's name, description and sandbox_safe as JSON.
    for handler in HANDLERS:
        path = PRIVATE / "plugins" / f"{handler}.so"
        result = run(*without_toolchain(["/usr/libexec/bgsync/bgsync-worker", "--probe", path]))
        assert result.returncode == 0, f"bgsync-worker --probe {path} without /opt/swift: {result.stdout}{result.stderr}"
        assert json.loads(result.stdout.strip().splitlines()[-1])["name"] == handler, result.stdout


@needs_root
def test_a_plugin_builds_against_the_installed_header(installed, tmp_path):
    cflags = run("pkg-config", "--cflags", "bgsync-plugin", check=True).stdout.split()
    assert cflags == ["-I/usr/include/bgsync"]
    assert run("pkg-config", "--variable=plugindir", "bgsync-plugin", check=True).stdout.strip() == str(PRIVATE / "plugins")
    source = tmp_path / "probe.c"
    source.write_text(
        "#include <bgsync-plugin.h>\n"
        "BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t v) { (void)v; return NULL; }\n"
    )
    run("cc", "-shared", "-fPIC", "-Werror", *cflags, "-o", tmp_path / "probe.so", source, check=True)


# --- D-Bus activation and a sync, on a private session bus ----------------------------------


class PrivateSessionBus:
    """A dbus-daemon with the standard session configuration (so it activates services from
    /usr/share/dbus-1/services), in a throwaway home, with /opt/swift hidden when possible."""

    def __init__(self, home: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "XDG_"))}
        runtime = home / "run"
        runtime.mkdir(mode=0o700)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / "config"),
            XDG_STATE_HOME=str(home / "state"),
            XDG_DATA_HOME=str(home / "data"),
            XDG_RUNTIME_DIR=str(runtime),
        )
        self.env = env
        # The bus and the agent it starts write their output here, for failure messages.
        self.log_path = home / "bus.log"
        address_reader, address_writer = os.pipe()
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                without_toolchain(["dbus-daemon", "--session", "--nofork", f"--print-address={address_writer}"]),
                stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=[address_writer],
            )
        os.close(address_writer)
        with os.fdopen(address_reader) as addresses:
            ready, _, _ = select.select([addresses], [], [], 10)
            assert ready, f"dbus-daemon printed no address within 10 s:\n{self.log()}"
            self.address = addresses.readline().strip()
        assert self.address, f"dbus-daemon exited without printing its address:\n{self.log()}"

    def log(self) -> str:
        return self.log_path.read_text()

    def busctl(self, *args, timeout=60):
        return run("busctl", f"--address={self.address}", *args, env=self.env, timeout=timeout)

    def agent_pid(self):
        result = self.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                             "GetConnectionUnixProcessID", "s", "org.bgsync", timeout=10)
        return int(result.stdout.split()[1]) if result.returncode == 0 else None

    def close(self):
        agent = self.agent_pid()
        if agent is not None:
            os.kill(agent, signal.SIGTERM)
        self.process.terminate()
        self.process.wait(timeout=10)
        if agent is not None:
            deadline = time.monotonic() + 10
            while Path(f"/proc/{agent}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)  # not our child: no wait() possible; it is only teardown
            if Path(f"/proc/{agent}").exists():
                os.kill(agent, signal.SIGKILL)


@pytest.fixture
def session_bus(installed, tmp_path):
    bus = PrivateSessionBus(tmp_path)
    try:
        yield bus
    finally:
        bus.close()


@needs_root
def test_dbus_activation_starts_the_installed_agent(session_bus):
    result = session_bus.busctl("call", "org.bgsync", "/org/bgsync/Manager", "org.bgsync.Manager", "GetTags", "s", APP)
    assert result.returncode == 0, f"GetTags through D-Bus activation failed: {result.stderr}\n{session_bus.log()}"
    assert result.stdout.split() == ["as", "0"]
    assert session_bus.agent_pid() is not None


@needs_root
def test_bgsyncctl_talks_to_the_installed_agent(session_bus):
    result = run("/usr/bin/bgsyncctl", "tags", APP, "--address", session_bus.address, env=session_bus.env, timeout=60)
    assert result.returncode == 0, f"bgsyncctl tags failed ({result.returncode}): {result.stderr}\n{session_bus.log()}"
    assert result.stdout.strip() == ""


@needs_root
def test_a_registered_sync_runs_the_installed_exec_handler(session_bus, tmp_path):
    import dbus
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib

    fifo = tmp_path / "fired"
    os.mkfifo(fifo)
    # Opened before registering: the command's `echo` blocks until there is a reader.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    loop = GLib.MainLoop()
    seen = {"output": "", "finished": None}

    def on_output(fd, _condition):
        chunk = os.read(fd, 4096).decode()
        seen["output"] += chunk
        if seen["finished"] is not None and "fired" in seen["output"]:
            loop.quit()
        return bool(chunk)

    def on_signal(*args, member=None):
        if member == "SyncFinished" and APP in args and "run-command" in args:
            seen["finished"] = [str(a) for a in args]
            if "fired" in seen["output"]:
                loop.quit()

    DBusGMainLoop(set_as_default=True)
    connection = dbus.bus.BusConnection(session_bus.address)
    connection.add_signal_receiver(on_signal, dbus_interface="org.bgsync.Manager", member_keyword="member")
    # Sync signals go only to subscribers. This call also starts the installed agent by D-Bus
    # activation (the package's service file), before the Register below.
    connection.call_blocking("org.bgsync", "/org/bgsync/Manager", "org.bgsync.Manager", "Subscribe", "s", [""])
    GLib.io_add_watch(reader, GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, on_output)
    GLib.timeout_add_seconds(60, loop.quit)

    command = ["/bin/sh", "-c", f"echo fired > {fifo}"]
    result = session_bus.busctl("call", "--", "org.bgsync", "/org/bgsync/Manager", "org.bgsync.Manager", "Register",
                                "sssa{sv}", APP, "run-command", "exec", 1, EXEC_COMMAND_OPTION, "as", len(command), *command)
    assert result.returncode == 0, f"Register failed: {result.stderr}\n{session_bus.log()}"
    loop.run()
    os.close(reader)
    connection.close()

    assert "fired" in seen["output"], f"the exec handler did not run the command within 60 s:\n{session_bus.log()}"
    assert seen["finished"] is not None, f"no SyncFinished signal for the sync within 60 s:\n{session_bus.log()}"
    assert "succeeded" in seen["finished"], f"SyncFinished: {seen['finished']}"
    tags = session_bus.busctl("call", "org.bgsync", "/org/bgsync/Manager", "org.bgsync.Manager", "GetTags", "s", APP)
    assert tags.stdout.split() == ["as", "0"], f"a succeeded one-off sync should be gone: {tags.stdout}"
