# SPDX-License-Identifier: Apache-2.0
"""Hostile input on the bus: many thousands of random and mutated calls to every method, floods,
and one app flooding Register while another app's calls must still be answered promptly.

The agent must answer every call (a reply, or an error with a name), keep its memory flat, and
keep its data consistent (what GetTags lists, GetRegistration describes; the same after a
restart). BGSYNC_FUZZ_CALLS sets the number of calls (50000 by default).
"""

import json
import os
import random
import signal
import statistics
import string
import subprocess
import textwrap
import time

import dbus
import dbus.lowlevel
import pytest
from gi.repository import GLib

from conftest import IFACE, NAME, PATH, Client, wait_until

CALLS = int(os.environ.get("BGSYNC_FUZZ_CALLS", "50000"))
APPS = ["org.fuzz.A", "org.fuzz.B", "org.example.Chat"]
HANDLERS = ["ok", "hang", "exec", "upload", "noop", "options", "nope", ""]
METHODS = {
    "Register": "sssa{sv}", "GetTags": "s", "Unregister": "ss", "GetRegistration": "ss",
    "RegisterPeriodic": "sssta{sv}", "GetPeriodicTags": "s", "UnregisterPeriodic": "ss", "Trigger": "ss",
    "Subscribe": "s",
}
RESERVED_OPTIONS = ["network", "max-attempts", "min-interval", "outbox", "url", "command", "file", "summary"]
BASIC = "ybnqiuxtdsog"
NOT_ANSWERED = {"org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout",
                "org.freedesktop.DBus.Error.Disconnected", "org.freedesktop.DBus.Error.ServiceUnknown"}


# One event slot, held by a sync that hangs for an hour: nothing else fires, so what the fuzzer
# registers stays put to be checked (and no handler's work mixes into the agent's memory figure).
BLOCKED_CONFIG = """\
[sync]
event-timeout=3600
[limits]
concurrent-events=1
"""


def start_blocked_agent(agent_factory, bus, extra_config=""):
    agent = agent_factory(config=BLOCKED_CONFIG + extra_config).start()
    blocker = Client(bus)
    blocker.register("org.blocker.App", "slot", "hang")
    wait_until(lambda: blocker.started, 10, "the blocking sync to start")
    return agent


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# Random D-Bus types and values.

def random_signature(depth=0):
    roll = random.random()
    if depth >= 3 or roll < 0.55:
        return random.choice(BASIC)
    if roll < 0.7:
        return "a" + random_signature(depth + 1)
    if roll < 0.8:
        return "a{" + random.choice(BASIC) + random_signature(depth + 1) + "}"
    if roll < 0.9:
        return "(" + "".join(random_signature(depth + 1) for _ in range(random.randint(1, 3))) + ")"
    return "v"


def split_signature(signature):
    """The complete types in a signature, in order."""
    types, i = [], 0
    while i < len(signature):
        j = skip_type(signature, i)
        types.append(signature[i:j])
        i = j
    return types


