// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit
import Foundation
import MainLoop
import TestKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for the agent's org.bgsync.Manager, exported with DBusKit on a private bus. It
/// records the calls it gets and answers from canned data.
final class StandInAgent {
    static let interface = "org.bgsync.Manager"
    static let path = "/org/bgsync/Manager"
    var calls: [DBusMethodCall] = []
    let connection: DBusConnection
    let object: DBusExportedObject

    static let registration = Value.stringVariantDictionary([
        ("state", .string("waiting")), ("handler", .string("exec")), ("attempts", .uint32(1)),
        ("max-attempts", .uint32(3)), ("next-attempt", .int64(0)), ("network", .string("any")),
        ("last-error", .string("connection refused")),
        ("options", .stringVariantDictionary([("command", .stringArray(["sh", "-c", "echo hi"]))])),
        ("kind", .string("one-off")),
    ])

    init(address: String, loop: MainLoop) throws {
        connection = try DBusConnection(bus: .address(address))
        object = DBusExportedObject(introspectionXML: "<node/>")
        let i = Self.interface
        func record(
            _ name: String, _ signature: String, _ reply: @escaping (DBusMethodCall) throws(DBusError) -> [Value]
        ) {
            object.addMethod(interface: i, name: name, inSignature: signature) {
                [unowned self] call throws(DBusError) in
                self.calls.append(call)
                return try reply(call)
            }
        }
        record("Register", "sssa{sv}") { _ in [] }
        record("RegisterPeriodic", "sssta{sv}") { _ in [] }
        record("GetTags", "s") { _ in [.stringArray(["inbox", "outbox"])] }
        record("GetPeriodicTags", "s") { _ in [.stringArray(["news"])] }
        record("Unregister", "ss") { call in [.bool(call.arguments[1].stringValue == "outbox")] }
        record("UnregisterPeriodic", "ss") { _ in [.bool(false)] }
        record("GetRegistration", "ss") { call throws(DBusError) in
            guard call.arguments[1].stringValue == "outbox" else {
                throw DBusError(
                    name: "org.bgsync.Error.NotFound", message: "no registration 'missing' for org.example.App")
            }
            return [Self.registration]
        }
        record("Trigger", "ss") { _ throws(DBusError) in
            throw DBusError(name: "org.bgsync.Error.InvalidArgument", message: "tag must not be empty")
        }
        object.addProperty(interface: i, name: "Online", signature: "b") { .bool(true) }
        object.addProperty(interface: i, name: "Metered", signature: "b") { .bool(false) }
        object.addProperty(interface: i, name: "Handlers", signature: "as") { .stringArray(["exec", "upload"]) }
        object.addProperty(interface: i, name: "Version", signature: "u") { .uint32(1) }
        connection.export(object, at: Self.path)
        connection.attach(to: loop)
        _ = try connection.requestName("org.bgsync")
    }
}

@Suite final class BGSyncCtlTests {
    let bus: PrivateBus
    let server = LoopThread()
    let agent: Unchecked<StandInAgent>
    let binary: String

    init() throws {
        bus = try PrivateBus()
        let address = bus.address
        let loop = server.loop
        agent = Unchecked(value: try server.run { try StandInAgent(address: address, loop: loop) })
        // The test bundle and bgsyncctl are built into the same directory.
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        binary = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("bgsyncctl").path
    }

    deinit {
        let agent = agent
        _ = try? server.run { agent.value.connection.close() }
        server.stop()
        bus.kill()
    }

