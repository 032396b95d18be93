# SPDX-License-Identifier: Apache-2.0
"""bgsync's Debian packages on a booted Debian bookworm: the user session under systemd, D-Bus
activation, a reboot, the journal (one app's story in it), logind's sleep lock, an upgrade from
the state-v1 database, an upgrade under a running sync (issue 21), a handler package installed
while the agent runs, and purge. Issue 17; README, "The Debian package".

Needs root, systemd-nspawn and debootstrap (scripts/install-deps check installs them); skipped,
saying which is missing, otherwise. The tests below are steps of one story on one container and
run in file order; each asserts what the user sees (systemctl --user, busctl --user,
journalctl --user, bgsyncctl, files in their home).

The container has a network namespace of its own (--private-network): loopback only, so the
agent's network source (the kernel's default route: there is no NetworkManager inside) says
offline until the test adds a default route on a veth pair inside the container, and fixes when
registrations may fire. Packages: the .debs of packaging/build-deb in .build-deb/ (rebuilt first
unless BGSYNC_DEB_REUSE=1, which `make check` sets after the packaging test built them).
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

from container import Container
import rootfs

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = pathlib.Path(os.environ.get("BGSYNC_DEB_OUTDIR", ROOT / ".build-deb"))
FIXTURE = ROOT / "Tests" / "fixtures" / "state-v1"
MANAGER = ["org.bgsync", "/org/bgsync/Manager", "org.bgsync.Manager"]
APP = "org.example.SystemTest"
MULTIARCH = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True, text=True).stdout.strip()
PLUGIN_DIR = f"/usr/lib/{MULTIARCH}/bgsync/plugins"
# The user's own configuration: short back-off, and one unknown key, whose warning the journal
# step looks for (a warning the agent gives on every start).
USER_CONFIG = b"[sync]\nretry-initial-delay=3600\nno-such-key=1\n"


def missing_requirement():
    if os.geteuid() != 0:
        return "boots a container with systemd-nspawn, which needs root (CI runs as root)"
    for tool in ("systemd-nspawn", "debootstrap", "dpkg-deb", "cc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-deps check installs it)"
    return None


pytestmark = pytest.mark.skipif(missing_requirement() is not None, reason=str(missing_requirement()))


def wait_for(predicate, timeout, what):
    """Polls `predicate` (a command's answer inside the container: nothing there can notify us
    across the namespace boundary) until it holds, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


# --- what goes in: packages, a plugin package, the tree --------------------------------------


def built_debs() -> dict:
    if os.environ.get("BGSYNC_DEB_REUSE") != "1":
        result = subprocess.run([ROOT / "packaging" / "build-deb"])
        assert result.returncode == 0, "packaging/build-deb failed (its output is above)"
    found = {package: sorted(OUT.glob(f"{package}_*.deb")) for package in ("bgsyncd", "libbgsync-plugin-dev")}
    for package, debs in found.items():
        assert len(debs) == 1, f"expected one {package} .deb in {OUT}, found {debs}"
    return {package: debs[0] for package, debs in found.items()}


def plugin_package(directory: pathlib.Path) -> pathlib.Path:
    """bgsync-handler-ok: a third-party handler package (Tests/plugins/ok.c, handler 'ok')
    that puts its plugin where the agent looks."""
    root = directory / "pkg"
    plugin = root / PLUGIN_DIR.lstrip("/") / "ok.so"
    plugin.parent.mkdir(parents=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror",
                    f"-I{ROOT / 'Sources/CBGSyncPlugin/include'}", "-o", plugin, ROOT / "Tests/plugins/ok.c"],
                   check=True)
    os.chmod(plugin, 0o644)
    (root / "DEBIAN").mkdir()
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    (root / "DEBIAN/control").write_text(
        f"Package: bgsync-handler-ok\nVersion: 1.0\nArchitecture: {arch}\nMaintainer: bgsync tests <t@example.org>\n"
        "Depends: bgsyncd\nDescription: a bgsync handler from another package (test)\n")
    deb = directory / "bgsync-handler-ok_1.0.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", root, deb], check=True, capture_output=True)
    return deb


