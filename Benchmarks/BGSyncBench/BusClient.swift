// SPDX-License-Identifier: Apache-2.0
// A client of the agent through DBusKit (the same wrapper the agent uses), with a MainLoop of
// its own for signals. Use one BusClient per thread.
import BGSyncValue
import DBusKit
import MainLoop

final class Flag {
    var value = false
}

final class BusClient {
    static let name = "org.bgsync"
    static let path = "/org/bgsync/Manager"
    static let interface = "org.bgsync.Manager"

    let connection: DBusConnection
    let loop: MainLoop

    /// `loop`: share another client's loop, to wait on both buses at once.
    init(address: String, loop: MainLoop = MainLoop()) throws {
        self.loop = loop
        connection = try DBusConnection(bus: .address(address))
        connection.attach(to: loop)
    }

    deinit { connection.close() }

    func call(
        destination: String, path: String, interface: String, method: String,
        arguments: [Value] = [], timeout: Double = 60
    ) throws -> [Value] {
        try connection.call(
            destination: destination, path: path, interface: interface, method: method,
            arguments: arguments, timeout: timeout)
    }

    func register(app: String, tag: String, handler: String = "noop", options: [(String, Value)] = []) throws {
        _ = try call(
            destination: Self.name, path: Self.path, interface: Self.interface, method: "Register",
            arguments: [.string(app), .string(tag), .string(handler), .stringVariantDictionary(options)])
    }

    func getTags(app: String) throws -> Int {
        let reply = try call(
            destination: Self.name, path: Self.path, interface: Self.interface, method: "GetTags",
            arguments: [.string(app)])
        if case .array(_, let tags) = reply.first { return tags.count }
        return 0
    }

    func ping() throws {
        _ = try call(destination: Self.name, path: "/", interface: "org.freedesktop.DBus.Peer", method: "Ping")
    }

    /// A flag set once `name` has an owner on this bus (checked now, then followed).
    func nameOwnedWatcher(_ name: String) -> Flag {
        let flag = Flag()
        try? connection.addMatch(
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(name)'"
        ) { signal in
            if signal.arguments.count == 3, case .string(let owner) = signal.arguments[2], !owner.isEmpty {
                flag.value = true
            }
        }
        if let reply = try? call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus", method: "NameHasOwner", arguments: [.string(name)]),
            case .bool(true) = reply.first
        {
            flag.value = true
        }
        return flag
    }

    /// Calls `handler` for each signal of the agent's interface named `member`. The agent sends
    /// sync signals only to subscribers: this connection subscribes to every app (it is
    /// unsandboxed), as `bgsyncctl monitor` does. The agent must be running.
    func onAgentSignal(_ member: String, _ handler: @escaping (DBusSignal) -> Void) throws {
        try connection.addMatch(
            "type='signal',path='\(Self.path)',interface='\(Self.interface)',member='\(member)'", handler)
        _ = try call(
            destination: Self.name, path: Self.path, interface: Self.interface, method: "Subscribe",
            arguments: [.string("")])
    }

    /// Handles bus traffic until `condition` holds; throws after `timeout` seconds.
    func wait(timeout: Double, what: String, until condition: () -> Bool) throws {
        let deadline = now() + UInt64(timeout * 1e9)
        while !condition() {
            let current = now()
            guard current < deadline else { throw BenchError("timed out after \(timeout) s waiting for \(what)") }
            loop.iterate(timeout: min(0.25, Double(deadline - current) / 1e9))
        }
    }
}
