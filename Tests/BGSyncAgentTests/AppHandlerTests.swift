// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import DBusKit
import Foundation
import Logging
import MainLoop
import Synchronization
import TestKit
import Testing

@testable import BGSyncAgent
@testable import DBusKit

/// AppHandler on a private bus, with apps played by connections in this process: one that
/// answers on its own loop thread, one that owns the name and never reads (hung), one that leaves
/// mid-call. (Real apps started by bus activation: Tests/integration/test_app_handler.py.)
@Suite final class AppHandlerTests {
    static let app = "org.example.Chat"
    let bus: PrivateBus
    let loop = MainLoop()
    let agent: DBusConnection
    let handler: AppHandler

    init() throws {
        bus = try PrivateBus()
        agent = try DBusConnection(bus: .address(bus.address))
        agent.attach(to: loop)
        handler = AppHandler(connection: agent, loop: loop, logger: Logger(label: "test"))
    }

    deinit {
        agent.close()
        bus.kill()
    }

    func event(_ tag: String = "outbox", timeout: Double = 10, options: [String: Value] = [:]) -> SyncEvent {
        SyncEvent(
            id: 1, key: RegistrationKey(appID: Self.app, tag: tag, kind: .oneOff), handler: "app", options: options,
            attempt: 2, lastChance: false, deadline: Date().addingTimeInterval(timeout))
    }

    /// Dispatches `event` and runs the loop until it completes; returns the outcome and seconds taken.
    func run(_ event: SyncEvent, meanwhile: () -> Void = {}) throws -> (HandlerOutcome, Double) {
        var outcome: HandlerOutcome?
        let started = Date()
        handler.dispatch(event) { outcome = $0 }
        #expect(outcome == nil, "never completed inside dispatch")
        meanwhile()
        let deadline = Date().addingTimeInterval(15)
        while outcome == nil && Date() < deadline { _ = loop.iterate(timeout: 0.5) }
        let result = try #require(outcome)
        #expect(handler.runningCount == 0)
        return (result, Date().timeIntervalSince(started))
    }

    /// An app that answers `reply` on its own loop thread, recording what it got.
    final class AnsweringApp: @unchecked Sendable {
        let thread = LoopThread()
        let connection: Unchecked<DBusConnection>
        var calls: [DBusMethodCall] = []

        init(address: String, reply: @escaping @Sendable (DBusMethodCall) -> [Value]) throws {
            let loop = thread.loop
            let made = try thread.run { () throws -> DBusConnection in
                let connection = try DBusConnection(bus: .address(address))
                _ = try connection.requestName(AppHandlerTests.app)
                connection.attach(to: loop)
                return connection
            }
            connection = Unchecked(value: made)
            let object = DBusExportedObject(introspectionXML: "<node/>")
            object.addMethod(interface: "org.bgsync.App", name: "Sync", inSignature: "sa{sv}") { [unowned self] call in
                self.calls.append(call)
                return reply(call)
            }
            let box = Unchecked(value: object)
            try thread.run { made.export(box.value, at: "/org/example/Chat") }
        }

        func stop() {
            let connection = connection
            _ = try? thread.run { connection.value.close() }
            thread.stop()
        }
    }

    @Test func theAppGetsTheTagAndEventAndItsAnswerIsTheOutcome() throws {
        let app = try AnsweringApp(address: bus.address) { _ in
            [.string("retry"), .stringVariantDictionary([("detail", .string("later")), ("retry-after", .double(60))])]
        }
        defer { app.stop() }
        let (outcome, _) = try run(event(options: ["server": .string("https://x.example/")]))
        #expect(outcome == .retry(after: 60, detail: "later"))
        let call = try #require(app.calls.first)
        #expect(call.path == "/org/example/Chat" && call.arguments.first == .string("outbox"))
        let fields = call.arguments[1].stringKeyedDictionary ?? [:]
        #expect(
            fields["attempt"] == .variant(.uint32(2)) && fields["server"] == .variant(.string("https://x.example/")))
    }

    @Test func anAppThatDoesNotAnswerIsCutAtTheDeadline() throws {
        let hung = try DBusConnection(bus: .address(bus.address))  // owns the name, never reads
        defer { hung.close() }
        #expect(try hung.requestName(Self.app))
        let (outcome, seconds) = try run(event(timeout: 0.5))
        #expect(outcome == .retry(after: nil, detail: "timeout"))
        #expect(seconds >= 0.45)
    }

    @Test func anAppLeavingMidCallEndsTheAttemptAtOnce() throws {
        let leaving = try DBusConnection(bus: .address(bus.address))
        #expect(try leaving.requestName(Self.app))
        let (outcome, seconds) = try run(event(timeout: 30)) {
            agent.flush()  // the watch and the call are on the bus before the app goes
            _ = try? agent.call(
                destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus", method: "GetId")
            leaving.close()
        }
        #expect(outcome == AppContract.exited(appID: Self.app))
        #expect(seconds < 3, "ended when the app left, not at the 30 s cap")
    }

    @Test func anAppNobodyCanStartIsARetryNamingTheServiceFile() throws {
        let (outcome, _) = try run(event())
        #expect(outcome == .retry(after: nil, detail: AppContract.notActivatable(appID: Self.app)))
    }

    @Test func anEventPastItsDeadlineIsATimeoutWithoutACall() throws {
        let (outcome, _) = try run(event(timeout: -1))
        #expect(outcome == .retry(after: nil, detail: "timeout"))
    }

    /// Each registration of an app that is neither running nor activatable asks the bus twice
    /// (NameHasOwner, ListActivatableNames) and logs a warning. Once the answers are in, nothing
    /// of the calls stays on the connection, and the handler is freed when its owner lets go:
    /// what a registration leaves behind cannot pile up in a long-running agent.
    @Test func registrationsLeaveNoCallsAndNoHandlerBehind() throws {
        let lines = LogRecorder()
        var owner: AppHandler? = AppHandler(connection: agent, loop: loop, logger: lines.logger())
        weak let handler = owner
        let registrations = 50
        for n in 0..<registrations {
            owner?.registered(RegistrationKey(appID: Self.app, tag: "tag\(n)", kind: .oneOff))
        }
        let warning = "uses handler 'app', but"
        let deadline = Date().addingTimeInterval(15)
        while lines.count(warning) < registrations && Date() < deadline { _ = loop.iterate(timeout: 0.5) }
        #expect(lines.count(warning) == registrations)
        #expect(agent.pendingCalls.isEmpty, "\(agent.pendingCalls.count) calls still held by the connection")
        owner = nil
        #expect(handler == nil, "the handler outlived its owner")
    }
}
