# SPDX-License-Identifier: Apache-2.0
"""org.bgsync.Manager on a private session bus: every method, signal, property and error, as
apps and users reach them (dbus-python, busctl, gdbus)."""

import os
import pathlib
import subprocess
import time

import dbus
import pytest

from conftest import IFACE, NAME, PATH, ROOT, Client, wait_until

APP = "org.example.Chat"


def error_name(excinfo):
    return excinfo.value.get_dbus_name()


def test_introspect_returns_the_published_xml(client):
    proxy = client.connection.get_object(NAME, PATH, introspect=False)
    xml = proxy.Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")
    assert xml == (ROOT / "dbus" / "org.bgsync.Manager.xml").read_text()


def test_busctl_and_gdbus_introspect_show_the_interface(bus, agent):
    out = subprocess.run(["busctl", f"--address={bus.address}", "introspect", NAME, PATH, IFACE],
                         check=True, capture_output=True, text=True).stdout
    for member in ["Register", "GetTags", "Unregister", "GetRegistration", "RegisterPeriodic",
                   "GetPeriodicTags", "UnregisterPeriodic", "Trigger", "SyncStarted", "SyncFinished",
                   "Online", "Metered", "Handlers", "Version"]:
        assert member in out
    out = subprocess.run(["gdbus", "introspect", "--address", bus.address, "--dest", NAME, "--object-path", PATH],
                         check=True, capture_output=True, text=True).stdout
    assert "interface org.bgsync.Manager" in out


def test_register_fires_at_once_and_announces_it(client):
    client.register(APP, "outbox", "ok", {"greeting": "hello"})
    finished = client.wait_finished("outbox")
    assert client.started[0] == (APP, "outbox", 1, False)
    assert finished[0][2] == "succeeded"
    assert client.call("GetTags", APP) == []


def test_registration_lifecycle_through_the_bus(agent_factory, bus):
    # A long back-off keeps failed registrations around to look at.
    agent_factory(config="[sync]\nretry-initial-delay=100\n").start()
    c = Client(bus)
    c.register(APP, "b", "retry", {"n": dbus.UInt32(7)})
    c.register(APP, "a", "retry")
    c.wait_finished("b")
    c.wait_finished("a")
    assert c.call("GetTags", APP) == ["b", "a"], "registration order"
    info = c.call("GetRegistration", APP, "b")
    assert info["kind"] == "one-off"
    assert info["state"] == "waiting"
    assert info["handler"] == "retry"
    assert info["attempts"] == 1
    assert info["max-attempts"] == 3
    assert info["next-attempt"] > 0
    assert info["network"] == "any"
    assert info["options"] == {"n": 7}
    assert isinstance(info["options"]["n"], dbus.UInt32)
    assert c.call("Unregister", APP, "b") == True  # noqa: E712 (dbus.Boolean)
    assert c.call("Unregister", APP, "b") == False  # noqa: E712
    assert c.call("GetTags", APP) == ["a"]


