// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import BGSyncWire
import BGSyncWorkers
import Foundation
import Testing

/// The core's event and outcomes as the worker protocol carries them (times as Unix seconds).
@Suite struct WireMappingTests {
    @Test("an event keeps its key, options, attempt, times and confinement root")
    func event() {
        let deadline = Date(timeIntervalSince1970: 1_790_000_000.5)
        let event = SyncEvent(
            id: 9, key: RegistrationKey(appID: "org.example.Chat", tag: "news", kind: .periodic), handler: "upload",
            options: ["outbox": .string("/o")], attempt: 2, lastChance: true, deadline: deadline,
            confinement: .sandboxed(
                kind: .flatpak, appID: "org.example.Chat", root: "/home/u/.var/app/org.example.Chat"),
            stallTimeout: 60, ceiling: deadline.addingTimeInterval(3600))
        let wire = WireEvent(event)
        #expect(wire.id == 9 && wire.appID == "org.example.Chat" && wire.tag == "news" && wire.periodic)
        #expect(wire.options == ["outbox": .string("/o")] && wire.attempt == 2 && wire.lastChance)
        #expect(wire.deadline == 1_790_000_000.5 && wire.ceiling == 1_790_003_600.5 && wire.stallTimeout == 60)
        #expect(wire.root == "/home/u/.var/app/org.example.Chat")
        // The worker moves the deadline after progress by the core's own rule.
        let progressAt = deadline.addingTimeInterval(-30)
        #expect(
            wire.deadline(afterProgressAt: progressAt.timeIntervalSince1970)
                == event.deadline(afterProgressAt: progressAt).timeIntervalSince1970)
        var unconfined = event
        unconfined.confinement = .unconfined
        unconfined.stallTimeout = nil
        unconfined.ceiling = nil
        #expect(WireEvent(unconfined).root == nil && WireEvent(unconfined).ceiling == nil)
    }

    @Test(
        "each outcome maps to the core's",
        arguments: [
            (WireOutcome.success(detail: "sent"), HandlerOutcome.success(detail: "sent")),
            (.retry(after: 30, detail: "HTTP 503"), .retry(after: 30, detail: "HTTP 503")),
            (.retry(after: nil, detail: "timeout"), .retry(after: nil, detail: "timeout")),
            (.failure(detail: "HTTP 404"), .failure(detail: "HTTP 404")),
        ])
    func outcome(wire: WireOutcome, core: HandlerOutcome) {
        #expect(HandlerOutcome(wire) == core)
    }
}
