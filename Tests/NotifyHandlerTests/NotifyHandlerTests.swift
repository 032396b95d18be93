// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import Foundation
import HandlerTestKit
import NotifyHandler
import Testing

/// Each test has its own private session bus (never the user's).
@Suite struct NotifyHandlerTests {
    /// Runs `body` with a private bus from notify_bus.py and a handler connected to it.
    private func withPrivateBus<T>(daemon: Bool, _ body: (ScriptProcess, NotifyHandler) throws -> T) throws -> T {
        let bus = try ScriptProcess("notify_bus.py", arguments: daemon ? [] : ["--no-daemon"])
        defer { bus.stop() }
        let address = try bus.readLine(timeout: 20)
        return try body(bus, NotifyHandler(sessionBusAddress: address))
    }

    @Test func showsTheNotificationThroughTheDaemon() throws {
        try withPrivateBus(daemon: true) { bus, handler in
            let result = handler.handle(
                event(["summary": "Messages sent", "body": "3 messages went out"]), log: .discard)
            #expect(result == .success("notification shown"))

            bus.writeLine("calls")
            let calls = try JSONSerialization.jsonObject(with: Data(try bus.readLine().utf8)) as? [[Any]]
            let call = try #require(calls?.first)
            #expect(calls?.count == 1)
            // app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout
            #expect(call[0] as? String == "org.example.App")
            #expect(call[3] as? String == "Messages sent")
            #expect(call[4] as? String == "3 messages went out")
            #expect((call[6] as? [String: Any])?["desktop-entry"] as? String == "org.example.App")
        }
    }

    @Test func noNotificationDaemonIsARetry() throws {
        try withPrivateBus(daemon: false) { _, handler in
            let result = handler.handle(event(["summary": "Hello"]), log: .discard)
            #expect(result == .retry(after: nil, "no notification daemon on the session bus"))
        }
    }

    @Test func missingSummaryFails() {
        guard case .failure(let detail) = NotifyHandler().handle(event(["body": "text"]), log: .discard) else {
            Issue.record("a notification without a summary must fail")
            return
        }
        #expect(detail.contains("'summary' is missing"))
    }
}
