# SPDX-License-Identifier: Apache-2.0
"""A Debian bookworm booted with systemd-nspawn, driven from outside as root and as its user.

The container shares the host's network (no --private-network): it has the host's default
route, which is what the agent's kernel network source looks at (there is no NetworkManager
inside). It is booted with `--register=no --keep-unit`, which a host without systemd needs
(no machined to register with, no scope unit to create). Commands run through `nsenter` into
the namespaces of the container's PID 1, as root or, through `runuser`, as the user with the
environment a login session would give (XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS).
"""

import os
import pathlib
import shutil
import signal
import subprocess
import time

USER = "alice"
UID = 1000


class Container:
    def __init__(self, tree: pathlib.Path, binds_ro: dict, log_dir: pathlib.Path, private_network=False):
        self.tree = pathlib.Path(tree)
        self.private_network = private_network
        self.binds_ro = binds_ro  # host path -> container path, mounted read-only
        self.log_dir = pathlib.Path(log_dir)
        self.nspawn = None
        self.pid1 = None
        self.boots = 0

    # --- the tree, before boot -----------------------------------------------------------

    @classmethod
    def from_cache(cls, cached: pathlib.Path, where: pathlib.Path, **kwargs):
        """A copy of the cached tree, with the user (lingering, so their manager starts at
        boot as after a login) and a hostname."""
        tree = pathlib.Path(where) / "root"
        subprocess.run(["cp", "-a", "--reflink=auto", str(cached), str(tree)], check=True)
        subprocess.run(["chroot", str(tree), "useradd", "--create-home", "--shell", "/bin/bash",
                        "--uid", str(UID), USER], check=True)
        linger = tree / "var/lib/systemd/linger"
        linger.mkdir(parents=True, exist_ok=True)
        (linger / USER).touch()
        (tree / "etc/hostname").write_text("bgsync-system-test\n")
        return cls(tree, log_dir=where, **kwargs)

    def home(self) -> pathlib.Path:
        return self.tree / "home" / USER

    def put_user_file(self, relative: str, data: bytes):
        """A file in the user's home, owned by the user with the directories leading to it."""
        path = self.home() / relative
        parts = pathlib.Path(relative).parts
        for i in range(1, len(parts)):
            directory = self.home().joinpath(*parts[:i])
            directory.mkdir(exist_ok=True)
            os.chown(directory, UID, UID)
        path.write_bytes(data)
        os.chown(path, UID, UID)
        return path

    # --- boot and power off -----------------------------------------------------------------

    def boot(self, timeout=120):
        self.boots += 1
        argv = ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
                f"--directory={self.tree}", f"--machine=bgsync-test-{os.getpid()}", "--console=pipe"]
        argv += [f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro.items()]
        argv += ["--private-network"] if self.private_network else []
        log = open(self.log_dir / f"console-{self.boots}.log", "wb")
        self.nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        self.pid1 = None
        while self.pid1 is None:
            if self.nspawn.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited with {self.nspawn.returncode}:\n{self.console()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no container init after {timeout} s:\n{self.console()}")
            self.pid1 = self._find_init()
            if self.pid1 is None:
                time.sleep(0.05)  # polling /proc: nothing announces the child's exec
        # systemctl's --wait blocks until a manager is up (or failed), once its socket exists.
        self._wait_for_path("/run/systemd/private", deadline)
        state = self.root("systemctl", "is-system-running", "--wait", timeout=timeout).stdout.strip()
        assert state == "running", f"the container's system is {state!r}:\n{self.root('systemctl', '--failed').stdout}"
        self._wait_for_path(f"/run/user/{UID}/systemd/private", deadline)
        state = self.user("systemctl", "--user", "is-system-running", "--wait", timeout=timeout).stdout.strip()
        failed = self.user("systemctl", "--user", "--failed", check=False).stdout
        assert state == "running", f"{USER}'s user manager is {state!r}:\n{failed}"

    def _wait_for_path(self, path, deadline):
        """Until `path` exists inside (seen through PID 1's root; polled: a socket file appearing
        in another mount namespace announces itself to no one out here)."""
        while not os.path.exists(f"/proc/{self.pid1}/root{path}"):
            if self.nspawn.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{path} never appeared in the container:\n{self.console()}")
            time.sleep(0.05)

    def _find_init(self):
        """The host pid of the process that is PID 1 in the container: nspawn's descendant whose
        innermost pid is 1 and which runs systemd already."""
        for child in _descendants(self.nspawn.pid):
            try:
                status = pathlib.Path(f"/proc/{child}/status").read_text()
                exe = os.readlink(f"/proc/{child}/exe")
            except OSError:
                continue
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if len(nspid) > 1 and nspid[-1] == "1" and exe.endswith("/systemd"):
                return child
        return None

    def poweroff(self, timeout=120):
        """`systemctl poweroff` inside, then waits for nspawn to end (it ends with the container)."""
        self.root("systemctl", "poweroff", check=False)
        try:
            self.nspawn.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the container did not power off in {timeout} s:\n{self.console()}")
        self.pid1 = None

    def kill(self):
        """Teardown after a failure: whatever state it is in, the container goes."""
        if self.nspawn and self.nspawn.poll() is None:
            if self.pid1:
                subprocess.run(["nsenter", "-t", str(self.pid1), "-a", "systemctl", "poweroff"],
                               capture_output=True, timeout=30)
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait()

    def console(self) -> str:
        path = self.log_dir / f"console-{self.boots}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    # --- commands inside ----------------------------------------------------------------------

    def root(self, *argv, check=True, timeout=120, input=None):
        return self._run(["nsenter", "-t", str(self.pid1), "-a", *map(str, argv)], check, timeout, input)

    def user(self, *argv, check=True, timeout=120, input=None):
        """As the user, in the environment their session has (runuser sets HOME, USER and the
        rest from passwd; the session bus and runtime dir come from pam_systemd in a login)."""
        env = ["env", f"XDG_RUNTIME_DIR=/run/user/{UID}", f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{UID}/bus"]
        return self.root("runuser", "-u", USER, "--", *env, *argv, check=check, timeout=timeout, input=input)

    @staticmethod
    def _run(argv, check, timeout, input):
        # A clean environment, as a login would have: nothing of the host's leaks inside.
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result


def _descendants(pid):
    children = []
    try:
        tasks = pathlib.Path(f"/proc/{pid}/task").iterdir()
        for task in tasks:
            children += (task / "children").read_text().split()
    except OSError:
        return []
    result = []
    for child in map(int, children):
        result.append(child)
        result += _descendants(child)
    return result


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
