// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit
import Foundation
import MainLoop
import TestKit
import Testing

/// One private bus per test, with the test service exported on a connection driven by a
/// MainLoop on its own thread; the test calls it from a second connection, as a client would.
@Suite final class ConnectionTests {
    let bus: PrivateBus
    let server = LoopThread()
    let client: DBusConnection
    let serverState: Unchecked<(DBusConnection, DBusExportedObject, TestService.State)>

    init() throws {
        bus = try PrivateBus()
        let address = bus.address
        let loop = server.loop
        serverState = Unchecked(value: try server.run { try TestService.start(address: address, loop: loop) })
        client = try DBusConnection(bus: .address(address))
    }

    deinit {
        client.close()
        let state = serverState
        _ = try? server.run { state.value.0.close() }
        server.stop()
        bus.kill()
    }

    func call(
        _ method: String, _ arguments: [Value] = [], interface: String = TestService.interface,
        path: String = TestService.path
    ) throws(DBusError) -> [Value] {
        try client.call(
            destination: TestService.name, path: path, interface: interface, method: method,
            arguments: arguments, timeout: 10)
    }

    func echo(_ value: Value) throws(DBusError) -> Value? {
        try call("Echo", [.variant(value)]).first
    }

    @Test func uniqueNamesAreAssigned() throws {
        #expect(client.uniqueName.hasPrefix(":"))
        #expect(serverState.value.0.uniqueName.hasPrefix(":"))
        #expect(client.uniqueName != serverState.value.0.uniqueName)
    }

    @Test(arguments: [
        Value.byte(0), .byte(255), .bool(true), .bool(false), .int16(-32768), .uint16(65535),
        .int32(Int32.min), .uint32(UInt32.max), .int64(Int64.min), .uint64(UInt64.max),
        .double(-1.5e300), .double(0), .string(""), .string("héllo ✓ \u{1F600}"), .objectPath("/a/b_c/D1"),
        .signature("a{sv}(ii)"),
        .array(elementSignature: "s", []), .array(elementSignature: "as", [.array(elementSignature: "s", [])]),
        .array(elementSignature: "i", [.int32(1), .int32(-2)]),
        .array(elementSignature: "v", [.variant(.string("x")), .variant(.uint64(1))]),
        .dictionary(keySignature: "s", valueSignature: "v", []),
        .stringVariantDictionary([("a", .int32(1)), ("b", .stringArray(["x", "y"])), ("c", .variant(.bool(true)))]),
        .dictionary(
            keySignature: "u", valueSignature: "(sd)",
            [Value.DictEntry(key: .uint32(1), value: .structure([.string("one"), .double(1)]))]),
        .structure([.byte(1), .structure([.string("in"), .array(elementSignature: "y", [])])]),
        .variant(.variant(.variant(.int32(3)))),
    ])
    func everyValueTypeRoundTrips(value: Value) throws {
        #expect(try echo(value) == .variant(value))
    }

    @Test func deeplyNestedVariantsRoundTripUpToTheLimitAndAreRefusedBeyondIt() throws {
        var value = Value.string("core")
        for _ in 0..<30 { value = .variant(value) }
        #expect(try echo(value) == .variant(value))

        for _ in 0..<100 { value = .variant(value) }
        #expect(throws: DBusError.self) { try self.echo(value) }
        // The service is still there.
        #expect(try call("Concat", [.string("a"), .string("b")]) == [.string("ab")])
    }

    @Test func bytesAreJustBytesEvenWhenNotUTF8() throws {
        let bytes: [UInt8] = [0xFF, 0xFE, 0x00, 0xC3, 0x28, 0x80]
        let value = Value.array(elementSignature: "y", bytes.map { .byte($0) })
        #expect(try echo(value) == .variant(value))
        #expect(try call("Length", [value]) == [.uint32(6)])
    }

    @Test func largeStringsAndArraysRoundTrip() throws {
        let big = String(repeating: "0123456789abcdef", count: 256 * 1024)  // 4 MiB
        #expect(try call("Concat", [.string(big), .string("!")]) == [.string(big + "!")])
        let bytes = Value.array(elementSignature: "y", Array(repeating: .byte(7), count: 1 << 20))
        #expect(try call("Length", [bytes]) == [.uint32(1 << 20)])
    }

