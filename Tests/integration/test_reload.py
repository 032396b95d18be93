# SPDX-License-Identifier: Apache-2.0
"""New handlers and configuration without a restart (issue 17): SIGHUP re-reads bgsyncd.conf,
and plugins that appear in or leave the plugin directory are picked up (inotify). Neither drops
a registration or a running event; `Handlers` changes with PropertiesChanged. The real agent,
real plugin files moved in and out as dpkg does, a real signal."""

import os
import select
import shutil
import signal
import time

import pytest

from conftest import BIN, FAST_CONFIG, TEST_PLUGIN_SOURCES, Client, compile_plugin, wait_until

APP = "org.example.Reload"


@pytest.fixture
def own_plugins(tmp_path):
    """A plugin directory of this test's own (it adds and removes files): exec and ok."""
    directory = tmp_path / "plugins"
    directory.mkdir(mode=0o755)
    shutil.copyfile(BIN / "libbgsync-handler-exec.so", directory / "exec.so")
    os.chmod(directory / "exec.so", 0o644)
    compile_plugin(TEST_PLUGIN_SOURCES / "ok.c", directory / "test-ok.so")
    return directory


def handlers_announced(client):
    return [sorted(p["Handlers"]) for p in client.properties if "Handlers" in p]


class GatedCommand:
    """An exec command that says it runs (a line into a FIFO) and then runs until the test
    creates `go`: "the event is running in its worker" is a fact the test waits for, not a guess."""

    def __init__(self, tmp_path):
        self.go = tmp_path / "go"
        fifo = tmp_path / "started"
        os.mkfifo(fifo)
        self.reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # before the writer: it never blocks
        self.argv = ["sh", "-c", f"echo started > '{fifo}'; while [ ! -e '{self.go}' ]; do sleep 0.02; done"]

    def wait_started(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self.reader], [], [], max(0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"the command did not start within {timeout} s")
            if os.read(self.reader, 64).startswith(b"started"):
                return

    def release(self):
        self.go.touch()
        os.close(self.reader)


def test_a_plugin_moved_in_is_a_handler_at_once(bus, agent_factory, own_plugins, tmp_path):
    agent = agent_factory(plugin_dir=own_plugins).start()
    client = Client(bus)
    assert sorted(client.prop("Handlers")) == ["app", "exec", "ok"]  # app: built into the agent
    # As dpkg installs a file: written under another name, then renamed into place.
    compile_plugin(TEST_PLUGIN_SOURCES / "noop.c", own_plugins / "test-noop.so.dpkg-new")
    os.rename(own_plugins / "test-noop.so.dpkg-new", own_plugins / "test-noop.so")
    wait_until(lambda: ["app", "exec", "noop", "ok"] in handlers_announced(client), what="PropertiesChanged with noop")
    assert sorted(client.prop("Handlers")) == ["app", "exec", "noop", "ok"]
    client.register(APP, "fresh", "noop")
    assert client.wait_finished("fresh")[0][2] == "succeeded"
    assert agent.process.poll() is None
    assert "stopping" not in agent.log_text()


def test_a_removed_plugin_finishes_its_running_event_first(bus, agent_factory, own_plugins, tmp_path):
    agent_factory(plugin_dir=own_plugins).start()
    client = Client(bus)
    gated = GatedCommand(tmp_path)
    client.register(APP, "running", "exec", {"command": gated.argv})
    gated.wait_started()
    os.unlink(own_plugins / "exec.so")
    wait_until(lambda: ["app", "ok"] in handlers_announced(client), what="PropertiesChanged without exec")
    with pytest.raises(Exception, match="exec"):
        client.register(APP, "too-late", "exec", {"command": ["true"]})
    assert client.finished_for("running") == []  # still running, in the worker that has exec loaded
    gated.release()
    assert client.wait_finished("running")[0][2] == "succeeded"


def test_sighup_rereads_the_configuration_and_keeps_everything(bus, agent_factory, own_plugins, tmp_path):
    agent = agent_factory(plugin_dir=own_plugins, config=FAST_CONFIG + "[sync]\nmin-periodic-interval=1\n").start()
    client = Client(bus)
    client.call("RegisterPeriodic", APP, "before", "ok", 1, {}, signature="sssta{sv}")
    gated = GatedCommand(tmp_path)
    client.register(APP, "running", "exec", {"command": gated.argv})
    gated.wait_started()
    agent.config_path.write_text(FAST_CONFIG + "[sync]\nmin-periodic-interval=7200\n")
    agent.process.send_signal(signal.SIGHUP)
    agent.wait_for_log("reloading the configuration")
    # The new minimum applies to what is registered from now on; what was there stays as it was.
    client.call("RegisterPeriodic", APP, "after", "ok", 1, {}, signature="sssta{sv}")
    assert client.call("GetRegistration", APP, "after")["min-interval"] == 7200
    assert client.call("GetRegistration", APP, "before")["min-interval"] == 1
    gated.release()
    assert client.wait_finished("running")[0][2] == "succeeded"
    assert agent.process.poll() is None
    assert sorted(client.call("GetPeriodicTags", APP)) == ["after", "before"]


def test_a_plugin_directory_made_after_the_start_is_watched(bus, agent_factory, own_plugins, tmp_path):
    later = tmp_path / "home" / ".local" / "share" / "bgsync" / "plugins"  # a user's, not there yet
    agent_factory(plugin_dir=own_plugins, extra_args=["--plugin-dir", str(later)]).start()
    client = Client(bus)
    later.mkdir(parents=True)
    compile_plugin(TEST_PLUGIN_SOURCES / "noop.c", later / "test-noop.so")
    wait_until(lambda: ["app", "exec", "noop", "ok"] in handlers_announced(client), what="PropertiesChanged with noop")
    client.register(APP, "mine", "noop")
    assert client.wait_finished("mine")[0][2] == "succeeded"