def test_a_composed_and_a_decomposed_tag_are_two_registrations(agent_factory, bus):
    """Tags compare as bytes (as the spec compares code units), with no Unicode normalisation:
    "café" with é as one code point and as e + U+0301 are two registrations, also after a restart
    (the store's key and the agent's agree)."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    agent = agent_factory(config="[sync]\nretry-initial-delay=100\n[limits]\nregistrations-per-app=2\n").start()
    c = Client(bus)
    c.register(APP, composed, "retry")
    c.register(APP, decomposed, "retry")
    c.wait_finished(composed)
    c.wait_finished(decomposed)
    assert c.call("GetTags", APP) == [composed, decomposed]
    with pytest.raises(dbus.DBusException) as excinfo:
        c.register(APP, "third", "retry")
    assert error_name(excinfo) == "org.bgsync.Error.QuotaExceeded", "each counts for the quota"
    agent.stop()
    agent.start()
    c = Client(bus)
    assert c.call("GetTags", APP) == [composed, decomposed]
    with pytest.raises(dbus.DBusException) as excinfo:
        c.register(APP, "third", "retry")
    assert error_name(excinfo) == "org.bgsync.Error.QuotaExceeded", "each counts for the quota after a restart"
    assert c.call("Unregister", APP, decomposed) == True  # noqa: E712 (dbus.Boolean)
    assert c.call("GetTags", APP) == [composed]
    assert c.call("GetRegistration", APP, composed)["attempts"] == 1
    with pytest.raises(dbus.DBusException) as excinfo:
        c.call("GetRegistration", APP, decomposed)
    assert error_name(excinfo) == "org.bgsync.Error.NotFound"


def test_trigger_skips_the_backoff(agent_factory, bus):
    agent_factory(config="[sync]\nretry-initial-delay=3600\n").start()
    c = Client(bus)
    c.register(APP, "outbox", "retry")
    c.wait_finished("outbox")
    assert c.call("GetRegistration", APP, "outbox")["state"] == "waiting"
    c.call("Trigger", APP, "outbox")
    c.wait_finished("outbox", count=2)
    assert c.started[-1] == (APP, "outbox", 2, False)


def test_periodic_registrations(client):
    client.call("RegisterPeriodic", APP, "news", "ok", dbus.UInt64(3600), dbus.Dictionary({}, signature="sv"))
    assert client.call("GetPeriodicTags", APP) == ["news"]
    assert client.call("GetTags", APP) == []
    info = client.call("GetRegistration", APP, "news")
    assert info["kind"] == "periodic"
    assert info["min-interval"] == 3600
    assert info["state"] == "waiting"
    assert client.started == [], "a periodic sync never fires at registration"
    assert client.call("UnregisterPeriodic", APP, "news") == True  # noqa: E712
    assert client.call("GetPeriodicTags", APP) == []


def test_properties(client, plugin_dir):
    assert client.prop("Online") == True  # noqa: E712 (always-online)
    assert client.prop("Metered") == False  # noqa: E712
    assert client.prop("Version") == 3
    handlers = list(client.prop("Handlers"))
    assert "ok" in handlers and "exec" in handlers
    proxy = client.connection.get_object(NAME, PATH, introspect=False)
    everything = proxy.GetAll(IFACE, dbus_interface="org.freedesktop.DBus.Properties")
    assert set(everything) == {"Online", "Metered", "OnBattery", "PowerSaver", "Handlers", "Repair", "Version"}
    assert dict(everything["Repair"]) == {}, "a healthy database was not repaired"
    with pytest.raises(dbus.DBusException) as excinfo:
        proxy.Set(IFACE, "Online", dbus.Boolean(False), dbus_interface="org.freedesktop.DBus.Properties",
                  signature="ssv")
    assert "ReadOnly" in error_name(excinfo) or "AccessDenied" in error_name(excinfo)


@pytest.mark.parametrize("method,args,signature,expected", [
    ("Register", ("not-an-app-id", "t", "ok", {}), "sssa{sv}", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("Register", (APP, "", "ok", {}), "sssa{sv}", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("Register", (APP, "x" * 1025, "ok", {}), "sssa{sv}", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("Register", (APP, "t", "fax", {}), "sssa{sv}", "org.bgsync.Error.UnknownHandler"),
    ("Register", (APP, "t", "ok", {"network": "wifi"}), "sssa{sv}", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("Register", (APP, "t", "ok", {"max-attempts": "three"}), "sssa{sv}", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("Register", (APP, "t", "ok", {"blob": dbus.ByteArray(b"x" * 70000)}), "sssa{sv}",
     "org.freedesktop.DBus.Error.InvalidArgs"),
    ("Register", (APP, "t"), "ss", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("Register", (APP, "t", "ok", dbus.UInt32(1)), "sssu", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("GetTags", (dbus.UInt32(5),), "u", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("GetTags", ("x" * 300,), "s", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("GetRegistration", (APP, "nothing"), "ss", "org.bgsync.Error.NotFound"),
    ("Trigger", (APP, "nothing"), "ss", "org.bgsync.Error.NotFound"),
    ("RegisterPeriodic", (APP, "t", "ok", dbus.UInt64(0), {}), "sssta{sv}", "org.freedesktop.DBus.Error.InvalidArgs"),
    ("NoSuchMethod", (), None, "org.freedesktop.DBus.Error.UnknownMethod"),
])
def test_bad_calls_get_named_errors_and_the_agent_keeps_answering(client, method, args, signature, expected):
    with pytest.raises(dbus.DBusException) as excinfo:
        client.call(method, *args, signature=signature)
    assert error_name(excinfo) == expected
    assert excinfo.value.get_dbus_message(), "every error carries a message"
    proxy = client.connection.get_object(NAME, PATH, introspect=False)
    proxy.Ping(dbus_interface="org.freedesktop.DBus.Peer")
    assert client.call("GetTags", APP) == []


def test_quota_per_app(agent_factory, bus):
    agent_factory(config="[limits]\nregistrations-per-app=2\n").start()
    c = Client(bus)
    c.register(APP, "a", "hang")
    c.register(APP, "b", "hang")
    with pytest.raises(dbus.DBusException) as excinfo:
        c.register(APP, "c", "hang")
    assert error_name(excinfo) == "org.bgsync.Error.QuotaExceeded"
    c.register("org.example.Other", "c", "ok")


def test_typed_options_round_trip(agent_factory, bus):
    agent_factory(config="[sync]\nretry-initial-delay=100\n").start()
    c = Client(bus)
    options = {
        "command": dbus.Array(["sh", "-c", "true"], signature="s"),
        "headers": dbus.Dictionary({"X-A": "1"}, signature="ss"),
        "count": dbus.UInt32(5), "big": dbus.Int64(-(2**40)), "ratio": dbus.Double(0.25), "flag": dbus.Boolean(True),
        "raw": dbus.ByteArray(b"\xff\xfe not utf-8 \x00"),
    }
    c.register(APP, "typed", "retry", options)
    c.wait_finished("typed")
    got = c.call("GetRegistration", APP, "typed")["options"]
    assert got["command"] == ["sh", "-c", "true"] and got["command"].signature == "s"
    assert got["headers"] == {"X-A": "1"}
    assert isinstance(got["count"], dbus.UInt32) and got["count"] == 5
    assert isinstance(got["big"], dbus.Int64) and got["big"] == -(2**40)
    assert got["ratio"] == 0.25 and got["flag"] == True  # noqa: E712
    assert bytes(got["raw"]) == b"\xff\xfe not utf-8 \x00"


def test_busctl_and_gdbus_calls_as_a_user_types_them(bus, agent):
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
    subprocess.run(["busctl", "--user", "call", NAME, PATH, IFACE, "Register", "sssa{sv}", APP, "from-busctl",
                    "retry", "1", "note", "s", "hi"], check=True, env=env)
    subprocess.run(["gdbus", "call", "--session", "--dest", NAME, "--object-path", PATH, "--method",
                    f"{IFACE}.Register", APP, "from-gdbus", "retry", "{'note': <'hi'>}"], check=True, env=env,
                   capture_output=True)
    out = subprocess.run(["busctl", "--user", "call", NAME, PATH, IFACE, "GetTags", "s", APP],
                         check=True, env=env, capture_output=True, text=True).stdout
    assert out.strip() == 'as 2 "from-busctl" "from-gdbus"'
    bad = subprocess.run(["busctl", "--user", "call", NAME, PATH, IFACE, "GetTags", "s", "bad id"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "app id" in bad.stderr


def test_a_second_agent_exits_with_a_clear_message_before_touching_anything(agent, agent_factory):
    client = Client(agent.bus)
    client.register(APP, "due", "hang")  # running in the first agent; would fire again in a second
    second = agent_factory()  # same state directory
    second.start(expect_ready=False)
    assert second.wait_exit() == 1
    assert "already owns org.bgsync" in second.log_text()
    assert "attempt" not in second.log_text() and "Handler" not in second.log_text()
    assert client.call("GetTags", APP) == ["due"]


def test_acknowledged_registrations_survive_kill_9(agent_factory, bus):
    a = agent_factory(config="[sync]\nretry-initial-delay=3600\n").start()
    c = Client(bus)
    for n in range(20):
        c.register(APP, f"t{n}", "retry")
    a.kill()
    a.start()
    assert list(Client(bus).call("GetTags", APP)) == [f"t{n}" for n in range(20)]


def test_the_agent_exits_cleanly_when_the_bus_goes_away(agent):
    agent.bus.stop()
    assert agent.wait_exit() == 0
    assert "bus went away" in agent.log_text()


def memory_kib(pid):
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc/PID/status."""
    fields = dict(line.split(":", 1) for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def test_a_30_mib_byte_array_option_is_refused_before_it_is_built(agent, client):
    """A 30 MiB `ay` option gets the options-limit error, the agent's memory stays flat (it was
    decoded one value per byte, twice: 37 MB became 2.5 GB), and the agent answers at once."""
    client.register(APP, "warm-up", "hang", {"outbox": "/tmp/x"})  # every path the big call takes, once
    rss_before, _ = memory_kib(agent.process.pid)
    payload = 30 * 1024 * 1024
    started = time.monotonic()
    with pytest.raises(dbus.DBusException) as excinfo:
        client.connection.call_blocking(
            NAME, PATH, IFACE, "Register", "sssa{sv}",
            (APP, "huge", "ok", dbus.Dictionary({"blob": dbus.ByteArray(b"\x01" * payload)}, signature="sv")),
            timeout=120)
    refused_after = time.monotonic() - started
    assert error_name(excinfo) == "org.freedesktop.DBus.Error.InvalidArgs"
    assert "the options may take at most 65536" in excinfo.value.get_dbus_message()
    proxy = client.connection.get_object(NAME, PATH, introspect=False)
    ping_started = time.monotonic()
    proxy.Ping(dbus_interface="org.freedesktop.DBus.Peer")
    ping = time.monotonic() - ping_started
    rss_after, peak = memory_kib(agent.process.pid)
    print(f"RSS before {rss_before} KiB, peak {peak} KiB, after {rss_after} KiB; refused in {refused_after:.2f} s, "
          f"Ping {ping * 1000:.1f} ms")
    # libdbus must hold the message it received (30 MiB); nothing more than a copy of it.
    # libdbus holds the received message (1×) while it is refused; a value object per byte, as
    # before, took 2.5 GB. A sanitizer's redzones and quarantine add their own copies (measured
    # under ASan: 1.6× more), so its bound is wider, still far below a per-byte decode.
    sanitized = "ASAN_OPTIONS" in os.environ or "TSAN_OPTIONS" in os.environ
    assert peak < rss_before + (6 if sanitized else 3) * payload // 1024, f"peak {peak} KiB from {rss_before} KiB"
    if not sanitized:  # a sanitizer's quarantine keeps freed memory by design
        assert rss_after < rss_before + payload // 1024 // 2, f"RSS {rss_after} KiB stayed from {rss_before} KiB"
    assert client.call("GetTags", APP) == ["warm-up"], "nothing registered, nothing lost"
    assert ping < 1.0, "the loop answers at once after the refusal"