    @Test func argumentsOverTheMethodsLimitGetItsErrorAndTheConnectionGoesOn() throws {
        func limited(_ value: Value) throws(DBusError) -> [Value] {
            try call("Limited", [.string("x"), .variant(value)])
        }
        #expect(try limited(.bytes(Array(repeating: 1, count: 3000))) == [.string("bytes")])
        for big: Value in [
            .bytes(Array(repeating: 1, count: 8 << 20)), .string(String(repeating: "x", count: 5000)),
            .array(elementSignature: "u", Array(repeating: .uint32(1), count: 2000)),
            .stringVariantDictionary((0..<600).map { ("k\($0)", .bool(true)) }),
        ] {
            #expect(throws: DBusError(name: "org.example.Error.TooBig", message: "too big")) { try limited(big) }
        }
        #expect(try call("Concat", [.string("still "), .string("here")]) == [.string("still here")])
    }

    @Test func valuesDBusCannotCarryAreRefusedBeforeSending() throws {
        #expect(throws: DBusError.self) { try self.echo(.string("nul\0inside")) }
        #expect(throws: DBusError.self) { try self.echo(.objectPath("not/a/path")) }
        #expect(throws: DBusError.self) { try self.echo(.signature("a{")) }
        #expect(throws: DBusError.self) { try self.echo(.array(elementSignature: "s", [.int32(1)])) }
        #expect(throws: DBusError.self) { try self.echo(.structure([])) }
        #expect(throws: DBusError.self) {
            try self.client.call(destination: "not a name", path: "/", interface: "a.b", method: "C")
        }
    }

    @Test func handlersSeeTheCallersUniqueName() throws {
        _ = try echo(.int32(1))
        let state = serverState
        #expect(try server.run { state.value.2.lastSender } == client.uniqueName)
    }

    @Test func aCallWithNoArgumentsAndNoReplyValuesWorks() throws {
        #expect(try call("Nothing") == [])
    }

    @Test func handlerErrorsBecomeErrorReplies() throws {
        let error = #expect(throws: DBusError.self) { try self.call("Fail", [.string("it broke")]) }
        #expect(error == DBusError(name: "org.example.Error.Custom", message: "it broke"))
    }

    @Test func aDeferredMethodAnswersAfterItsHandlerReturned() throws {
        #expect(try call("Later", [.string("hello")]) == [.string("hello later")])
    }

    @Test func aDeferredReplyDroppedUnsentAnswersFailedAtOnce() throws {
        let started = Date()
        let error = #expect(throws: DBusError.self) { try self.call("Dropped") }
        #expect(error?.name == "org.freedesktop.DBus.Error.Failed")
        #expect(Date().timeIntervalSince(started) < 5, "answered, not left to the call's timeout")
    }

    @Test func aReplyThatCannotBeSentBecomesFailed() throws {
        let error = #expect(throws: DBusError.self) { try self.call("BadReply") }
        #expect(error?.name == "org.freedesktop.DBus.Error.Failed")
    }

    @Test func aWrongSignatureGetsInvalidArgsNamingBothSignatures() throws {
        let error = #expect(throws: DBusError.self) { try self.call("Concat", [.string("a")]) }
        #expect(error?.name == "org.freedesktop.DBus.Error.InvalidArgs")
        #expect(error?.message.contains("'ss'") == true)
        #expect(error?.message.contains("'s'") == true)
    }

    @Test func unknownMethodsInterfacesAndObjectsAreRefused() throws {
        let method = #expect(throws: DBusError.self) { try self.call("Nope") }
        #expect(method?.name == "org.freedesktop.DBus.Error.UnknownMethod")
        let interface = #expect(throws: DBusError.self) { try self.call("Echo", interface: "org.example.Other") }
        #expect(interface?.name == "org.freedesktop.DBus.Error.UnknownInterface")
        let object = #expect(throws: DBusError.self) {
            try self.call("Echo", [.variant(.int32(1))], path: "/elsewhere")
        }
        #expect(object != nil)
    }

    @Test func introspectReturnsTheXMLAsGiven() throws {
        let reply = try call("Introspect", interface: "org.freedesktop.DBus.Introspectable")
        #expect(reply == [.string(TestService.xml)])
    }

    @Test func peerPingAndMachineIdAreAnswered() throws {
        #expect(try call("Ping", interface: "org.freedesktop.DBus.Peer") == [])
        let id = try call("GetMachineId", interface: "org.freedesktop.DBus.Peer").first?.stringValue
        #expect(id?.count == 32)
    }

    @Test func propertiesGetGetAllAndSet() throws {
        let properties = "org.freedesktop.DBus.Properties"
        #expect(
            try call("Get", [.string(TestService.interface), .string("Count")], interface: properties)
                == [.variant(.uint32(7))])
        let all = try call("GetAll", [.string(TestService.interface)], interface: properties)
        #expect(
            all.first?.stringKeyedDictionary == ["Count": .variant(.uint32(7)), "Label": .variant(.string("start"))])

        let readOnly = #expect(throws: DBusError.self) {
            try self.call(
                "Set", [.string(TestService.interface), .string("Count"), .variant(.uint32(1))], interface: properties)
        }
        #expect(readOnly?.name == "org.freedesktop.DBus.Error.PropertyReadOnly")
        _ = try call(
            "Set", [.string(TestService.interface), .string("Label"), .variant(.string("new"))], interface: properties)
        #expect(
            try call("Get", [.string(TestService.interface), .string("Label")], interface: properties)
                == [.variant(.string("new"))])
        let wrongType = #expect(throws: DBusError.self) {
            try self.call(
                "Set", [.string(TestService.interface), .string("Label"), .variant(.uint32(1))], interface: properties)
        }
        #expect(wrongType?.name == "org.freedesktop.DBus.Error.InvalidArgs")
        let unknown = #expect(throws: DBusError.self) {
            try self.call("Get", [.string(TestService.interface), .string("Nope")], interface: properties)
        }
        #expect(unknown?.name == "org.freedesktop.DBus.Error.UnknownProperty")
    }

    @Test func signalsAndPropertiesChangedArriveThroughAddMatch() throws {
        let loop = MainLoop()
        client.attach(to: loop)
        var said: [DBusSignal] = []
        var changed: [DBusSignal] = []
        try client.addMatch(
            "type='signal',sender='\(TestService.name)',interface='\(TestService.interface)',member='Said'"
        ) {
            said.append($0)
        }
        try client.addMatch(
            "type='signal',sender='\(TestService.name)',interface='org.freedesktop.DBus.Properties',"
                + "member='PropertiesChanged',path='\(TestService.path)'"
        ) { changed.append($0) }
        _ = try call("Emit", [.string("hello")])
        let deadline = MainLoop.monotonicNow() + 5_000_000_000
        while (said.isEmpty || changed.isEmpty) && MainLoop.monotonicNow() < deadline {
            loop.iterate(timeout: 1)
        }
        try #require(said.count == 1)
        #expect(said[0].arguments == [.string("hello"), .uint32(42)])
        #expect(said[0].path == TestService.path)
        #expect(said[0].sender == serverState.value.0.uniqueName)
        try #require(changed.count == 1)
        #expect(
            changed[0].arguments == [
                .string(TestService.interface),
                .stringVariantDictionary([("Count", .uint32(8))]),
                .array(elementSignature: "s", []),
            ])
    }

    @Test func aRuleNamingAWellKnownSenderFollowsWhoeverOwnsItLater() throws {
        let loop = MainLoop()
        client.attach(to: loop)
        var received: [DBusSignal] = []
        try client.addMatch("type='signal',sender='org.example.Late',interface='org.example.Late',member='Hi'") {
            received.append($0)
        }
        let late = try DBusConnection(bus: .address(bus.address))
        defer { late.close() }
        #expect(try late.requestName("org.example.Late"))
        late.emitSignal(path: "/org/example/Late", interface: "org.example.Late", name: "Hi", arguments: [.string("x")])
        late.flush()
        let deadline = MainLoop.monotonicNow() + 5_000_000_000
        while received.isEmpty && MainLoop.monotonicNow() < deadline { loop.iterate(timeout: 1) }
        try #require(received.count == 1)
        #expect(received[0].sender == late.uniqueName)
        #expect(received[0].arguments == [.string("x")])
    }

    // Needs busctl from the systemd package (scripts/install-deps check installs it).
    @Test(
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: "/usr/bin/busctl"), "busctl (systemd) is not installed"))
    func busctlCallsAsAUserWouldTypeThem() throws {
        let busctl = "/usr/bin/busctl"
        let concat = try runProgram(
            busctl,
            [
                "--address=\(bus.address)", "call", TestService.name, TestService.path,
                TestService.interface, "Concat", "ss", "foo", "bar",
            ])
        #expect(concat.status == 0, "\(concat.stderr)")
        #expect(concat.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "s \"foobar\"")
        let echo = try runProgram(
            busctl,
            [
                "--address=\(bus.address)", "call", TestService.name, TestService.path,
                TestService.interface, "Echo", "v", "a{sv}", "1", "k", "u", "5",
            ])
        #expect(echo.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "v a{sv} 1 \"k\" u 5")
        let wrong = try runProgram(
            busctl,
            [
                "--address=\(bus.address)", "call", TestService.name, TestService.path,
                TestService.interface, "Concat", "s", "foo",
            ])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("expects arguments of signature 'ss'"))
        // Parent paths are introspectable too (libdbus lists the children), so `busctl tree` finds the object.
        let tree = try runProgram(busctl, ["--address=\(bus.address)", "tree", TestService.name])
        #expect(tree.stdout.contains(TestService.path), "\(tree.stdout)\(tree.stderr)")
        let property = try runProgram(
            busctl,
            [
                "--address=\(bus.address)", "get-property", TestService.name,
                TestService.path, TestService.interface, "Count",
            ])
        #expect(property.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "u 7")
    }

    // Needs gdbus from libglib2.0-bin (scripts/install-deps check installs it).
    @Test(
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: "/usr/bin/gdbus"),
            "gdbus (libglib2.0-bin) is not installed"))
    func gdbusCallsAsAUserWouldTypeThem() throws {
        let gdbus = "/usr/bin/gdbus"
        let result = try runProgram(
            gdbus,
            [
                "call", "--address", bus.address, "--dest", TestService.name,
                "--object-path", TestService.path, "--method", "\(TestService.interface).Concat",
                "foo", "bar",
            ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "('foobar',)")
        let echo = try runProgram(
            gdbus,
            [
                "call", "--address", bus.address, "--dest", TestService.name,
                "--object-path", TestService.path, "--method", "\(TestService.interface).Echo",
                "<{'a': <uint32 5>}>",
            ])
        #expect(echo.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "(<{'a': <uint32 5>}>,)")
        let failing = try runProgram(
            gdbus,
            [
                "call", "--address", bus.address, "--dest", TestService.name,
                "--object-path", TestService.path, "--method", "\(TestService.interface).Fail",
                "nope",
            ])
        #expect(failing.status != 0)
        #expect(failing.stderr.contains("org.example.Error.Custom"))
    }
}

@Suite struct DisconnectTests {
    @Test func killingTheBusFiresOnDisconnectOnce() throws {
        let bus = try PrivateBus()
        let server = LoopThread()
        defer { server.stop() }
        let fired = Flag()
        let count = Unchecked(value: ResultBox<Int>())
        let address = bus.address
        let connection = try server.run { () throws -> Unchecked<DBusConnection> in
            let connection = try DBusConnection(bus: .address(address))
            connection.onDisconnect = {
                count.value.result = .success(((try? count.value.result?.get()) ?? 0) + 1)
                fired.set()
            }
            connection.attach(to: server.loop)
            return Unchecked(value: connection)
        }
        bus.kill()
        #expect(fired.wait(seconds: 10))
        let stillConnected = try server.run { connection.value.isConnected }
        #expect(!stillConnected)
        let fires = try server.run { try count.value.result?.get() }
        #expect(fires == 1)
        try server.run { connection.value.close() }
    }

    @Test func connectingToNothingIsAnErrorNotACrash() {
        #expect(throws: DBusError.self) { try DBusConnection(bus: .address("unix:path=/nonexistent/bus")) }
        #expect(throws: DBusError.self) { try DBusConnection(bus: .address("garbage")) }
    }
}
