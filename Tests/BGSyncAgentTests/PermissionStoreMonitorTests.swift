// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit
import Foundation
import Logging
import MainLoop
import TestKit
import Testing

@testable import BGSyncAgent

/// PermissionStoreMonitor against a real xdg-permission-store, started by D-Bus activation on a
/// private bus with its data in the test's own directory. (Through the whole agent, with the
/// store restarting and forged signals: Tests/integration/test_permissions.py.)
/// Debian's xdg-desktop-portal (scripts/install-deps check installs it).
private let storeExecutable = "/usr/libexec/xdg-permission-store"

@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: storeExecutable), "needs \(storeExecutable)"))
final class PermissionStoreMonitorTests {
    static let store = storeExecutable
    let directory: String
    let bus: PrivateBus
    let loop = MainLoop()
    let agent: DBusConnection
    /// Plays GNOME Settings and flatpak: blocking calls to the store.
    let writer: DBusConnection

    init() throws {
        directory = try makeTemporaryDirectory(prefix: "bgsync-permissions")
        let services = directory + "/services"
        try FileManager.default.createDirectory(atPath: services, withIntermediateDirectories: true)
        // The store keeps its tables in $XDG_DATA_HOME/flatpak/db: the test's directory, never the user's.
        try """
        [D-BUS Service]
        Name=\(PermissionStoreMonitor.busName)
        Exec=/usr/bin/env XDG_DATA_HOME=\(directory)/data \(Self.store)

        """.write(toFile: services + "/store.service", atomically: true, encoding: .utf8)
        bus = try PrivateBus(serviceDirectories: [services])
        agent = try DBusConnection(bus: .address(bus.address))
        writer = try DBusConnection(bus: .address(bus.address))
    }

    deinit {
        agent.close()
        writer.close()
        bus.kill()  // the store leaves with its bus
        try? FileManager.default.removeItem(atPath: directory)
    }

    func set(_ table: String, _ app: String, _ permissions: [String]) throws {
        _ = try writer.call(
            destination: PermissionStoreMonitor.busName, path: PermissionStoreMonitor.objectPath,
            interface: PermissionStoreMonitor.interface, method: "SetPermission",
            arguments: [.string(table), .bool(true), .string(table), .string(app), .stringArray(permissions)])
    }

    /// Runs the loop until `monitor` reports `expected` (or 10 s pass); returns every report seen.
    func wait(_ monitor: PermissionStoreMonitor, for expected: Set<String>) -> [Set<String>] {
        var seen: [Set<String>] = []
        monitor.onChange = { seen.append($0) }
        let deadline = Date().addingTimeInterval(10)
        while seen.last != expected && Date() < deadline { _ = loop.iterate(timeout: 0.2) }
        return seen
    }

    @Test func readsBothTablesAtStartAndFollowsTheirChanges() throws {
        try set("bgsync", "org.example.A", ["no"])
        try set("background", "org.example.B", ["no"])
        try set("background", "org.example.C", ["yes"])
        let monitor = PermissionStoreMonitor(connection: agent, logger: Logger(label: "test"))
        monitor.start()
        #expect(monitor.denied == ["org.example.A", "org.example.B"])
        agent.attach(to: loop)
        try set("background", "org.example.B", ["yes"])  // GNOME Settings: on again
        #expect(wait(monitor, for: ["org.example.A"]) == [["org.example.A"]])
        try set("background", "org.example.A", ["no"])  // off in both tables
        try set("bgsync", "org.example.A", ["yes"])  // on in one: still off in the other
        try set("bgsync", "org.example.D", ["no"])  // a change to wait for, after those
        #expect(wait(monitor, for: ["org.example.A", "org.example.D"]) == [["org.example.A", "org.example.D"]])
        _ = try writer.call(
            destination: PermissionStoreMonitor.busName, path: PermissionStoreMonitor.objectPath,
            interface: PermissionStoreMonitor.interface, method: "Delete",
            arguments: [.string("background"), .string("background")])
        #expect(wait(monitor, for: ["org.example.D"]) == [["org.example.D"]])
    }

    @Test func noEntryMeansAllowed() throws {
        let monitor = PermissionStoreMonitor(connection: agent, logger: Logger(label: "test"))
        monitor.start()  // activates the store, which has no tables yet: NotFound for both
        #expect(monitor.denied.isEmpty)
    }

    @Test func onlyExactlyNoSwitchesAnAppOff() {
        let permissions = Value.dictionary(
            keySignature: "s", valueSignature: "as",
            [
                .init(key: .string("org.example.Off"), value: .stringArray(["no"])),
                .init(key: .string("org.example.On"), value: .stringArray(["yes"])),
                .init(key: .string("org.example.Empty"), value: .stringArray([])),
                .init(key: .string("org.example.Both"), value: .stringArray(["no", "yes"])),
                .init(key: .string("org.example.Typed"), value: .uint32(0)),
            ])
        #expect(PermissionStoreMonitor.deniedApps(permissions) == ["org.example.Off"])
        #expect(PermissionStoreMonitor.deniedApps(.string("no")).isEmpty)
        #expect(PermissionStoreMonitor.deniedApps(nil).isEmpty)
    }
}
