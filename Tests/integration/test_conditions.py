# SPDX-License-Identifier: Apache-2.0
"""Conditions as a user meets them, with real parts: python-dbusmock's UPower and
power-profiles-daemon on a private system bus, its NetworkManager going offline during a slow
upload to a real HTTP server on loopback, handlers reporting progress (and stalling), a message
renamed into an outbox while online, and expires-after / not-before through D-Bus."""

import json
import os
import pathlib
import subprocess
import time
import urllib.request

import dbus
import pytest

from conftest import BIN, Client, PrivateBus, wait_until
from test_network_dbusmock import CONNECTED_GLOBAL, DISCONNECTED, MockNetworkManager

APP = "org.example.Chat"
UPOWER = "org.freedesktop.UPower"
UPOWER_PATH = "/org/freedesktop/UPower"
DISPLAY = "/org/freedesktop/UPower/devices/DisplayDevice"
DEVICE = "org.freedesktop.UPower.Device"
PPD = "net.hadess.PowerProfiles"
PPD_PATH = "/net/hadess/PowerProfiles"
PROPS = "org.freedesktop.DBus.Properties"
HTTP_SERVER = pathlib.Path(__file__).resolve().parent.parent / "HandlerTestKit" / "http_server.py"


class Mock:
    """One python-dbusmock template on the private system bus."""

    def __init__(self, system_bus, template, name, parameters=None):
        self.connection = system_bus.connect()
        owners = []
        receiver = self.connection.add_signal_receiver(
            lambda n, old, new: owners.append(new), "NameOwnerChanged", "org.freedesktop.DBus",
            "org.freedesktop.DBus", "/org/freedesktop/DBus", arg0=name)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=system_bus.address)
        command = ["/usr/bin/python3", "-m", "dbusmock", "--template", template]
        if parameters:
            command += ["--parameters", json.dumps(parameters)]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        wait_until(lambda: any(owners), 15, f"the mock {name} on the bus")
        receiver.remove()
        self.name = name

    def set(self, path, interface, prop, value):
        """Properties.Set on the mock: it emits PropertiesChanged, as the real service does."""
        self.connection.get_object(self.name, path).Set(interface, prop, value, dbus_interface=PROPS)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def system_bus():
    bus = PrivateBus("system")
    yield bus
    bus.stop()


@pytest.fixture
def upower(system_bus):
    mock = Mock(system_bus, "upower", UPOWER, {"OnBattery": False})
    yield mock
    mock.stop()


@pytest.fixture
def ppd(system_bus):
    mock = Mock(system_bus, "power_profiles_daemon", PPD)
    yield mock
    mock.stop()


def power_agent(agent_factory, system_bus, **kwargs):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=system_bus.address)
    return agent_factory(power="upower", env=env, **kwargs).start()


