// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncPower
import DBusKit
import Foundation
import Logging
import MainLoop
import Synchronization
import TestKit
import Testing

/// The power monitor against python-dbusmock's `upower` and `power_profiles_daemon` templates on
/// a private system bus of each test's own (the monitor is given its address; nothing else in
/// this process uses a system bus).
@Suite struct PowerMonitorTests {
    let bus: PrivateBus
    var environment: [String: String] {
        ProcessInfo.processInfo.environment.merging(["DBUS_SYSTEM_BUS_ADDRESS": bus.address]) { $1 }
    }

    init() throws {
        bus = try PrivateBus(kind: .system)
    }

    /// Starts a template and waits until it owns `name` (gdbus wait follows NameOwnerChanged).
    func mock(_ template: String, owning name: String, parameters: String? = nil) throws -> ChildProcess {
        var argv = ["/usr/bin/python3", "-m", "dbusmock", "--template", template, "--system"]
        if let parameters { argv += ["--parameters", parameters] }
        let process = try ChildProcess(
            argv, environment: environment, errors: .file(bus.directory + "/\(template).log"))
        _ = try runChecked(["gdbus", "wait", "--system", "--timeout", "20", name], environment: environment)
        return process
    }

    /// Properties.Set on a mock object: it emits PropertiesChanged, as the real services do.
    func set(_ name: String, _ path: String, _ interface: String, _ property: String, _ value: String) throws {
        _ = try runChecked(
            [
                "gdbus", "call", "--system", "--dest", name, "--object-path", path, "--method",
                "org.freedesktop.DBus.Properties.Set", interface, property, value,
            ], environment: environment)
    }

    @Test func readsUPowerAndTheProfileAtStartAndFollowsTheirChanges() throws {
        let upower = try mock("upower", owning: "org.freedesktop.UPower", parameters: #"{"OnBattery": true}"#)
        defer { upower.kill() }
        let display = "/org/freedesktop/UPower/devices/DisplayDevice"
        try set("org.freedesktop.UPower", display, "org.freedesktop.UPower.Device", "IsPresent", "<true>")
        try set("org.freedesktop.UPower", display, "org.freedesktop.UPower.Device", "Percentage", "<15.0>")
        let ppd = try mock("power_profiles_daemon", owning: "net.hadess.PowerProfiles")
        defer { ppd.kill() }

        let harness = PowerHarness(bus: bus.address)
        harness.monitor.start()
        #expect(harness.monitor.status == PowerStatus(onBattery: true, batteryPercentage: 15, powerSaver: false))
        #expect(harness.log.contains("Following UPower"))

        try set(
            "net.hadess.PowerProfiles", "/net/hadess/PowerProfiles", "net.hadess.PowerProfiles", "ActiveProfile",
            "<'power-saver'>")
        #expect(harness.wait { $0.last?.powerSaver == true })
        try set("org.freedesktop.UPower", "/org/freedesktop/UPower", "org.freedesktop.UPower", "OnBattery", "<false>")
        #expect(harness.wait { $0.last == PowerStatus(onBattery: false, batteryPercentage: 15, powerSaver: true) })
        #expect(harness.changes.count == 2, "one change each, no flapping")
    }

    @Test func withoutUPowerTheMachineCountsAsOnACLoggedOnce() throws {
        let harness = PowerHarness(bus: bus.address)
        harness.monitor.start()
        #expect(harness.monitor.status == .ac)
        #expect(harness.log.count("UPower is not running; counting as on AC") == 1)

        // UPower arriving later is followed from then on.
        let upower = try mock("upower", owning: "org.freedesktop.UPower", parameters: #"{"OnBattery": true}"#)
        defer { upower.kill() }
        #expect(harness.wait { $0.last?.onBattery == true })
        #expect(harness.log.count("UPower is not running; counting as on AC") == 1)
    }

    /// The bus thread ends soon after the monitor goes, not at once (stop() does not wait): it
    /// must not own the loop meanwhile, or at the agent's exit the loop, and what hangs on it,
    /// is still in use.
    @Test func theBusThreadDoesNotKeepTheLoopAlive() {
        weak var loop: MainLoop?
        do {
            let harness = PowerHarness(bus: bus.address)
            harness.monitor.start()  // no UPower: the thread stays, waiting for it to appear
            loop = harness.loop
        }
        #expect(loop == nil, "the loop outlived the monitor and its owner")
    }

    @Test func withoutASystemBusTheMachineCountsAsOnAC() {
        let harness = PowerHarness(bus: "unix:path=/nonexistent/bgsync-test/system_bus_socket")
        harness.monitor.start()
        #expect(harness.monitor.status == .ac)
        #expect(harness.log.contains("counting as on AC"))
    }
}

/// A monitor, its loop, its log and every status it reported.
final class PowerHarness {
    let loop = MainLoop()
    let log = LogRecorder()
    let monitor: any PowerMonitor
    private(set) var changes: [PowerStatus] = []

    init(bus: String) {
        monitor = makePowerMonitor(
            mode: .upower, loop: loop, logger: log.logger(label: "test.power"), bus: .address(bus))
        monitor.onChange = { [unowned self] status in changes.append(status) }
    }

    /// Drives the loop until `condition` holds on the changes so far, at most 10 s.
    func wait(_ condition: ([PowerStatus]) -> Bool) -> Bool {
        let deadline = MainLoop.monotonicNow() + 10_000_000_000
        while !condition(changes) {
            let now = MainLoop.monotonicNow()
            guard now < deadline else { return false }
            loop.iterate(timeout: Double(deadline - now) / 1e9)
        }
        return true
    }
}
