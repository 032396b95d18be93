// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import BGSyncValue
import DBusKit
import Foundation
import Logging
import MainLoop
import Synchronization
import TestKit
import Testing

@testable import BGSyncAgent

/// ManagerService on a private bus, over a scheduler wired to the core's fakes: each method is
/// called as a client calls it, and each error must come back under its name from the table.
/// (The real agent, with SQLite, workers and the network: Tests/integration/test_manager_bus.py.)
@Suite final class ManagerServiceTests {
    static let app = "org.example.Chat"
    let bus: PrivateBus
    let server = LoopThread()
    let client: DBusConnection
    let world: Unchecked<World>

    /// Everything that lives on the server's loop thread.
    final class World {
        let connection: DBusConnection
        let clock = TestClock()
        let store = MemoryStore()
        let dispatcher = ManualDispatcher()
        let scheduler: Scheduler
        let service: ManagerService

        init(address: String, loop: MainLoop, settings: SyncSettings) throws {
            connection = try DBusConnection(bus: .address(address))
            _ = try connection.requestName(ManagerService.busName)
            scheduler = Scheduler(
                settings: settings, clock: clock, store: store, dispatcher: dispatcher,
                handlers: ["upload": HandlerInfo(name: "upload", description: "Uploads", sandboxSafe: true)],
                network: .offline)
            service = ManagerService(scheduler: scheduler, connection: connection, logger: Logger(label: "test"))
            scheduler.observer = service
            // As the agent does: sync signals go out at the end of each loop iteration, after the
            // outcomes before them are written (MemoryStore writes at once).
            loop.addIterationEndHandler { [unowned service] in service.sendHeldSignals { $0() } }
            try scheduler.start()
            connection.attach(to: loop)
        }
    }

    init() throws {
        bus = try PrivateBus()
        let address = bus.address
        let loop = server.loop
        var settings = SyncSettings()
        settings.registrationsPerApp = 3
        let made = settings
        world = Unchecked(value: try server.run { try World(address: address, loop: loop, settings: made) })
        client = try DBusConnection(bus: .address(address))
    }

    deinit {
        client.close()
        let world = world
        _ = try? server.run { world.value.connection.close() }
        server.stop()
    }

    /// Runs `body` with the server-side objects, on their thread.
    func onServer<T>(_ body: @escaping (World) throws -> T) throws -> T {
        let world = world
        return try server.run { try body(world.value) }
    }

    @discardableResult
    func call(_ method: String, _ arguments: [Value]) throws(DBusError) -> [Value] {
        try client.call(
            destination: ManagerService.busName, path: ManagerService.objectPath, interface: ManagerService.interface,
            method: method, arguments: arguments, timeout: 10)
    }

    func property(_ name: String) throws(DBusError) -> Value? {
        try client.call(
            destination: ManagerService.busName, path: ManagerService.objectPath,
            interface: "org.freedesktop.DBus.Properties", method: "Get",
            arguments: [.string(ManagerService.interface), .string(name)], timeout: 10
        ).first?.unwrappingVariants
    }

    func register(_ tag: String, handler: String = "upload", app: String = app) throws(DBusError) {
        try call(
            "Register",
            [.string(app), .string(tag), .string(handler), .stringVariantDictionary([("url", .string("http://x/"))])])
    }

    /// The D-Bus error name `body` fails with, or nil if it succeeds.
    func errorName(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as DBusError {
            return error.name
        } catch {
            return "not a D-Bus error: \(error)"
        }
    }

    @Test func registerListReadAndUnregisterARegistration() throws {
        try register("outbox")
        #expect(try call("GetTags", [.string(Self.app)]).first?.arrayValue == [.string("outbox")])
        let fields = try #require(try call("GetRegistration", [.string(Self.app), .string("outbox")]).first)
        let dictionary = try #require(fields.stringKeyedDictionary)
        #expect(dictionary["kind"]?.stringValue == "one-off")
        #expect(dictionary["state"]?.stringValue == "pending", "offline: waits for the network")
        #expect(dictionary["handler"]?.stringValue == "upload")
        #expect(dictionary["options"]?.stringKeyedDictionary?["url"]?.stringValue == "http://x/")
        #expect(try onServer { $0.store.rows.count } == 1, "acknowledged means stored")
        #expect(try call("Unregister", [.string(Self.app), .string("outbox")]).first == .bool(true))
        #expect(try call("Unregister", [.string(Self.app), .string("outbox")]).first == .bool(false))
        #expect(try call("GetTags", [.string(Self.app)]).first?.arrayValue == [])
    }

