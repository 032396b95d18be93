# SPDX-License-Identifier: Apache-2.0
"""The agent following a mocked NetworkManager (python-dbusmock's networkmanager template) on a
private system bus: offline registrations wait, going online fires them once, metered
connections hold back unmetered-only ones, and NetworkManager may come and go."""

import os
import subprocess

import dbus
import pytest
from gi.repository import GLib

from conftest import PrivateBus, Client, wait_until

APP = "org.example.Chat"
NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
MOCK = "org.freedesktop.DBus.Mock"
CONNECTED_GLOBAL, CONNECTED_SITE, DISCONNECTED = 70, 60, 20
METERED_YES, METERED_NO = 1, 2


class MockNetworkManager:
    def __init__(self, system_bus):
        self.bus = system_bus
        self.connection = system_bus.connect()
        self.process = None

    def start(self, state=DISCONNECTED):
        owners = []
        receiver = self.connection.add_signal_receiver(
            lambda name, old, new: owners.append(new), "NameOwnerChanged", "org.freedesktop.DBus",
            "org.freedesktop.DBus", "/org/freedesktop/DBus", arg0=NM)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        self.process = subprocess.Popen(
            ["/usr/bin/python3", "-m", "dbusmock", "--template", "networkmanager",
             "--parameters", f'{{"State": {state}}}'], env=env, stdout=subprocess.DEVNULL)
        wait_until(lambda: any(owners), 15, "the mock NetworkManager on the bus")
        receiver.remove()
        # The template has no Metered property until it is added.
        self.connection.get_object(NM, NM_PATH).AddProperty(NM, "Metered", dbus.UInt32(METERED_NO),
                                                             dbus_interface=MOCK)

    def set_state(self, state):
        self.connection.get_object(NM, "/org/freedesktop").SetGlobalConnectionState(
            dbus.UInt32(state), dbus_interface=MOCK)

    def set_metered(self, metered):
        self.connection.get_object(NM, "/org/freedesktop").SetProperty(
            NM_PATH, NM, "Metered", dbus.UInt32(metered, variant_level=1), dbus_interface=MOCK)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def nm():
    system = PrivateBus("system")
    mock = MockNetworkManager(system)
    mock.start()
    yield mock
    mock.stop()
    system.stop()


@pytest.fixture
def nm_agent(agent_factory, nm):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=nm.bus.address)
    return agent_factory(network="networkmanager", env=env).start()


def settle():
    """Handles whatever the bus has already delivered, without waiting for more."""
    context = GLib.MainContext.default()
    while context.iteration(False):
        pass


def test_offline_registrations_fire_once_when_online(nm, nm_agent):
    client = Client(nm_agent.bus)
    assert client.prop("Online") == False  # noqa: E712
    for _ in range(5):
        client.register(APP, "outbox", "ok")
    settle()
    assert client.started == [], "nothing fires offline"
    assert client.call("GetRegistration", APP, "outbox")["state"] == "pending"
    nm.set_state(CONNECTED_GLOBAL)
    client.wait_finished("outbox")
    wait_until(lambda: {"Online": True} in client.properties, 5, "PropertiesChanged Online=true")
    assert len(client.started) == 1, "five registrations coalesce into one sync"
    assert client.prop("Online") == True  # noqa: E712


def test_a_link_without_internet_is_not_online(nm, nm_agent):
    client = Client(nm_agent.bus)
    nm.set_state(CONNECTED_SITE)
    client.register(APP, "outbox", "ok")
    settle()
    assert client.prop("Online") == False  # noqa: E712
    assert client.started == []


def test_unmetered_registrations_wait_for_an_unmetered_connection(nm, nm_agent):
    client = Client(nm_agent.bus)
    nm.set_metered(METERED_YES)
    nm.set_state(CONNECTED_GLOBAL)
    wait_until(lambda: client.prop("Metered") and client.prop("Online"), 5, "metered and online")
    client.register(APP, "video", "ok", {"network": "unmetered"})
    client.register(APP, "text", "ok")
    client.wait_finished("text")
    assert client.finished_for("video") == []
    nm.set_metered(METERED_NO)
    client.wait_finished("video")


def test_network_manager_going_away_and_coming_back(nm, nm_agent):
    client = Client(nm_agent.bus)
    nm.set_state(CONNECTED_GLOBAL)
    wait_until(lambda: client.prop("Online"), 5, "online")
    nm.stop()
    nm_agent.wait_for_log("NetworkManager stopped")  # it says what it noticed
    nm.start(state=DISCONNECTED)
    wait_until(lambda: not client.prop("Online"), 10, "offline again, following the new NetworkManager")
    client.register(APP, "outbox", "ok")
    nm.set_state(CONNECTED_GLOBAL)
    client.wait_finished("outbox")