# bgsync-worker of a later bgsync, standing in for one (there is one build here): its hello names
# worker protocol 99 (payload 'H', then the version as a little-endian 32-bit number: the bytes
# every version reads), so the running agent must hold what it spawns it for. Its probe is the
# real one's (the probe's JSON report is not versioned), so the handlers stay known.
LATER_WORKER = """#!/bin/sh
if [ "$1" = --probe ]; then exec /usr/libexec/bgsync/bgsync-worker.real "$@"; fi
echo started >> "$HOME/later-worker-starts"
printf '\\000\\000\\000\\005H\\143\\000\\000\\000' >&3
"""


def repacked(deb: pathlib.Path, directory: pathlib.Path, suffix: str, later_worker: bool) -> pathlib.Path:
    """`deb` unpacked and packed again as version <its version>+<suffix>, as an upgrade would
    bring it (dpkg-deb -R / -b; no rebuild); with `later_worker`, its bgsync-worker is LATER_WORKER
    and the real one sits beside it."""
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    tree = directory / f"tree-{suffix}"
    subprocess.run(["dpkg-deb", "-R", deb, tree], check=True)
    control = tree / "DEBIAN/control"
    control.write_text(control.read_text().replace(f"Version: {version}\n", f"Version: {version}+{suffix}\n"))
    if later_worker:
        worker = tree / "usr/libexec/bgsync/bgsync-worker"
        worker.rename(worker.with_name("bgsync-worker.real"))
        worker.write_text(LATER_WORKER)
        os.chmod(worker, 0o755)
        # md5sums lists what the package holds (dpkg --verify, debsums): keep it true.
        sums = []
        for line in (tree / "DEBIAN/md5sums").read_text().splitlines():
            digest, name = line.split(None, 1)
            if name == "usr/libexec/bgsync/bgsync-worker":
                sums.append(f"{hashlib.md5(worker.read_bytes()).hexdigest()}  {name}")
                name = "usr/libexec/bgsync/bgsync-worker.real"
            sums.append(f"{digest}  {name}")
        (tree / "DEBIAN/md5sums").write_text("\n".join(sums) + "\n")
    out = directory / f"bgsyncd_{version}+{suffix}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, out], check=True, capture_output=True)
    shutil.rmtree(tree)
    return out


class System:
    """The container, and what the steps learn and pass on."""

    def __init__(self, container, debs):
        self.container = container
        self.debs = debs
        self.network_up = False

    def user(self, *argv, **kwargs):
        return self.container.user(*argv, **kwargs)

    def root(self, *argv, **kwargs):
        return self.container.root(*argv, **kwargs)

    def call(self, method, signature="", *args, check=True):
        return self.user("busctl", "--user", "--json=short", "call", *MANAGER, method, signature, *args, check=check)

    def ctl_json(self, *argv):
        return json.loads(self.user("bgsyncctl", *argv, "--json").stdout)

    def main_pid(self) -> int:
        return int(self.user("systemctl", "--user", "show", "--property=MainPID", "--value", "bgsyncd").stdout)

    def bus_owner_pid(self) -> int:
        reply = self.user("busctl", "--user", "--json=short", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "GetConnectionUnixProcessID", "s", "org.bgsync").stdout
        return json.loads(reply)["data"][0]

    def journal(self, *argv):
        """The user's journal for bgsyncd.service, one dict per entry."""
        out = self.user("journalctl", "--user", "--unit=bgsyncd", "--output=json", "--no-pager", *argv).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def messages(self, *argv):
        return [message_text(entry) for entry in self.journal(*argv)]

    def set_network(self, up: bool):
        """A default route on a veth pair inside the container, or none: what the kernel tells
        the agent about being online."""
        if up:
            self.root("ip", "link", "add", "bg0", "type", "veth", "peer", "name", "bg1")
            self.root("ip", "addr", "add", "10.201.0.2/24", "dev", "bg0")
            self.root("ip", "link", "set", "bg1", "up")
            self.root("ip", "link", "set", "bg0", "up")
            self.root("ip", "route", "add", "default", "via", "10.201.0.1", "dev", "bg0")
        else:
            self.root("ip", "link", "del", "bg0", check=False)
        self.network_up = up


def message_text(entry) -> str:
    message = entry.get("MESSAGE", "")
    return bytes(message).decode(errors="replace") if isinstance(message, list) else message