    func ctl(_ arguments: [String], environment: [String: String]? = nil) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build bgsyncctl first (swift build)")
        let args = environment == nil ? ["--address", bus.address] : []
        guard let command = arguments.first else { return try runProgram(binary, arguments) }
        return try runProgram(binary, [command] + args + arguments.dropFirst(), environment: environment)
    }

    func received() throws -> [DBusMethodCall] {
        let agent = agent
        return try server.run { agent.value.calls }
    }

    @Test func registerSendsOptionsReadLikeGsettings() throws {
        let result = try ctl([
            "register", "org.example.App", "outbox", "exec",
            "-o", "command=['sh','-c','echo hi']", "-o", "retries=uint32 5",
            "-o", "url=https://example.org/a b", "-o", "max-attempts=4", "--network", "unmetered",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Registered one-off sync 'outbox' for org.example.App"))
        let calls = try received()
        try #require(calls.count == 1)
        #expect(calls[0].member == "Register")
        #expect(
            calls[0].arguments == [
                .string("org.example.App"), .string("outbox"), .string("exec"),
                .stringVariantDictionary([
                    ("command", .stringArray(["sh", "-c", "echo hi"])), ("retries", .uint32(5)),
                    ("url", .string("https://example.org/a b")), ("max-attempts", .uint32(4)),
                    ("network", .string("unmetered")),
                ]),
            ])
    }

    @Test func registerPeriodicReadsDurations() throws {
        let result = try ctl(["register-periodic", "org.example.App", "news", "exec", "--every", "1h30m"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try received().first?.arguments[3] == .uint64(5400))
        for (text, seconds) in [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("1d", 86400)] {
            _ = try ctl(["register-periodic", "a.b", "t", "exec", "--every", text])
            #expect(try received().last?.arguments[3] == .uint64(UInt64(seconds)), "\(text)")
        }
    }

    @Test func usageErrorsExitTwoWithoutCallingTheAgent() throws {
        for arguments in [
            ["register-periodic", "a.b", "t", "exec", "--every", "5x"],
            ["register-periodic", "a.b", "t", "exec", "--every", "0"],
            ["register", "a.b", "t", "exec", "-o", "novalue"],
            ["register", "a.b", "t", "exec", "--network", "wifi"],
            ["register", "a.b", "t"],
            ["frobnicate"],
        ] {
            let result = try ctl(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(!result.stderr.isEmpty)
        }
        #expect(try received().isEmpty)
    }

    @Test func tagsAsLinesOrJSON() throws {
        #expect(try ctl(["tags", "org.example.App"]).stdout == "inbox\noutbox\n")
        #expect(try ctl(["tags", "org.example.App", "--json"]).stdout == "[\"inbox\",\"outbox\"]\n")
        #expect(try ctl(["tags", "org.example.App", "--periodic"]).stdout == "news\n")
    }

    @Test func statusForPeopleAndForScripts() throws {
        let human = try ctl(["status", "org.example.App", "outbox"])
        #expect(human.status == 0)
        #expect(human.stdout.contains("state:"))
        #expect(human.stdout.contains("waiting"))
        #expect(human.stdout.contains("last error:"))
        #expect(human.stdout.contains("command=['sh', '-c', 'echo hi']"))
        let json = try ctl(["status", "org.example.App", "outbox", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["state"] as? String == "waiting")
        #expect(object?["max-attempts"] as? Int == 3)
        #expect((object?["options"] as? [String: Any])?["command"] as? [String] == ["sh", "-c", "echo hi"])
    }

    @Test func notFoundExitsFour() throws {
        let status = try ctl(["status", "org.example.App", "missing"])
        #expect(status.status == 4)
        #expect(status.stderr.contains("org.bgsync.Error.NotFound"))
        #expect(try ctl(["unregister", "org.example.App", "outbox"]).status == 0)
        #expect(try ctl(["unregister", "org.example.App", "inbox"]).status == 4)
        #expect(try ctl(["unregister", "org.example.App", "news", "--periodic"]).status == 4)
    }

    @Test func agentErrorsExitOneWithNameAndMessage() throws {
        let result = try ctl(["trigger", "org.example.App", "outbox"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("org.bgsync.Error.InvalidArgument: tag must not be empty"))
    }

    @Test func stateShowsProperties() throws {
        let result = try ctl(["state"])
        #expect(result.status == 0)
        #expect(result.stdout == "online:    yes\nmetered:   no\nhandlers:  exec, upload\nversion:   1\n")
        #expect(
            try ctl(["state", "--json"]).stdout
                == "{\"Online\":true,\"Metered\":false,\"Handlers\":[\"exec\",\"upload\"],\"Version\":1}\n")
    }

    @Test func sessionBusAddressFromTheEnvironmentIsHonoured() throws {
        let result = try ctl(["tags", "org.example.App"], environment: ["DBUS_SESSION_BUS_ADDRESS": bus.address])
        #expect(result.stdout == "inbox\noutbox\n")
    }

    @Test func anAbsentAgentExitsThree() throws {
        let empty = try PrivateBus()
        let result = try runProgram(binary, ["tags", "--address", empty.address, "org.example.App"])
        #expect(result.status == 3)
        #expect(result.stderr.contains("not reachable"))
        let nowhere = try runProgram(binary, ["state", "--address", "unix:path=/nonexistent/bus"])
        #expect(nowhere.status == 3)
    }

    @Test func monitorPrintsOneLinePerEventUntilSIGTERM() throws {
        try #require(FileManager.default.isExecutableFile(atPath: binary))
        let monitor = try ChildProcess([binary, "monitor", "--address", bus.address])
        let ready = monitor.collect(stderr: true, timeout: 10) { $0.contains("monitoring") }
        try #require(ready.contains("monitoring"))
        let agent = agent
        try server.run {
            let a = agent.value
            a.connection.emitSignal(
                path: StandInAgent.path, interface: StandInAgent.interface, name: "SyncStarted",
                arguments: [.string("org.example.App"), .string("outbox"), .uint32(2), .bool(true)])
            a.connection.emitSignal(
                path: StandInAgent.path, interface: StandInAgent.interface, name: "SyncFinished",
                arguments: [.string("org.example.App"), .string("outbox"), .string("success"), .string("")])
            a.object.propertiesChanged(interface: StandInAgent.interface, names: ["Online"])
        }
        let output = monitor.collect(timeout: 10) { $0.split(separator: "\n").count >= 3 }
        let lines = output.split(separator: "\n").map(String.init)
        try #require(lines.count == 3, "\(output)")
        #expect(lines[0] == "SyncStarted   org.example.App outbox attempt=2 last-chance")
        #expect(lines[1] == "SyncFinished  org.example.App outbox success")
        #expect(lines[2] == "Changed       Online=yes")
        monitor.signal(SIGTERM)
        #expect(monitor.wait() == 0)
    }
}

extension BGSyncCtlTests {
    @Test func monitorJSONLinesForScripts() throws {
        try #require(FileManager.default.isExecutableFile(atPath: binary))
        let monitor = try ChildProcess([binary, "monitor", "--json", "--address", bus.address])
        defer { monitor.kill() }
        try #require(monitor.collect(stderr: true, timeout: 10) { $0.contains("monitoring") }.contains("monitoring"))
        let agent = agent
        try server.run {
            agent.value.connection.emitSignal(
                path: StandInAgent.path, interface: StandInAgent.interface, name: "SyncFinished",
                arguments: [.string("org.example.App"), .string("outbox"), .string("failure"), .string("HTTP 503")])
        }
        let line = monitor.collect(timeout: 10) { $0.hasSuffix("\n") }
        #expect(
            line == "{\"signal\":\"SyncFinished\",\"app_id\":\"org.example.App\",\"tag\":\"outbox\","
                + "\"outcome\":\"failure\",\"detail\":\"HTTP 503\"}\n")
    }
}
