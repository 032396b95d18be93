// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncPower
import BGSyncValue
import DBusKit
import Foundation
import Logging
import MainLoop
import TestKit
import Testing

/// The sleep monitor against python-dbusmock's `logind` template on a private system bus of each
/// test's own: its Inhibit returns a real file descriptor, and ListInhibitors lists the lock until
/// that descriptor is closed.
@Suite struct SleepMonitorTests {
    let bus: PrivateBus
    let logind: ChildProcess
    let client: DBusConnection
    var environment: [String: String] {
        ProcessInfo.processInfo.environment.merging(["DBUS_SYSTEM_BUS_ADDRESS": bus.address]) { $1 }
    }

    /// logind with InhibitDelayMaxSec 4 s (not its default 5, so that the monitor is seen to read it).
    init() throws {
        bus = try PrivateBus(kind: .system)
        let environment = ProcessInfo.processInfo.environment.merging(["DBUS_SYSTEM_BUS_ADDRESS": bus.address]) { $1 }
        logind = try ChildProcess(
            ["/usr/bin/python3", "-m", "dbusmock", "--template", "logind", "--system"], environment: environment,
            errors: .file(bus.directory + "/logind.log"))
        _ = try runChecked(
            ["gdbus", "wait", "--system", "--timeout", "20", "org.freedesktop.login1"], environment: environment)
        client = try DBusConnection(bus: .address(bus.address))
        _ = try client.call(
            destination: "org.freedesktop.login1", path: "/org/freedesktop/login1",
            interface: "org.freedesktop.DBus.Mock", method: "AddProperty",
            arguments: [.string(Self.interface), .string("InhibitDelayMaxUSec"), .variant(.uint64(4_000_000))])
    }

    static let interface = "org.freedesktop.login1.Manager"

    /// PrepareForSleep(sleeping), as logind sends it.
    func prepareForSleep(_ sleeping: Bool) throws {
        _ = try client.call(
            destination: "org.freedesktop.login1", path: "/org/freedesktop/login1",
            interface: "org.freedesktop.DBus.Mock", method: "EmitSignal",
            arguments: [
                .string(Self.interface), .string("PrepareForSleep"), .signature("b"),
                .array(elementSignature: "v", [.variant(.bool(sleeping))]),
            ])
    }

    /// logind's ListInhibitors: (what, who, why, mode) of each lock held.
    func inhibitors() throws -> [[String]] {
        let reply = try client.call(
            destination: "org.freedesktop.login1", path: "/org/freedesktop/login1", interface: Self.interface,
            method: "ListInhibitors")
        return (reply.first?.arrayValue ?? []).map { entry in
            guard case .structure(let fields) = entry else { return [] }
            return fields.prefix(4).compactMap(\.stringValue)
        }
    }

    /// Asks ListInhibitors until it lists none, up to `seconds`: the mock drops a lock when it
    /// sees the descriptor's hang-up, which it may handle after a call already on its way.
    func inhibitorsGone(within seconds: Double) throws -> Bool {
        let deadline = MainLoop.monotonicNow() + UInt64(seconds * 1e9)
        while try !inhibitors().isEmpty {
            guard MainLoop.monotonicNow() < deadline else { return false }
            usleep(20_000)
        }
        return true
    }