@pytest.fixture(scope="module")
def system():
    work = pathlib.Path(tempfile.mkdtemp(prefix="bgsync-system-", dir=os.environ.get("BGSYNC_SYSTEM_TMP")))
    started = time.monotonic()
    cached = rootfs.cached_tree()
    debs = built_debs()
    debs["bgsync-handler-ok"] = plugin_package(work)
    debs["bgsyncd-later-worker"] = repacked(debs["bgsyncd"], work, "upgrade1", later_worker=True)
    debs["bgsyncd-later"] = repacked(debs["bgsyncd"], work, "upgrade2", later_worker=False)
    debs_dir = work / "debs"
    debs_dir.mkdir()
    for deb in debs.values():
        shutil.copy(deb, debs_dir)
    container = Container.from_cache(cached, work, binds_ro={debs_dir: "/debs"}, private_network=True)
    # The journal on disk (/var/log/journal): users get journal files of their own, which
    # `journalctl --user` reads, and it outlives the reboot.
    (container.tree / "var/log/journal").mkdir(exist_ok=True)
    # The user's state before the package arrives: written by the version before this one.
    database = (FIXTURE / "registrations.sqlite3").read_bytes()
    container.put_user_file(".local/state/bgsync/registrations.sqlite3", database)
    container.put_user_file(".config/bgsync/bgsyncd.conf", USER_CONFIG)
    print(f"\nsystem test: tree ready after {time.monotonic() - started:.1f} s")
    container.boot()
    print(f"system test: booted after {time.monotonic() - started:.1f} s")
    system = System(container, {name: f"/debs/{path.name}" for name, path in debs.items()})
    try:
        yield system
    finally:
        container.kill()
        print(f"system test: {time.monotonic() - started:.1f} s in all")
        if os.environ.get("BGSYNC_SYSTEM_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


# --- the story -------------------------------------------------------------------------------


def test_1_the_first_call_starts_the_agent_through_systemd(system):
    system.root("dpkg", "-i", system.debs["bgsyncd"], system.debs["libbgsync-plugin-dev"])
    # The package may start the enabled unit itself; stop it to see activation on demand.
    system.user("systemctl", "--user", "stop", "bgsyncd")
    assert system.user("systemctl", "--user", "is-active", "bgsyncd", check=False).stdout.strip() == "inactive"
    reply = json.loads(system.call("GetTags", "s", APP).stdout)
    assert reply["data"] == [[]]
    assert system.user("systemctl", "--user", "is-active", "bgsyncd").stdout.strip() == "active"
    # Started as the unit (SystemdService=), not forked by dbus-daemon: the name's owner is the
    # unit's main process, in the unit's cgroup.
    pid = system.bus_owner_pid()
    assert pid == system.main_pid()
    cgroup = system.root("cat", f"/proc/{pid}/cgroup").stdout
    assert cgroup.strip().endswith("/bgsyncd.service"), cgroup


def test_4_the_v1_database_is_migrated_with_every_registration(system):
    expected = json.loads((FIXTURE / "registrations.json").read_text())
    for key, before in expected.items():
        app, kind, tag = key.split(" ")
        tags = system.user("bgsyncctl", "tags", app, *(["--periodic"] if kind == "periodic" else [])).stdout.split()
        assert tag in tags, f"{key} is missing after the upgrade"
        after = system.ctl_json("status", app, tag)
        for field in ("kind", "handler", "options", "network", "max-attempts", "min-interval"):
            was, now = before.get(field), after.get(field)
            assert now == was, f"{key}: {field} was {was!r}, is {now!r}"
    # Offline since boot: nothing ran, so the one in back-off keeps its attempt. Whether the time
    # the old version gave it is still ahead depends on today's date (the fixture was made on
    # 2026-12-02 with a day's back-off), so the state is checked against the container's clock,
    # read on both sides of the call: "waiting" until that time while it is ahead, "pending" (due,
    # held by the network; a due registration has no next attempt) once it has passed.
    clock = lambda: int(system.root("date", "+%s").stdout)  # noqa: E731
    before_call = clock()
    backoff = system.ctl_json("status", "org.example.Mail", "backoff")
    after_call = clock()
    next_attempt = expected["org.example.Mail one-off backoff"]["next-attempt"]
    assert backoff["attempts"] == 1
    waiting = (backoff["state"], backoff["next-attempt"]) == ("waiting", next_attempt)
    due = (backoff["state"], backoff["next-attempt"]) == ("pending", 0)
    if next_attempt > after_call:
        assert waiting, backoff
    elif next_attempt <= before_call:
        assert due, backoff
    else:  # due during the call itself: either answer is right
        assert waiting or due, backoff


def test_2_a_registration_survives_a_reboot_and_fires_when_online(system):
    marker = "/home/alice/fired-after-reboot"
    system.user("bgsyncctl", "register", APP, "after-reboot", "exec", "-o", f"command=['touch', '{marker}']")
    assert system.ctl_json("status", APP, "after-reboot")["state"] == "pending"  # offline: it waits
    system.container.poweroff()
    system.container.boot()
    # Started with the session (enabled for every user), before anyone calls it.
    assert system.user("systemctl", "--user", "is-active", "bgsyncd").stdout.strip() == "active"
    assert "after-reboot" in system.user("bgsyncctl", "tags", APP).stdout.split()
    assert system.root("test", "-e", marker, check=False).returncode != 0
    system.set_network(up=True)
    wait_for(lambda: system.root("test", "-e", marker, check=False).returncode == 0, 30, "the registration to fire")
    assert system.user("bgsyncctl", "tags", APP).stdout.split() == []  # a one-off is done once it succeeded
    messages = system.messages("--boot")
    # Which network source the agent followed: the kernel's default route (no NetworkManager).
    assert any("kernel's default route" in m for m in messages), messages
    assert any(m.startswith("network: online") for m in messages), messages


def test_3_the_journal_has_every_line_at_its_priority(system):
    # A caller's text cannot make a line of its own: a tag with a newline and a fake priority
    # (the agent takes the tag, and logs it), and a command's stderr (a handler's detail).
    system.call("Register", "sssa{sv}", APP, "x\n<0>FORGED by a caller", "exec", "0")
    system.user("bgsyncctl", "register", APP, "loud", "exec", "-o",
                "command=['sh', '-c', 'printf \"one\\n<0>FORGED by a command\\n\" >&2; exit 3']", "--max-attempts", "1")
    wait_for(lambda: any("loud: failed" in m for m in system.messages()), 30, "the failing registration to finish")
    entries = system.journal()
    by_text = {message_text(e): int(e["PRIORITY"]) for e in entries}
    ready = [t for t in by_text if t.startswith("ready on")]
    assert ready and all(by_text[t] == 6 for t in ready)
    warning = [t for t in by_text if "no-such-key" in t]
    assert warning and all(by_text[t] == 4 for t in warning), by_text
    # A worker's line keeps its priority (journald read its <N> prefix) and shows without it.
    worker = [t for t in by_text if t.startswith("handler exec: ") and "started" in t]
    assert worker and all(by_text[t] == 7 for t in worker), by_text
    assert not any(t.startswith("<") for t in by_text)
    assert not any(t.startswith("FORGED") for t in by_text)
    assert any("x\\n<0>FORGED by a caller" in t for t in by_text)  # written out, on its line
    assert min(by_text.values()) >= 3, [t for t, p in by_text.items() if p < 3]
    # -p warning selects the warnings (and worse), not one line more.
    selected = system.journal("--priority=warning")
    assert selected and all(int(e["PRIORITY"]) <= 4 for e in selected)
    assert {message_text(e) for e in selected} == {t for t, p in by_text.items() if p <= 4}


def test_3_one_apps_story_in_the_journal_and_a_sleep_lock_while_its_sync_runs(system):
    """`journalctl --user BGSYNC_APP=…` is one app's story (issue 23); logind lists the agent's
    delay lock on sleep while a sync runs, and not once none does."""
    story, other = "org.example.Story", "org.example.Other"
    marker = "/home/alice/story-started"

    def inhibitors():
        return system.root("systemd-inhibit", "--list", "--no-pager", "--no-legend", check=False).stdout

    assert "bgsync" not in inhibitors(), "idle: no lock"
    # Online since step 2: the sync starts at once and runs a few seconds.
    system.user("bgsyncctl", "register", story, "slow", "exec", "-o",
                f"command=['sh', '-c', 'touch {marker}; sleep 4']")
    wait_for(lambda: system.root("test", "-e", marker, check=False).returncode == 0, 30, "the slow sync to start")
    held = [line for line in inhibitors().splitlines() if "bgsync" in line]
    said = [m for m in system.messages() if "sleep" in m or "logind" in m]
    assert held and "sleep" in held[0] and "delay" in held[0], (inhibitors(), said)
    system.user("bgsyncctl", "register", other, "quick", "exec", "-o", "command=['true']")
    wait_for(lambda: any(m.startswith(f"{story}/slow: succeeded") for m in system.messages()), 30, "the slow sync")
    wait_for(lambda: any(m.startswith(f"{other}/quick: succeeded") for m in system.messages()), 30, "the quick one")
    wait_for(lambda: "bgsync" not in inhibitors(), 10, "the lock to go once no sync runs")

    def entries(app):
        out = system.user("journalctl", "--user", f"BGSYNC_APP={app}", "--output=json", "--no-pager").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    mine = entries(story)
    texts = [message_text(e) for e in mine]
    assert any(t.startswith(f"{story}/slow: attempt 1") for t in texts), texts
    assert any(t.startswith(f"{story}/slow: succeeded") for t in texts), texts
    assert all(e["BGSYNC_APP"] == story and e["BGSYNC_TAG"] == "slow" for e in mine), mine
    assert not any(other in t for t in texts), texts
    theirs = [message_text(e) for e in entries(other)]
    assert theirs and all(t.startswith(f"{other}/quick") for t in theirs), theirs
    # The fields come with the entries' ordinary ones: priority, and the unit's own journal.
    assert all(int(e["PRIORITY"]) == 6 and e.get("_SYSTEMD_USER_UNIT") == "bgsyncd.service"
               for e in mine if message_text(e).startswith(f"{story}/slow: succeeded")), mine


def test_4_reinstalling_restarts_the_agent_onto_the_new_binary(system):
    def everything():
        return {(app, kind, tag) for app in ("org.example.Mail", "org.example.News", "org.example.Notes", APP)
                for kind, flag in (("one-off", []), ("periodic", ["--periodic"]))
                for tag in system.user("bgsyncctl", "tags", app, *flag).stdout.split()}

    system.set_network(up=False)  # nothing fires meanwhile, so the set of registrations holds still
    before_pid, before = system.main_pid(), everything()
    assert before
    system.root("dpkg", "-i", system.debs["bgsyncd"])
    after_pid = wait_for(lambda: (pid := system.main_pid()) not in (0, before_pid) and pid, 30, "a new agent")
    assert system.root("readlink", f"/proc/{after_pid}/exe").stdout.strip() == "/usr/bin/bgsyncd"
    assert system.bus_owner_pid() == after_pid
    assert everything() == before


def test_4_an_upgrade_under_a_running_sync_costs_no_attempt_and_runs_nothing_twice(system):
    """dpkg in its two halves, with a sync running: --unpack replaces bgsync-worker (by one that
    speaks a later protocol) while the old agent runs; a sync due then is held, not charged,
    while the running one finishes in its old worker; --configure of the package whose agent
    and worker agree runs the postinst, which restarts the agent, and the held sync runs there,
    once. Offline in between, so that it cannot run earlier (a reload would try again)."""
    home = "/home/alice"

    def lines(name):
        found = system.root("cat", f"{home}/{name}", check=False)
        return found.stdout.split() if found.returncode == 0 else []

    def tags():
        return system.user("bgsyncctl", "tags", APP).stdout.split()

    def appending(name, *then):
        return f"command=['sh', '-c', 'echo ran >> {home}/{name}{''.join('; ' + t for t in then)}']"

    system.set_network(up=True)
    old_pid = system.main_pid()
    system.user("bgsyncctl", "register", APP, "before-upgrade", "exec", "-o", appending("before-runs"))
    wait_for(lambda: "before-upgrade" not in tags(), 30, "the sync before the upgrade to succeed")
    # A sync running through the unpack: its command waits until the test releases it.
    system.user("bgsyncctl", "register", APP, "through-upgrade", "exec", "-o",
                appending("through-runs", f"while [ ! -e {home}/release ]; do sleep 0.05; done"))
    wait_for(lambda: lines("through-runs") == ["ran"], 30, "the long sync to run")

    system.root("dpkg", "--unpack", system.debs["bgsyncd-later-worker"])
    assert system.main_pid() == old_pid  # the old agent runs on until the postinst
    system.user("bgsyncctl", "register", APP, "in-the-window", "exec", "-o", appending("window-runs"))
    wait_for(lambda: any("speaks worker protocol 99, this bgsyncd" in m for m in system.messages()), 30,
             "the agent to meet the later worker")
    held = system.ctl_json("status", APP, "in-the-window")
    assert (held["state"], held["attempts"]) == ("firing", 0), held
    assert lines("window-runs") == [] and lines("later-worker-starts")  # it was spawned, and ran nothing
    # The sync that was running finishes in its own (old) worker: done, once.
    system.root("touch", f"{home}/release")
    wait_for(lambda: "through-upgrade" not in tags(), 30, "the long sync to succeed")

    # Offline: the held sync stops waiting for a worker and waits for the network, still
    # uncharged, so that it runs in the agent the postinst starts, not earlier.
    system.set_network(up=False)
    wait_for(lambda: system.ctl_json("status", APP, "in-the-window")["state"] != "firing", 30,
             "the held sync to be interrupted")
    assert system.ctl_json("status", APP, "in-the-window")["attempts"] == 0

    # The rest of the upgrade: the package whose agent and worker agree, and the postinst.
    system.root("dpkg", "--unpack", system.debs["bgsyncd-later"])
    system.root("dpkg", "--configure", "bgsyncd")
    wait_for(lambda: (pid := system.main_pid()) not in (0, old_pid) and pid, 30, "the postinst's new agent")
    system.set_network(up=True)
    wait_for(lambda: "in-the-window" not in tags(), 30, "the held sync to run")
    # Each ran once: nothing after its success, and the held one only once the worker agreed.
    assert (lines("before-runs"), lines("through-runs"), lines("window-runs")) == (["ran"], ["ran"], ["ran"])
    steps = ("before-upgrade", "through-upgrade", "in-the-window")
    messages = [m for m in system.messages() if any(f"{APP}/{tag}" in m for tag in steps)]
    assert not any("crashed" in m or "retry-scheduled" in m for m in messages), messages
    succeeded = [m.split(": succeeded")[0] for m in messages if ": succeeded" in m]
    assert succeeded == [f"{APP}/{tag}" for tag in steps], messages
    assert system.root("dpkg-query", "-W", "-f=${Status}", "bgsyncd").stdout == "install ok installed"
    system.set_network(up=False)  # as the steps before left it: the next registers and looks


def test_a_handler_package_installed_while_the_agent_runs_is_used_without_a_restart(system):
    pid = system.main_pid()
    refused = system.call("Register", "sssa{sv}", APP, "hello", "ok", "0", check=False)
    assert refused.returncode != 0 and "ok" in refused.stderr
    system.root("dpkg", "-i", system.debs["bgsync-handler-ok"])

    def handlers():
        reply = system.user("busctl", "--user", "--json=short", "get-property", *MANAGER, "Handlers").stdout
        return json.loads(reply)["data"]

    wait_for(lambda: "ok" in handlers(), 20, "the agent to list the new handler")
    system.call("Register", "sssa{sv}", APP, "hello", "ok", "0")
    assert system.main_pid() == pid
    assert "ok" in system.user("bgsyncctl", "status", APP, "hello").stdout


def test_5_purge_leaves_no_agent_and_no_files_but_the_users_state(system):
    files = [f for f in system.root("dpkg", "-L", "bgsyncd").stdout.split()
             if system.root("test", "-d", f, check=False).returncode != 0]
    assert "/usr/bin/bgsyncd" in files
    system.root("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "-q",
                "bgsync-handler-ok", "bgsyncd", "libbgsync-plugin-dev")
    assert system.user("systemctl", "--user", "is-active", "bgsyncd", check=False).stdout.strip() == "inactive"
    assert system.root("pgrep", "-x", "bgsyncd", check=False).returncode == 1
    left = [f for f in files if system.root("test", "-e", f, check=False).returncode == 0]
    assert left == []
    for path in ("/etc/bgsync", "/etc/systemd/user/default.target.wants/bgsyncd.service", PLUGIN_DIR):
        assert system.root("test", "-e", path, check=False).returncode != 0, f"{path} is left after purge"
    # No activation any more: a call finds no one.
    gone = system.call("GetTags", "s", APP, check=False)
    assert gone.returncode != 0 and "org.bgsync" in gone.stderr
    # Debian policy: packages never touch home directories; the user's registrations stay.
    assert system.user("test", "-s", "/home/alice/.local/state/bgsync/registrations.sqlite3").returncode == 0
