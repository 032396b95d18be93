// SPDX-License-Identifier: Apache-2.0
import DBusKit
import Foundation
import MainLoop
import Synchronization
import TestKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the bus says about a peer (GetConnectionCredentials, read with its file descriptor), and
/// signals sent to one connection only.
@Suite final class CredentialsAndUnicastTests {
    let bus: PrivateBus

    init() throws { bus = try PrivateBus() }
    deinit { bus.kill() }

    @Test func theBusNamesAPeersProcess() throws {
        let me = try DBusConnection(bus: .address(bus.address))
        defer { me.close() }
        let asker = try DBusConnection(bus: .address(bus.address))
        defer { asker.close() }
        var credentials = try asker.connectionCredentials(of: me.uniqueName)
        defer { credentials.close() }
        #expect(credentials.processID == UInt32(getpid()))
        // dbus-daemon 1.15.8+ adds a pidfd (Debian 12's 1.14 does not); when there, it is ours.
        if let fd = credentials.processFD {
            let info = try String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8)
            #expect(info.contains("Pid:\t\(getpid())\n"))
        }
        #expect(throws: DBusError.self) { try asker.connectionCredentials(of: ":1.9999") }
    }

    @Test func aUnicastSignalReachesOnlyItsDestination() throws {
        let listeners = LoopThread()
        defer { listeners.stop() }
        let address = bus.address
        let heard = Mutex<[String]>([])
        let arrived = Flag()
        func listener(_ name: String) throws -> Unchecked<DBusConnection> {
            Unchecked(
                value: try listeners.run {
                    let connection = try DBusConnection(bus: .address(address))
                    try connection.addMatch("type='signal',interface='org.example.Test'") { _ in
                        heard.withLock { $0.append(name) }
                        if name == "addressee" { arrived.set() }
                    }
                    connection.attach(to: listeners.loop)
                    return connection
                })
        }
        let addressee = try listener("addressee")
        let bystander = try listener("bystander")
        defer {
            _ = try? listeners.run {
                addressee.value.close()
                bystander.value.close()
            }
        }
        let sender = try DBusConnection(bus: .address(address))
        defer { sender.close() }
        try sender.sendSignal(
            path: "/org/example/Test", interface: "org.example.Test", name: "Ping", arguments: [.string("hi")],
            destination: addressee.value.uniqueName)
        sender.flush()
        #expect(arrived.wait(seconds: 10))
        // A round trip on the bystander's connection: the signal would be in before the reply.
        _ = try listeners.run {
            try bystander.value.call(
                destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
                method: "GetId")
        }
        try listeners.run {}
        #expect(heard.withLock { $0 } == ["addressee"])
        #expect(throws: DBusError.self) {
            try sender.sendSignal(path: "/a", interface: "a.b", name: "C", arguments: [], destination: "not a name")
        }
    }
}