class Server:
    """Tests/HandlerTestKit/http_server.py: a real HTTP server on loopback."""

    def __init__(self):
        self.process = subprocess.Popen(["/usr/bin/python3", str(HTTP_SERVER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def url(self, path="/inbox"):
        return f"http://127.0.0.1:{self.port}{path}"

    def control(self, script):
        urllib.request.urlopen(urllib.request.Request(self.url("/_control/script"), json.dumps(script).encode(),
                                                      method="POST"), timeout=5).read()

    def received(self):
        return json.loads(urllib.request.urlopen(self.url("/_control/requests"), timeout=5).read())

    def stop(self):
        self.process.stdin.close()
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def progress_signals(client):
    seen = []
    client.connection.add_signal_receiver(lambda *a: seen.append(tuple(a)), "SyncProgress",
                                          "org.bgsync.Manager", None, "/org/bgsync/Manager")
    return seen


# --- Power ---------------------------------------------------------------------------------------

def test_power_ac_waits_for_mains_and_battery_not_low_for_charge(agent_factory, system_bus, upower, ppd):
    agent = power_agent(agent_factory, system_bus)
    client = Client(agent.bus)
    assert client.prop("OnBattery") == False  # noqa: E712
    upower.set(DISPLAY, DEVICE, "IsPresent", dbus.Boolean(True, variant_level=1))
    upower.set(DISPLAY, DEVICE, "Percentage", dbus.Double(10.0, variant_level=1))
    upower.set(UPOWER_PATH, UPOWER, "OnBattery", dbus.Boolean(True, variant_level=1))
    wait_until(lambda: {"OnBattery": True} in client.properties, 10, "PropertiesChanged OnBattery=true")
    client.register(APP, "backup", "ok", {"power": "ac"})
    client.register(APP, "mail", "ok", {"power": "battery-not-low"})
    client.register(APP, "chat", "ok")
    client.wait_finished("chat")
    assert client.call("GetRegistration", APP, "backup")["state"] == "pending"
    assert client.call("GetRegistration", APP, "backup")["power"] == "ac"
    assert client.finished_for("mail") == []
    upower.set(DISPLAY, DEVICE, "Percentage", dbus.Double(60.0, variant_level=1))  # charged, still on battery
    client.wait_finished("mail")
    assert client.finished_for("backup") == []
    upower.set(UPOWER_PATH, UPOWER, "OnBattery", dbus.Boolean(False, variant_level=1))
    client.wait_finished("backup")
    state = subprocess.run([str(BIN / "bgsyncctl"), "state", "--address", agent.bus.address],
                           capture_output=True, text=True, check=True).stdout
    assert "battery:   no" in state and "saver:     no" in state


def test_periodic_syncs_wait_in_power_saver_unless_power_any(agent_factory, system_bus, upower, ppd):
    agent = power_agent(agent_factory, system_bus)
    client = Client(agent.bus)
    ppd.set(PPD_PATH, PPD, "ActiveProfile", dbus.String("power-saver", variant_level=1))
    wait_until(lambda: {"PowerSaver": True} in client.properties, 10, "PropertiesChanged PowerSaver=true")
    options = dbus.Dictionary({}, signature="sv")
    client.call("RegisterPeriodic", APP, "news", "ok", dbus.UInt64(1), options, signature="sssta{sv}")
    explicit_any = dbus.Dictionary({"power": "any"}, signature="sv")
    client.call("RegisterPeriodic", APP, "mail", "ok", dbus.UInt64(1), explicit_any, signature="sssta{sv}")
    client.wait_finished("mail", count=2, timeout=15)
    assert client.finished_for("news") == [], "power-saver holds back periodic syncs that did not say power=any"
    ppd.set(PPD_PATH, PPD, "ActiveProfile", dbus.String("balanced", variant_level=1))
    client.wait_finished("news")


def test_losing_power_interrupts_without_charging_an_attempt(agent_factory, system_bus, upower, ppd):
    agent = power_agent(agent_factory, system_bus)
    client = Client(agent.bus)
    client.register(APP, "backup", "stoppable", {"power": "ac"})
    wait_until(lambda: client.started, 10, "SyncStarted")
    upower.set(UPOWER_PATH, UPOWER, "OnBattery", dbus.Boolean(True, variant_level=1))
    finished = client.wait_finished("backup")
    assert finished[0][2:] == ("interrupted", "stopped (cancelled=true)")
    registration = client.call("GetRegistration", APP, "backup")
    assert registration["attempts"] == 0 and registration["state"] == "pending"
    upower.set(UPOWER_PATH, UPOWER, "OnBattery", dbus.Boolean(False, variant_level=1))
    wait_until(lambda: len(client.started) == 2, 10, "the second start, back on AC")
    assert [s[2] for s in client.started] == [1, 1], "the interrupted attempt did not count"


def test_a_handler_that_ignores_the_stop_is_killed_after_the_grace_period(agent_factory, system_bus, upower, ppd):
    agent = power_agent(agent_factory, system_bus, config="[sync]\ninterrupt-grace-period=0.5\nevent-timeout=60\n")
    client = Client(agent.bus)
    client.register(APP, "stubborn", "hang", {"power": "ac"})
    wait_until(lambda: client.started, 10, "SyncStarted")
    stopped = time.monotonic()
    upower.set(UPOWER_PATH, UPOWER, "OnBattery", dbus.Boolean(True, variant_level=1))
    finished = client.wait_finished("stubborn", timeout=15)
    elapsed = time.monotonic() - stopped
    assert finished[0][2:] == ("interrupted", "interrupted (the handler did not stop in time)")
    assert 0.4 < elapsed < 10, f"killed {elapsed:.2f} s after the stop, the grace period being 0.5 s"
    assert client.call("GetRegistration", APP, "stubborn")["attempts"] == 0
    assert "did not stop org.example.Chat/stubborn within 0.5 s; killing worker" in agent.log_text()


def test_without_upower_the_machine_counts_as_on_ac(agent_factory, system_bus):
    agent = power_agent(agent_factory, system_bus)
    client = Client(agent.bus)
    client.register(APP, "backup", "ok", {"power": "ac"})
    client.wait_finished("backup")
    assert agent.log_text().count("UPower is not running; counting as on AC") == 1


# --- Network lost during a slow upload ------------------------------------------------------------

def test_network_drop_during_a_slow_upload_is_interrupted_and_the_rest_goes_later(agent_factory, server, tmp_path):
    system = PrivateBus("system")
    nm = MockNetworkManager(system)
    try:
        nm.start()
        nm.set_state(CONNECTED_GLOBAL)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=system.address)
        agent = agent_factory(network="networkmanager", env=env,
                              config="[sync]\nevent-timeout=60\ninterrupt-grace-period=5\nretry-initial-delay=100\n")
        agent.start()
        client = Client(agent.bus)
        wait_until(lambda: client.prop("Online"), 10, "online")
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        for n in range(6):
            (outbox / f"{n:04}.json").write_text(f'{{"n": {n}}}')
            os.utime(outbox / f"{n:04}.json", (100 + n, 100 + n))
        server.control({"delay": 0.4})  # a slow server: each request takes 0.4 s
        progress = progress_signals(client)
        client.register(APP, "outbox", "upload", {"outbox": str(outbox), "url": server.url()})
        wait_until(lambda: progress, 15, "SyncProgress: the first message accepted")
        nm.set_state(DISCONNECTED)
        finished = client.wait_finished("outbox", timeout=15)
        assert finished[0][2] == "interrupted", finished
        registration = client.call("GetRegistration", APP, "outbox")
        assert registration["attempts"] == 0 and registration["state"] == "pending"
        left = sorted(p.name for p in outbox.iterdir())
        assert 0 < len(left) < 6, f"some were sent and deleted, the rest kept: {left}"
        assert registration["progress"][0] == 6 - len(left)
        server.control({"delay": 0})
        nm.set_state(CONNECTED_GLOBAL)
        finished = client.wait_finished("outbox", count=2, timeout=15)
        assert finished[1][2] == "succeeded", finished
        assert [s[2] for s in client.started] == [1, 1]
        assert list(outbox.iterdir()) == []
        bodies = {r["body"] for r in server.received()}
        assert bodies == {f'{{"n": {n}}}' for n in range(6)}
    finally:
        nm.stop()
        system.stop()


# --- Progress ------------------------------------------------------------------------------------

def test_a_handler_reporting_progress_runs_past_the_cap_and_a_stalled_one_is_cut(agent_factory, bus):
    agent_factory(config="[sync]\nevent-timeout=0.6\nevent-stall-timeout=1\nretry-initial-delay=100\n").start()
    client = Client(bus)
    progress = progress_signals(client)
    started = time.monotonic()
    client.register(APP, "big", "progress", {"steps": dbus.Int32(8), "interval": 0.25})
    finished = client.wait_finished("big", timeout=15)
    assert finished[0][2:] == ("succeeded", "done 8 steps")
    assert time.monotonic() - started > 2.0 - 0.1, "it ran its 2 s, past the 0.6 s cap"
    big = [p for p in progress if p[1] == "big"]
    assert 1 <= len(big) <= 4, f"rate-limited to one a second: {big}"
    assert big[0][2:4] == (1, 8)

    client.register(APP, "stuck", "progress", {"steps": dbus.Int32(10), "interval": 0.2, "stall_after": dbus.Int32(2)})
    started = time.monotonic()
    finished = client.wait_finished("stuck", timeout=15)
    elapsed = time.monotonic() - started
    assert finished[0][2:] == ("retry-scheduled", "timeout")
    assert 1.2 < elapsed < 6, f"cut {elapsed:.2f} s in: 1 s after its last progress at 0.4 s"
    registration = client.call("GetRegistration", APP, "stuck")
    assert tuple(registration["progress"]) == (2, 10, "step 2")
    status = subprocess.run([str(BIN / "bgsyncctl"), "status", "--address", bus.address, APP, "stuck"],
                            capture_output=True, text=True, check=True).stdout
    assert "progress:" in status and "2/10 (step 2)" in status
    assert "power:" in status and " any" in status


# --- Send while online ---------------------------------------------------------------------------

def test_a_message_renamed_into_the_outbox_goes_out_at_attempt_1(agent, client, server, tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "draft~").write_text("not finished")
    (outbox / "0001.json.part").write_text('{"text": "hi"}')
    os.rename(outbox / "0001.json.part", outbox / "0001.json")  # just now: a fresh mtime
    client.register(APP, "outbox", "upload", {"outbox": str(outbox), "url": server.url()})
    finished = client.wait_finished("outbox")
    assert finished[0][2:] == ("succeeded", "sent 1 file")
    assert [s[2] for s in client.started] == [1]
    assert [r["body"] for r in server.received()] == ['{"text": "hi"}']
    assert sorted(p.name for p in outbox.iterdir()) == ["draft~"]


# --- Expiry and earliest start -------------------------------------------------------------------

def test_expires_after_and_not_before_through_dbus(agent_factory, system_bus):
    # NetworkManager mode with no NetworkManager on the system bus: offline until it comes.
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=system_bus.address)
    agent = agent_factory(network="networkmanager", env=env).start()
    client = Client(agent.bus)
    before = time.time()
    client.register(APP, "late", "ok", {"expires-after": dbus.UInt32(1)})
    registration = client.call("GetRegistration", APP, "late")
    assert before + 1 <= registration["expires-at"] <= time.time() + 2
    finished = client.wait_finished("late", timeout=10)
    assert finished[0][2] == "expired"
    assert client.call("GetTags", APP) == []

    for bad in [{"expires-after": dbus.UInt32(0)}, {"not-before": "soon"},
                {"not-before": dbus.UInt32(5), "expires-after": dbus.UInt32(5)}, {"power": "solar"}]:
        with pytest.raises(dbus.DBusException) as error:
            client.register(APP, "bad", "ok", bad)
        assert error.value.get_dbus_name() == "org.freedesktop.DBus.Error.InvalidArgs"
    assert client.call("GetTags", APP) == []


def test_not_before_holds_a_sync_even_when_online_and_triggered(agent, client):
    registered = time.time()
    client.register(APP, "later", "ok", {"not-before": dbus.UInt32(2)})
    registration = client.call("GetRegistration", APP, "later")
    assert registration["state"] == "waiting"
    assert registration["not-before"] >= registered + 2
    client.call("Trigger", APP, "later")
    client.wait_finished("later", timeout=10)
    assert time.time() >= registered + 2 - 0.05, "it did not fire before not-before"