    @Test func theLockIsListedOnlyWhileHeldAndGoesBeforeTheDelayEndsWhateverStillRuns() throws {
        defer { logind.kill() }
        let harness = SleepHarness(bus: bus.address)
        harness.monitor.start()
        #expect(harness.waitForLog("InhibitDelayMaxSec 4.0 s"))
        #expect(harness.monitor.stopGrace == 2, "half of InhibitDelayMaxSec")
        #expect(try inhibitors().isEmpty, "idle: no lock")

        harness.monitor.holdSleepDelay(true)
        #expect(harness.waitForLog("Holding a sleep delay lock"))
        #expect(try inhibitors() == [["sleep", "bgsync", "Stopping background syncs before sleep", "delay"]])

        // Nobody releases it (events that will not stop): the monitor lets go by itself, inside the delay.
        let asked = MainLoop.monotonicNow()
        try prepareForSleep(true)
        #expect(harness.waitForLog("Releasing the sleep delay lock before the delay ends"))
        #expect(try inhibitorsGone(within: 4 - Double(MainLoop.monotonicNow() - asked) / 1e9))
        let released = Double(MainLoop.monotonicNow() - asked) / 1e9
        #expect(released < 4, "gone \(released) s after PrepareForSleep, past InhibitDelayMaxSec")
        #expect(harness.sleeps == [true])

        // Awake, still wanted: held again.
        try prepareForSleep(false)
        #expect(harness.wait { $0.sleeps == [true, false] })
        #expect(harness.waitForLog("Holding a sleep delay lock", count: 2))
        #expect(try inhibitors().count == 1)
        harness.monitor.holdSleepDelay(false)
        #expect(harness.waitForLog("Released the sleep delay lock"))
        #expect(try inhibitorsGone(within: 2))
    }

    @Test func releasedAsSoonAsAsked() throws {
        defer { logind.kill() }
        let harness = SleepHarness(bus: bus.address)
        harness.monitor.onPrepareForSleep = { [unowned harness] sleeping in
            harness.sleeps.append(sleeping)
            if sleeping { harness.monitor.holdSleepDelay(false) }  // as the scheduler does once events stopped
        }
        harness.monitor.start()
        harness.monitor.holdSleepDelay(true)
        #expect(harness.waitForLog("Holding a sleep delay lock"))
        let asked = MainLoop.monotonicNow()
        try prepareForSleep(true)
        #expect(harness.waitForLog("Released the sleep delay lock"))
        #expect(try inhibitorsGone(within: 2))
        let gone = Double(MainLoop.monotonicNow() - asked) / 1e9
        // The forced release would come at 3.5 s; this one is the scheduler's, at once.
        #expect(gone < 3.5, "gone \(gone) s after PrepareForSleep")
        #expect(!harness.log.contains("before the delay ends"))
    }

    @Test func theSystemBusLostWhilePreparingForSleepEndsTheSleep() throws {
        defer { logind.kill() }
        let harness = SleepHarness(bus: bus.address)
        harness.monitor.start()
        harness.monitor.holdSleepDelay(true)
        #expect(harness.waitForLog("Holding a sleep delay lock"))
        try prepareForSleep(true)
        #expect(harness.wait { $0.sleeps == [true] })
        // The bus goes before logind says the machine woke: no PrepareForSleep(false) will come.
        bus.kill()
        #expect(harness.waitForLog("Not following sleep"))
        #expect(harness.wait { $0.sleeps == [true, false] }, "still preparing for sleep: \(harness.sleeps)")
    }

    @Test func withoutLogindNothingIsHeldAndThatIsSaidOnce() {
        let harness = SleepHarness(bus: "unix:path=/nonexistent/bgsync-test/system_bus_socket")
        harness.monitor.start()
        harness.monitor.holdSleepDelay(true)
        #expect(harness.waitForLog("Not following sleep"))
        #expect(harness.monitor.stopGrace == 2.5, "half of logind's default delay")
        logind.kill()
    }
}

/// A sleep monitor, its loop, its log and every PrepareForSleep it reported.
final class SleepHarness {
    let loop = MainLoop()
    let log = LogRecorder()
    let monitor: any SleepMonitor
    var sleeps: [Bool] = []

    init(bus: String) {
        monitor = makeSleepMonitor(loop: loop, logger: log.logger(label: "test.sleep"), bus: .address(bus))
        monitor.onPrepareForSleep = { [unowned self] in sleeps.append($0) }
    }

    /// Drives the loop until `condition` holds, at most 10 s.
    func wait(_ condition: (SleepHarness) -> Bool) -> Bool {
        let deadline = MainLoop.monotonicNow() + 10_000_000_000
        while !condition(self) {
            let now = MainLoop.monotonicNow()
            guard now < deadline else { return false }
            loop.iterate(timeout: Double(deadline - now) / 1e9)
        }
        return true
    }

    func waitForLog(_ text: String, count: Int = 1) -> Bool { wait { $0.log.count(text) >= count } }
}
