// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import DBusKit
import Testing

import struct Foundation.Date

@testable import BGSyncAgent

/// Every answer an app may give to org.bgsync.App.Sync, and what it becomes. (The same with real
/// apps started by a real bus: Tests/integration/test_app_handler.py.)
struct AppContractTests {
    let app = "org.example.Chat"

    private func reply(_ outcome: String, _ result: [(String, Value)] = []) -> HandlerOutcome {
        AppContract.outcome(ofReply: [.string(outcome), .stringVariantDictionary(result)], appID: app)
    }

    @Test func theThreeOutcomesWithTheirDetailAndHint() {
        #expect(reply("success", [("detail", .string("sent 2"))]) == .success(detail: "sent 2"))
        #expect(reply("retry", [("retry-after", .double(30))]) == .retry(after: 30, detail: ""))
        #expect(reply("failure", [("detail", .string("gone")), ("x-later", .int32(1))]) == .failure(detail: "gone"))
    }

    @Test func badAnswersFailSayingWhatWasWrong() {
        #expect(
            reply("Success")
                == .failure(
                    detail:
                        "\(app) answered Sync with the unknown outcome 'Success' (expected success, retry or failure)"))
        #expect(reply("retry", [("retry-after", .string("30"))]).detail.contains("'retry-after'"))
        #expect(reply("retry", [("retry-after", .double(-1))]).detail.contains("'retry-after'"))
        #expect(reply("retry", [("retry-after", .double(.nan))]).detail.contains("'retry-after'"))
        #expect(reply("success", [("detail", .uint32(3))]).detail.contains("'detail' of type u"))
        #expect(
            AppContract.outcome(ofReply: [.string("success")], appID: app)
                == .failure(detail: "\(app) answered Sync with (s), not (sa{sv})"))
    }

    @Test func detailsFromAppsAreBoundedAndControlCharactersEscaped() {
        let long = String(repeating: "é", count: 2000)
        let detail = reply("failure", [("detail", .string(long + "\n"))]).detail
        #expect(detail.utf8.count <= AppContract.maxDetailBytes + 3)
        #expect(detail.hasSuffix("…"))
        #expect(reply("failure", [("detail", .string("a\nb\u{1b}[31mc"))]).detail == "a\\u{a}b\\u{1b}[31mc")
    }

    @Test func errorsBecomeRetriesOrFailuresByWhatTheyMean() {
        func outcome(_ name: String, from sender: String = ":1.9") -> HandlerOutcome {
            AppContract.outcome(
                ofError: DBusError(name: name, message: "m"), from: sender, appID: app, path: "/org/example/Chat")
        }
        #expect(outcome("org.freedesktop.DBus.Error.NoReply", from: "") == .retry(after: nil, detail: "timeout"))
        #expect(
            outcome("org.freedesktop.DBus.Error.NoReply", from: "org.freedesktop.DBus")
                == AppContract.exited(appID: app))
        #expect(
            outcome("org.freedesktop.DBus.Error.ServiceUnknown", from: "org.freedesktop.DBus")
                == .retry(after: nil, detail: AppContract.notActivatable(appID: app)))
        #expect(AppContract.notActivatable(appID: app).contains("no service file org.example.Chat.service"))
        if case .retry(_, let detail, _) = outcome("org.freedesktop.DBus.Error.Spawn.ChildExited").kind {
            #expect(detail.contains("could not start"))
        } else {
            Issue.record("a failed start is worth a retry")
        }
        if case .failure(let detail) = outcome("org.freedesktop.DBus.Error.UnknownMethod").kind {
            #expect(detail == "\(app) does not implement org.bgsync.App.Sync at /org/example/Chat (UnknownMethod)")
        } else {
            Issue.record("an app without the interface is a failure")
        }
        if case .retry(_, let detail, _) = outcome("org.example.Chat.Error.Oops").kind {
            #expect(detail == "\(app) answered Sync with the error org.example.Chat.Error.Oops: m")
        } else {
            Issue.record("an exception in the app is a retry, as a crash is")
        }
    }

    @Test func theEventCarriesTheOptionsAndTheAgentsKeysWin() {
        let event = SyncEvent(
            id: 1, key: RegistrationKey(appID: app, tag: "outbox", kind: .periodic), handler: "app",
            options: ["server": .string("https://x.example/"), "attempt": .string("spoofed")], attempt: 2,
            lastChance: true, deadline: Date(timeIntervalSince1970: 1_700_000_000.5))
        let arguments = AppContract.arguments(for: event)
        #expect(arguments.first == .string("outbox"))
        let fields = arguments[1].stringKeyedDictionary ?? [:]
        #expect(arguments[1].signature == "a{sv}")
        #expect(fields["attempt"] == .variant(.uint32(2)))
        #expect(fields["last-chance"] == .variant(.bool(true)))
        #expect(fields["periodic"] == .variant(.bool(true)))
        #expect(fields["deadline"] == .variant(.int64(1_700_000_000_500_000)))
        #expect(fields["server"] == .variant(.string("https://x.example/")))
    }
}