def skip_type(signature, i):
    c = signature[i]
    if c == "a":
        return skip_type(signature, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while signature[i] != close:
            i = skip_type(signature, i)
        return i + 1
    return i + 1


def random_text(extreme=False):
    roll = random.random()
    if extreme and roll < 0.2:
        return random.choice(["", "x" * random.choice([255, 256, 1024, 1025, 70000]), "\u00e9\u4e2d\U0001f600" * 50,
                              "org.fuzz.A", "org.fuzz." + "a" * 250, "a..b", ".a.b", "1a.b", "a.b-c_d.E9",
                              "/etc/passwd", "file:///etc/shadow", "https://x/" + "y" * 5000])
    if roll < 0.3:
        return random.choice(APPS)
    if roll < 0.5:
        return random.choice(HANDLERS + RESERVED_OPTIONS)
    alphabet = string.ascii_letters + string.digits + "._-/ :\u00e9"
    return "".join(random.choice(alphabet) for _ in range(random.randint(0, 40)))


def random_value(signature, depth=0, extreme=False):
    c = signature[0]
    ints = {"y": (0, 255), "n": (-2**15, 2**15 - 1), "q": (0, 2**16 - 1), "i": (-2**31, 2**31 - 1),
            "u": (0, 2**32 - 1), "x": (-2**63, 2**63 - 1), "t": (0, 2**64 - 1)}
    if c in ints:
        low, high = ints[c]
        return random.choice([low, high, 0, 1, random.randint(low, high)])
    if c == "b":
        return random.random() < 0.5
    if c == "d":
        return random.choice([0.0, -1.0, 1e308, -1e308, float("inf"), float("-inf"), float("nan"), random.uniform(-1e9, 1e9)])
    if c == "s":
        return random_text(extreme)
    if c == "o":
        return random.choice(["/", "/org/bgsync/Manager", "/a/b_c/D1"])
    if c == "g":
        return random.choice(["", "s", "a{sv}", "(ii)", "aay"])
    if c == "v":
        inner = random_signature(depth + 1) if depth < 4 else "s"
        return dbus_typed(inner, random_value(inner, depth + 1, extreme), variant_level=1)
    if signature.startswith("a{"):
        key, value = split_signature(signature[2:-1])
        count = random.choice([0, 1, 3, 10]) if not extreme else random.choice([0, 500, 3000])
        return dbus.Dictionary({random_value(key, depth + 1): random_value(value, depth + 1, extreme)
                                for _ in range(count)}, signature=key + value)
    if c == "a":
        element = signature[1:]
        count = random.choice([0, 1, 2, 5]) if not extreme else random.choice([0, 1000, 20000])
        if element == "y":
            return dbus.ByteArray(bytes(random.getrandbits(8) for _ in range(min(count, 2000))))
        return dbus.Array([random_value(element, depth + 1) for _ in range(min(count, 200 if depth else count))],
                          signature=element)
    if c == "(":
        fields = split_signature(signature[1:-1])
        return dbus.Struct([random_value(f, depth + 1, extreme) for f in fields], signature=signature[1:-1])
    raise AssertionError(signature)


def dbus_typed(signature, value, variant_level=0):
    """A value carrying its own type, so that it can sit in a variant."""
    kinds = {"y": dbus.Byte, "b": dbus.Boolean, "n": dbus.Int16, "q": dbus.UInt16, "i": dbus.Int32,
             "u": dbus.UInt32, "x": dbus.Int64, "t": dbus.UInt64, "d": dbus.Double, "s": dbus.String,
             "o": dbus.ObjectPath, "g": dbus.Signature}
    if signature in kinds:
        return kinds[signature](value, variant_level=variant_level)
    if isinstance(value, dbus.ByteArray):
        return dbus.Array(list(value), signature="y", variant_level=variant_level)
    if isinstance(value, dbus.Dictionary):
        return dbus.Dictionary(value, signature=value.signature, variant_level=variant_level)
    if isinstance(value, dbus.Array):
        return dbus.Array(value, signature=value.signature, variant_level=variant_level)
    if isinstance(value, dbus.Struct):
        return dbus.Struct(value, signature=value.signature, variant_level=variant_level)
    return value


def valid_options(extreme=False):
    options = {}
    for _ in range(random.randint(0, 4)):
        name = random.choice(RESERVED_OPTIONS + ["greeting", "n", random_text()])
        sig = random.choice(["s", "u", "as", "a{sv}", "t", "b", "d", "ay"])
        options[name] = dbus_typed(sig, random_value(sig, 1, extreme), variant_level=1)
    return dbus.Dictionary(options, signature="sv")


def a_call():
    """One call: a valid one with extreme values, a mutated valid one, or a random one."""
    roll = random.random()
    method = random.choice(list(METHODS))
    interface, path = IFACE, PATH
    if roll < 0.45:  # well-formed, values anywhere from plausible to extreme
        signature = METHODS[method]
        extreme = random.random() < 0.3
        args = []
        for i, t in enumerate(split_signature(signature)):
            if t == "a{sv}":
                args.append(valid_options(extreme))
            elif t == "s" and i == 0:
                args.append(random.choice(APPS) if random.random() < 0.8 else random_text(extreme))
            elif t == "s" and i == 1:
                args.append(f"t{random.randint(0, 400)}" if random.random() < 0.8 else random_text(extreme))
            elif t == "s" and i == 2:
                args.append(random.choice(HANDLERS))
            else:
                args.append(random_value(t, extreme=extreme))
    elif roll < 0.75:  # a valid signature with one argument swapped for another type
        types = split_signature(METHODS[method])
        types[random.randrange(len(types))] = random_signature()
        if random.random() < 0.3:
            types = types[:random.randrange(len(types) + 1)] + ([random_signature()] if random.random() < 0.5 else [])
        signature = "".join(types)
        args = [random_value(t) for t in types]
    else:  # anything: random signatures, other interfaces and members
        signature = "".join(random_signature() for _ in range(random.randint(0, 4)))
        args = [random_value(t) for t in split_signature(signature)]
        interface, method, path = random.choice([
            (IFACE, method, PATH), (IFACE, "NoSuch", PATH), ("org.freedesktop.DBus.Properties", "Get", PATH),
            ("org.freedesktop.DBus.Properties", "GetAll", PATH), ("org.freedesktop.DBus.Properties", "Set", PATH),
            ("org.freedesktop.DBus.Introspectable", "Introspect", PATH), ("org.freedesktop.DBus.Peer", "Ping", PATH),
            (IFACE, method, "/org/bgsync"), (IFACE, method, "/org/bgsync/Manager/x"), ("org.nope.X", method, PATH)])
        if interface == "org.freedesktop.DBus.Properties" and random.random() < 0.6:
            signature, args = "ss", [IFACE, random.choice(["Online", "Metered", "Handlers", "Version", "Nope", ""])]
            if method == "Set":
                signature, args = "ssv", args + [dbus_typed("b", True, variant_level=1)]
    return interface, path, method, signature, args


class Fuzzer:
    def __init__(self, connection):
        self.connection = connection
        self.in_flight = 0
        self.sent = 0
        self.answered = 0
        self.unanswered = []
        self.outcomes = {}

    def send(self):
        interface, path, method, signature, args = a_call()
        message = dbus.lowlevel.MethodCallMessage(NAME, path, interface, method)
        try:
            message.append(*args, signature=signature)
        except (TypeError, ValueError, OverflowError, dbus.DBusException):
            return  # a value dbus-python itself will not encode; nothing was sent
        self.in_flight += 1
        self.sent += 1

        def reply(answer):
            self.in_flight -= 1
            name = answer.get_error_name() if isinstance(answer, dbus.lowlevel.ErrorMessage) else "reply"
            if name in NOT_ANSWERED:
                self.unanswered.append(f"{interface}.{method}({signature}): {name}")
            else:
                self.answered += 1
                self.outcomes[name] = self.outcomes.get(name, 0) + 1

        self.connection.send_message_with_reply(message, reply, 60, require_main_loop=True)

    def run(self, count, window):
        context = GLib.MainContext.default()
        target = self.sent + count
        while self.sent < target or self.in_flight:
            while self.sent < target and self.in_flight < window:
                self.send()
            context.iteration(True)


def check_consistent(client):
    """What GetTags lists, GetRegistration describes, with the right kind; returns all keys."""
    keys = set()
    for app in APPS:
        for kind, method in [("one-off", "GetTags"), ("periodic", "GetPeriodicTags")]:
            tags = list(client.call(method, app))
            assert len(tags) == len(set(tags)), f"duplicates in {method}({app})"
            for tag in tags:
                info = client.call("GetRegistration", app, tag)
                if kind == "periodic" and info["kind"] == "one-off":
                    continue  # the same tag in both namespaces: GetRegistration shows the one-off
                assert info["kind"] == kind and info["handler"] in HANDLERS, (app, tag, dict(info))
                keys.add((app, tag, kind))
    return keys


def test_fuzzing_every_method(agent_factory, bus, tmp_path):
    agent = start_blocked_agent(agent_factory, bus)
    random.seed(int(os.environ.get("BGSYNC_FUZZ_SEED", str(os.getpid()))))
    client = Client(bus)
    fuzzer = Fuzzer(client.connection)
    started = time.monotonic()
    fuzzer.run(min(2000, CALLS // 5), window=32)  # warm-up: caches, allocator, registrations
    rss_before = rss_kib(agent.process.pid)
    fuzzer.run(CALLS - fuzzer.sent - 5000 if CALLS > 10000 else CALLS // 2, window=32)
    fuzzer.run(min(5000, CALLS // 4), window=2000)  # a flood: thousands in flight at once
    rss_after = rss_kib(agent.process.pid)
    elapsed = time.monotonic() - started
    assert agent.process.poll() is None, f"the agent died:\n{agent.log_text()[-3000:]}"
    assert not fuzzer.unanswered, f"{len(fuzzer.unanswered)} calls got no answer, e.g. {fuzzer.unanswered[:5]}"
    assert fuzzer.answered == fuzzer.sent
    client.connection.get_object(NAME, PATH, introspect=False).Ping(dbus_interface="org.freedesktop.DBus.Peer")
    keys = check_consistent(client)
    # The same registrations come back from disk.
    agent.stop()
    agent.start()
    assert check_consistent(Client(bus)) == keys
    growth = rss_after - rss_before
    errors = ", ".join(f"{n.rsplit('.', 1)[-1]} {c}" for n, c in sorted(fuzzer.outcomes.items(), key=lambda x: -x[1]))
    print(f"\nfuzz: {fuzzer.sent} calls in {elapsed:.1f} s, every one answered ({errors}); "
          f"RSS {rss_before} KiB -> {rss_after} KiB ({growth:+d} KiB); {len(keys)} registrations consistent after a restart")
    if "ASAN_OPTIONS" in os.environ or "TSAN_OPTIONS" in os.environ:
        return  # a sanitizer's quarantine and shadow memory grow by design; its own checks apply
    assert growth < 16 * 1024, f"RSS grew by {growth} KiB over {fuzzer.sent} calls"


FLOODER = textwrap.dedent(f"""\
    import json, signal, sys, time
    import dbus, dbus.mainloop.glib
    from gi.repository import GLib
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(sys.argv[1])
    proxy = bus.get_object({NAME!r}, {PATH!r}, introspect=False)
    register = proxy.get_dbus_method("Register", {IFACE!r})
    deadline = time.monotonic() + float(sys.argv[2])
    counts, state = {{}}, {{"in_flight": 0, "n": 0}}
    def stop(*_):
        global deadline
        deadline = 0
    signal.signal(signal.SIGINT, stop)
    def done(name):
        state["in_flight"] -= 1
        counts[name] = counts.get(name, 0) + 1
    print("flooding", flush=True)
    context = GLib.MainContext.default()
    while time.monotonic() < deadline or state["in_flight"]:
        while time.monotonic() < deadline and state["in_flight"] < 256:
            state["n"] += 1
            state["in_flight"] += 1
            register("org.flood.App", f"t{{state['n'] % 1000}}", "ok", dbus.Dictionary({{}}, signature="sv"),
                     signature="sssa{{sv}}", reply_handler=lambda *a: done("ok"),
                     error_handler=lambda e: done(e.get_dbus_name()), timeout=60)
        context.iteration(True)
    print(json.dumps(counts), flush=True)
""")


def quiet_round_trips(client, rounds):
    """A quiet app's calls, one at a time as an app makes them: Register (re-registering its 40
    tags in turn) and GetTags, alternately. Returns each round trip in seconds."""
    times = []
    for n in range(rounds):
        begin = time.perf_counter()
        if n % 2:
            client.call("GetTags", "org.quiet.App")
        else:
            client.register("org.quiet.App", f"t{(n // 2) % 40}", "ok")
        times.append(time.perf_counter() - begin)
    return times


def p99(times):
    return statistics.quantiles(times, n=100)[98]


# What a user would notice: the quiet app's slowest calls (p99) under the flood, against its own
# p99 without it, measured in the same run (so a slow machine or a sanitizer build cancels out).
# Measured on the 2-core test machine: 114x before group commit and fairness (the quiet app's
# calls waited behind hundreds of the flooder's, each fsynced on the loop; phases not yet taken
# in turns); after, 1.7-2.3x (debug build) and 1.6x (AddressSanitizer) in turns. Measured in
# one block each, 29x while a release build started alongside: hence the turns, and a limit
# that still fails the old agent by an order of magnitude.
FLOOD_P99_RATIO_LIMIT = 10.0


def test_one_app_flooding_does_not_starve_another(agent_factory, bus, tmp_path):
    # Every flood call is a durable write (1000 tags re-registered in turn), the costliest call
    # an app can make.
    start_blocked_agent(agent_factory, bus, "registrations-per-app=1000\n")
    other = Client(bus)
    quiet_round_trips(other, 40)  # warm-up: connections, caches, the 40 tags created
    script = tmp_path / "flooder.py"
    script.write_text(FLOODER)
    flooder = subprocess.Popen(["/usr/bin/python3", str(script), bus.address, "600"],
                               stdout=subprocess.PIPE, text=True)
    # Alone and flooded, in turns (the flooder stopped and continued), so that what else the
    # machine does meanwhile falls on both alike. The first calls after each switch are left
    # out: they overlap the flooder's last calls, or its first.
    alone, flooded, cycles, per_cycle, settle = [], [], 4, 100, 10
    try:
        assert flooder.stdout.readline().strip() == "flooding"
        for _ in range(cycles):
            flooder.send_signal(signal.SIGSTOP)
            alone += quiet_round_trips(other, settle + per_cycle)[settle:]
            flooder.send_signal(signal.SIGCONT)
            flooded += quiet_round_trips(other, settle + per_cycle)[settle:]
    finally:
        flooder.send_signal(signal.SIGCONT)
        flooder.send_signal(signal.SIGINT)
    rounds = len(flooded)
    counts = json.loads(flooder.stdout.readline())
    assert flooder.wait(timeout=60) == 0
    assert set(counts) == {"ok"}, counts
    assert len(other.call("GetTags", "org.quiet.App")) == 40
    assert len(other.call("GetTags", "org.flood.App")) == min(1000, counts["ok"])
    flood_calls = counts["ok"]
    ratio = p99(flooded) / p99(alone)
    print(f"\nflood: one app made {flood_calls} durable Registers, 256 in flight, "
          f"while another app made {rounds} calls; "
          f"its p50 {statistics.median(alone) * 1000:.2f} -> {statistics.median(flooded) * 1000:.2f} ms, "
          f"p99 {p99(alone) * 1000:.2f} -> {p99(flooded) * 1000:.2f} ms ({ratio:.1f}x, limit {FLOOD_P99_RATIO_LIMIT}x)")
    assert ratio <= FLOOD_P99_RATIO_LIMIT, (
        f"the quiet app's p99 went from {p99(alone) * 1000:.2f} ms to {p99(flooded) * 1000:.2f} ms under the flood")
