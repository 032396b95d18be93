# SPDX-License-Identifier: Apache-2.0
"""A package upgrade under a running agent (issue 21): dpkg replaces bgsync-worker by renaming a
new file over it, and the old agent spawns that worker until the postinst restarts the agent.
The worker of the other bgsync says so in its first frame; the event costs nothing (no attempt,
not `crashed`), no worker is started again and again meanwhile, and after the restart the held
events run once, with the attempt they had. The real agent; the path it spawns is a file the
test replaces as dpkg does."""

import os

from conftest import BIN, Agent, Client, wait_until

APP = "org.example.Upgrade"

# A worker of a later bgsync: its first frame is a hello of version 99 (payload 'H' and the
# version as a little-endian 32-bit number, the bytes every version reads), then it exits.
LATER_WORKER = """#!/bin/sh
echo started >> '{starts}'
printf '\\000\\000\\000\\005H\\143\\000\\000\\000' >&3
"""


class WorkerAt(Agent):
    """The agent, spawning the worker at `worker_path` instead of the build's."""

    def __init__(self, *args, worker_path, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker_path = worker_path

    def command(self):
        command = super().command()
        command[command.index("--worker") + 1] = str(self.worker_path)
        return command


def install(path, *, script=None, link=None):
    """Puts a new worker at `path` as dpkg does: written beside it, then renamed over it."""
    new = path.with_name(path.name + ".dpkg-new")
    if script is not None:
        new.write_text(script)
        os.chmod(new, 0o755)
    else:
        os.symlink(link, new)
    os.rename(new, path)


def test_a_worker_of_another_version_costs_no_attempt_and_runs_after_the_restart(bus, tmp_path, plugin_dir):
    libexec = tmp_path / "libexec"
    libexec.mkdir()
    worker = libexec / "bgsync-worker"
    starts = tmp_path / "later-worker-starts"
    install(worker, link=BIN / "bgsync-worker")
    agent = WorkerAt(bus, tmp_path, plugin_dir, worker_path=worker)
    try:
        agent.start()
        client = Client(bus)
        # Another handler than the next: an idle worker of the old bgsync would serve its own
        # handler's next event (rightly: it is the old binary, still in memory).
        client.register(APP, "before", "noop")
        assert client.wait_finished("before")[0][2] == "succeeded"

        # dpkg unpacks the new bgsync-worker; the agent is still the old one.
        install(worker, script=LATER_WORKER.format(starts=starts))
        client.register(APP, "during", "ok")
        agent.wait_for_log("speaks worker protocol 99, this bgsyncd")
        client.register(APP, "during2", "ok")
        wait_until(lambda: [s for s in client.started if s[1] == "during2"], what="SyncStarted for during2")
        # Held: no attempt spent, no outcome at all, and one worker of the other version tried.
        for tag in ("during", "during2"):
            assert client.finished_for(tag) == []
            assert client.call("GetRegistration", APP, tag)["attempts"] == 0
        assert starts.read_text().splitlines() == ["started"]
        assert "crashed" not in agent.log_text()
        assert agent.process.poll() is None

        # The postinst: the new agent (here the build's, with its own worker back) starts.
        install(worker, link=BIN / "bgsync-worker")
        agent.stop()
        agent.start(expect_ready=False)
        # Their first attempt, run once each; "before" already succeeded and does not run again.
        agent.wait_for_log(f"{APP}/during: succeeded: ok {APP}/during attempt 1 greeting=(none)")
        agent.wait_for_log(f"{APP}/during2: succeeded: ok {APP}/during2 attempt 1 greeting=(none)")
        assert f"{APP}/before" not in agent.log_text()
        assert list(client.call("GetTags", APP)) == []
        assert starts.read_text().splitlines() == ["started"]
    finally:
        agent.stop()
