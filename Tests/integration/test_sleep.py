# SPDX-License-Identifier: Apache-2.0
"""Sleep as a laptop meets it, with real parts: python-dbusmock's logind on a private system bus
(its Inhibit returns a real file descriptor, and ListInhibitors lists the lock until that
descriptor is closed), the real agent and worker, and the test plugins `stoppable` (stops when
asked) and `hang` (ignores the stop)."""

import os
import time

import dbus
import pytest

from conftest import Client, wait_until
from test_conditions import Mock, system_bus  # noqa: F401 (a fixture)

APP = "org.example.Chat"
LOGIND = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
LOCK = ("sleep", "bgsync", "Stopping background syncs before sleep", "delay")
# logind's default InhibitDelayMaxSec (the mock has no such property: the agent takes the default)
# and what the agent makes of it: events get half of it to stop.
DELAY = 5.0
STOP_GRACE = DELAY / 2


@pytest.fixture
def logind(system_bus):
    mock = Mock(system_bus, "logind", LOGIND)
    yield mock
    mock.stop()


def inhibitors(logind):
    manager = logind.connection.get_object(LOGIND, LOGIND_PATH)
    return [tuple(str(field) for field in entry[:4]) for entry in manager.ListInhibitors(dbus_interface=MANAGER)]


def prepare_for_sleep(logind, sleeping):
    logind.connection.get_object(LOGIND, LOGIND_PATH).EmitSignal(
        MANAGER, "PrepareForSleep", "b", [dbus.Boolean(sleeping)], dbus_interface="org.freedesktop.DBus.Mock")


def sleep_agent(agent_factory, system_bus, **kwargs):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=system_bus.address)
    agent = agent_factory(env=env, **kwargs).start()
    wait_until(lambda: "Following logind's sleep" in agent.log_text(), 10, "the agent following logind")
    return agent


def test_a_sync_holds_the_lock_stops_before_sleep_and_runs_again_at_wake_up(agent_factory, system_bus, logind):
    agent = sleep_agent(agent_factory, system_bus)
    client = Client(agent.bus)
    assert inhibitors(logind) == [], "idle: no lock"

    client.register(APP, "backup", "stoppable")
    wait_until(lambda: client.started, 10, "SyncStarted")
    wait_until(lambda: inhibitors(logind) == [LOCK], 5, "the delay lock while the sync runs")

    asked = time.monotonic()
    prepare_for_sleep(logind, True)
    finished = client.wait_finished("backup")
    assert finished[0][2:] == ("interrupted", "stopped (cancelled=true)")
    wait_until(lambda: inhibitors(logind) == [], 5, "the lock released")
    released = time.monotonic() - asked
    # Released because the sync stopped, not by the kill at the end of the grace nor by the
    # monitor letting go shortly before InhibitDelayMaxSec.
    assert released < STOP_GRACE, f"the lock went {released:.2f} s after PrepareForSleep"
    registration = client.call("GetRegistration", APP, "backup")
    assert registration["attempts"] == 0 and registration["state"] == "pending"
    assert len(client.started) == 1, "nothing starts again before the machine sleeps"
    client.call("Trigger", APP, "backup")
    assert inhibitors(logind) == [] and len(client.started) == 1, "not even when triggered"

    woke = time.monotonic()
    prepare_for_sleep(logind, False)
    wait_until(lambda: len(client.started) == 2, 5, "the sync starting again at wake-up")
    assert time.monotonic() - woke < 2, "at once, not after a back-off"
    assert [s[2] for s in client.started] == [1, 1], "the interrupted attempt did not count"
    wait_until(lambda: inhibitors(logind) == [LOCK], 5, "the lock again while it runs")
    assert "The machine is about to sleep; stopping running syncs" in agent.log_text()


def test_a_handler_that_ignores_the_stop_is_killed_and_the_lock_goes_inside_the_delay(
        agent_factory, system_bus, logind):
    agent = sleep_agent(agent_factory, system_bus, config="[sync]\nevent-timeout=60\n")
    client = Client(agent.bus)
    client.register(APP, "stubborn", "hang")
    wait_until(lambda: client.started, 10, "SyncStarted")
    wait_until(lambda: inhibitors(logind) == [LOCK], 5, "the delay lock while the sync runs")
    asked = time.monotonic()
    prepare_for_sleep(logind, True)
    finished = client.wait_finished("stubborn", timeout=10)
    killed = time.monotonic() - asked
    assert finished[0][2:] == ("interrupted", "interrupted (the handler did not stop in time)")
    wait_until(lambda: inhibitors(logind) == [], 5, "the lock released")
    released = time.monotonic() - asked
    assert STOP_GRACE - 0.1 < killed, f"killed {killed:.2f} s after PrepareForSleep, before the {STOP_GRACE} s grace"
    assert released < DELAY, f"the lock went {released:.2f} s after PrepareForSleep, past InhibitDelayMaxSec"
    assert client.call("GetRegistration", APP, "stubborn")["attempts"] == 0
    assert f"within {STOP_GRACE} s; killing worker" in agent.log_text()


def test_without_logind_syncs_run_and_that_is_said_once(agent_factory, system_bus):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=system_bus.address)
    agent = agent_factory(env=env).start()
    client = Client(agent.bus)
    client.register(APP, "a", "ok")
    client.register(APP, "b", "ok")
    client.wait_finished("a")
    client.wait_finished("b")
    assert agent.log_text().count("logind refused a sleep delay lock") == 1