    @Test func eachCoreErrorComesBackUnderItsName() throws {
        #expect(errorName { try register("t", app: "not an app id") } == "org.freedesktop.DBus.Error.InvalidArgs")
        #expect(errorName { try register("t", handler: "nope") } == "org.bgsync.Error.UnknownHandler")
        #expect(
            errorName { try call("GetRegistration", [.string(Self.app), .string("missing")]) }
                == "org.bgsync.Error.NotFound")
        for tag in ["a", "b", "c"] { try register(tag) }
        #expect(errorName { try register("d") } == "org.bgsync.Error.QuotaExceeded", "3 per app in this test")
        #expect(
            errorName { try call("Register", [.string(Self.app), .string("t")]) }
                == "org.freedesktop.DBus.Error.InvalidArgs", "a wrong signature is refused before the core")
        #expect(try call("GetTags", [.string(Self.app)]).first?.arrayValue?.count == 3, "nothing lost")
    }

    /// The sync signals go, unicast, to connections that asked about the app id or subscribed to
    /// every app, and to no one else, whatever their match rules.
    @Test func anEventIsAnnouncedWhenItStartsAndWhenItEnds() throws {
        let signals = LoopThread()
        defer { signals.stop() }
        let address = bus.address
        let received = Mutex<[String: [DBusSignal]]>([:])
        let two = Flag()
        func listen(_ name: String, subscribe appID: String) throws -> Unchecked<DBusConnection> {
            Unchecked(
                value: try signals.run {
                    let connection = try DBusConnection(bus: .address(address))
                    try connection.addMatch("type='signal',interface='\(ManagerService.interface)'") { signal in
                        let count = received.withLock {
                            $0[name, default: []].append(signal)
                            return $0[name]!.count
                        }
                        if name == "monitor", count == 2 { two.set() }
                    }
                    _ = try connection.call(
                        destination: ManagerService.busName, path: ManagerService.objectPath,
                        interface: ManagerService.interface, method: "Subscribe", arguments: [.string(appID)],
                        timeout: 10)
                    connection.attach(to: signals.loop)
                    return connection
                })
        }
        let monitor = try listen("monitor", subscribe: "")
        let bystander = try listen("bystander", subscribe: "org.example.Other")
        defer {
            _ = try? signals.run {
                monitor.value.close()
                bystander.value.close()
            }
        }

        try register("outbox")
        try onServer { world in
            world.scheduler.networkChanged(.online)
            world.service.networkChanged()
        }
        let started = try onServer { $0.dispatcher.started.map(\.key.tag) }
        #expect(started == ["outbox"])
        try onServer { $0.dispatcher.finishLast(.success(detail: "3 files sent")) }
        #expect(two.wait(seconds: 10))
        let seen = received.withLock { $0["monitor"] ?? [] }
        #expect(seen.map(\.member) == ["SyncStarted", "SyncFinished"])
        #expect(seen.first?.arguments == [.string(Self.app), .string("outbox"), .uint32(1), .bool(false)])
        #expect(
            seen.last?.arguments == [
                .string(Self.app), .string("outbox"), .string("succeeded"), .string("3 files sent"),
            ])
        #expect(try call("GetTags", [.string(Self.app)]).first?.arrayValue == [], "a one-off ends with its success")
        // A round trip on the bystander's connection: a signal sent to it before would be in by now.
        _ = try signals.run {
            try bystander.value.call(
                destination: ManagerService.busName, path: ManagerService.objectPath,
                interface: ManagerService.interface, method: "GetTags", arguments: [.string("org.example.Other")])
        }
        try signals.run {}
        #expect(received.withLock { $0["bystander"] ?? [] }.isEmpty, "another app's listener hears nothing of Chat")
        #expect(
            errorName { try call("Subscribe", [.string("not an app id")]) } == "org.freedesktop.DBus.Error.InvalidArgs")
    }

    @Test func propertiesAnswerAndOnlineChangesAreAnnounced() throws {
        #expect(try property("Online") == .bool(false))
        #expect(try property("Metered") == .bool(false))
        #expect(try property("Handlers") == .array(elementSignature: "s", [.string("upload")]))
        #expect(try property("Version") == .uint32(ManagerService.interfaceVersion))

        let signals = LoopThread()
        defer { signals.stop() }
        let address = bus.address
        let changed = Mutex<[String]>([])
        let arrived = Flag()
        let listener = Unchecked(
            value: try signals.run {
                let connection = try DBusConnection(bus: .address(address))
                try connection.addMatch(
                    "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"
                ) { signal in
                    let names = signal.arguments.dropFirst().first?.stringKeyedDictionary?.keys.sorted() ?? []
                    changed.withLock { $0 += names }
                    arrived.set()
                }
                connection.attach(to: signals.loop)
                return connection
            })
        defer { _ = try? signals.run { listener.value.close() } }
        try onServer { world in
            world.scheduler.networkChanged(NetworkStatus(online: true, metered: true))
            world.service.networkChanged()
        }
        #expect(arrived.wait(seconds: 10))
        #expect(changed.withLock { $0 } == ["Metered", "Online"])
        #expect(try property("Online") == .bool(true))
        #expect(try property("Metered") == .bool(true))
    }
}
