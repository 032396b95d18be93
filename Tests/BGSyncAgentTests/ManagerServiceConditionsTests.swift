// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import DBusKit
import Foundation
import MainLoop
import Synchronization
import TestKit
import Testing

@testable import BGSyncAgent

/// Power, expiry, earliest start and progress on the bus surface, over the core's fakes.
extension ManagerServiceTests {
    /// Listens for signals matching `rule` on a connection of its own while `body` runs, and waits
    /// (at most 10 s) until `count` have come.
    func listen(_ rule: String, count: Int = 1, during body: () throws -> Void) throws -> [DBusSignal] {
        let signals = LoopThread()
        defer { signals.stop() }
        let address = bus.address
        let received = Mutex<[DBusSignal]>([])
        let done = Flag()
        let listener = Unchecked(
            value: try signals.run {
                let connection = try DBusConnection(bus: .address(address))
                try connection.addMatch(rule) { signal in
                    if received.withLock({ seen in
                        seen.append(signal)
                        return seen.count >= count
                    }) {
                        done.set()
                    }
                }
                // Sync signals go only to subscribers (never broadcast): this listener is a monitor.
                _ = try connection.call(
                    destination: ManagerService.busName, path: ManagerService.objectPath,
                    interface: ManagerService.interface, method: "Subscribe", arguments: [.string("")],
                    timeout: 10)
                connection.attach(to: signals.loop)
                return connection
            })
        defer { _ = try? signals.run { listener.value.close() } }
        try body()
        #expect(done.wait(seconds: 10), "the signals came")
        return received.withLock { $0 }
    }

    @Test func getRegistrationShowsPowerExpiryAndEarliestStart() throws {
        try call(
            "Register",
            [
                .string(Self.app), .string("backup"), .string("upload"),
                .stringVariantDictionary([
                    ("power", .string("ac")), ("expires-after", .uint32(600)), ("not-before", .double(60)),
                ]),
            ])
        let now = try onServer { Int64($0.clock.now().timeIntervalSince1970) }
        let reply = try call("GetRegistration", [.string(Self.app), .string("backup")])
        let fields = try #require(reply.first?.stringKeyedDictionary)
        #expect(fields["power"]?.stringValue == "ac")
        #expect(fields["expires-at"]?.int64Value == now + 600)
        #expect(fields["not-before"]?.int64Value == now + 60)
        #expect(fields["state"]?.stringValue == "waiting", "held until not-before")
        #expect(fields["options"]?.stringKeyedDictionary?.isEmpty == true, "reserved keys are not the handler's")
        #expect(
            errorName {
                try call(
                    "Register",
                    [
                        .string(Self.app), .string("x"), .string("upload"),
                        .stringVariantDictionary([("expires-after", .string("tomorrow"))]),
                    ])
            } == "org.freedesktop.DBus.Error.InvalidArgs")
    }

    @Test func progressIsSignalledAndShownInGetRegistration() throws {
        try register("outbox")
        let seen = try listen(
            "type='signal',interface='\(ManagerService.interface)',member='SyncProgress'"
        ) {
            try onServer { world in
                world.scheduler.networkChanged(.online)
                let event = try #require(world.dispatcher.started.first)
                world.scheduler.progressReported(
                    key: event.key, eventID: event.id, SyncProgress(done: 2, total: 5, text: "2 files sent, 40 bytes"))
                // Within the same second: kept, not announced again.
                world.scheduler.progressReported(
                    key: event.key, eventID: event.id, SyncProgress(done: 3, total: 5, text: "3 files sent, 60 bytes"))
            }
        }
        #expect(
            seen.map(\.arguments) == [
                [.string(Self.app), .string("outbox"), .uint64(2), .uint64(5), .string("2 files sent, 40 bytes")]
            ])
        let reply = try call("GetRegistration", [.string(Self.app), .string("outbox")])
        let fields = try #require(reply.first?.stringKeyedDictionary)
        #expect(
            fields["progress"]?.unwrappingVariants
                == .structure([.uint64(3), .uint64(5), .string("3 files sent, 60 bytes")]))
    }

    @Test func powerPropertiesAnswerAndChangesAreAnnounced() throws {
        #expect(try property("OnBattery") == .bool(false))
        #expect(try property("PowerSaver") == .bool(false))
        let seen = try listen(
            "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"
        ) {
            try onServer { world in
                world.scheduler.powerChanged(PowerStatus(onBattery: true, batteryPercentage: 40, powerSaver: true))
                world.service.networkChanged()
            }
        }
        let names = seen.first?.arguments.dropFirst().first?.stringKeyedDictionary?.keys.sorted()
        #expect(names == ["OnBattery", "PowerSaver"])
        #expect(try property("OnBattery") == .bool(true))
        #expect(try property("PowerSaver") == .bool(true))
    }
}
