// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import Foundation
import HandlerTestKit
import NotifyHandler
import TestKit
import Testing

/// Each test has its own private session bus from TestKit (never the user's).
@Suite struct NotifyHandlerTests {
    @Test func showsTheNotificationThroughTheDaemon() throws {
        let bus = try PrivateBus()
        let daemon = try NotificationDaemonMock(bus: bus)
        let result = NotifyHandler(sessionBusAddress: bus.address).handle(
            event(["summary": "Messages sent", "body": "3 messages went out"]), log: .discard)
        #expect(result == .success("notification shown"))

        let calls = try daemon.notifyCalls()
        let call = try #require(calls.first)
        #expect(calls.count == 1)
        // app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout
        try #require(call.count == 8)
        #expect(call[0].stringValue == "org.example.App")
        #expect(call[3].stringValue == "Messages sent")
        #expect(call[4].stringValue == "3 messages went out")
        #expect(call[6].stringKeyedDictionary?["desktop-entry"]?.stringValue == "org.example.App")
    }

    @Test func noNotificationDaemonIsARetry() throws {
        let bus = try PrivateBus()
        let result = NotifyHandler(sessionBusAddress: bus.address).handle(event(["summary": "Hello"]), log: .discard)
        #expect(result == .retry(after: nil, "no notification daemon on the session bus"))
    }

    @Test func missingSummaryFails() {
        guard case .failure(let detail) = NotifyHandler().handle(event(["body": "text"]), log: .discard) else {
            Issue.record("a notification without a summary must fail")
            return
        }
        #expect(detail.contains("'summary' is missing"))
    }
}

/// python-dbusmock's `notification_daemon` template on `bus` (given by its address), stopped
/// when this goes away.
final class NotificationDaemonMock {
    private static let name = "org.freedesktop.Notifications"
    private let bus: PrivateBus
    private let process: ChildProcess

    /// Starts the mock and waits until it owns org.freedesktop.Notifications (gdbus wait follows
    /// NameOwnerChanged: it returns as soon as the name is owned).
    init(bus: PrivateBus) throws {
        self.bus = bus
        let environment = ProcessInfo.processInfo.environment.merging(["DBUS_SESSION_BUS_ADDRESS": bus.address]) {
            $1
        }
        process = try ChildProcess(
            ["/usr/bin/python3", "-m", "dbusmock", "--template", "notification_daemon"], environment: environment,
            errors: .file(bus.directory + "/notification_daemon.log"))
        do {
            try runChecked(["gdbus", "wait", "--address", bus.address, "--timeout", "20", Self.name])
        } catch {
            process.kill()
            throw error
        }
    }

    deinit { process.kill() }

    /// The arguments of each Notify call the mock received, in order (its GetMethodCalls, a(tav)).
    func notifyCalls() throws -> [[Value]] {
        let text = try runChecked([
            "gdbus", "call", "--address", bus.address, "--dest", Self.name,
            "--object-path", "/org/freedesktop/Notifications",
            "--method", "org.freedesktop.DBus.Mock.GetMethodCalls", "Notify",
        ])
        let reply = try Value.parse(gvariantText: text.trimmingCharacters(in: .whitespacesAndNewlines), as: "(a(tav))")
        guard case .structure(let fields) = reply, let calls = fields.first?.arrayValue else {
            throw TestFailure("GetMethodCalls answered \(text)")
        }
        return try calls.map { call in
            guard case .structure(let parts) = call, parts.count == 2, let arguments = parts[1].arrayValue else {
                throw TestFailure("GetMethodCalls answered \(text)")
            }
            return arguments.map(\.unwrappingVariants)
        }
    }
}
