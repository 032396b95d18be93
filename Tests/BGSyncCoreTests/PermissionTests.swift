// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import BGSyncValue
import Testing

import struct Foundation.Date

@Suite("The user decides: apps switched off are held, and what each app did")
struct PermissionTests {
    static let chat = "org.example.Chat"

    /// A harness whose scheduler follows a fake permission store, as the agent wires the real one.
    static func harness(
        network: NetworkStatus = .online, denied: Set<String> = [], store: MemoryStore? = nil,
        now: Date = Date(timeIntervalSince1970: 1_700_000_000)
    ) throws -> (Harness, FakePermissions) {
        let permissions = FakePermissions(denied: denied)
        let h = try Harness(network: network, now: now, denied: permissions.denied, store: store)
        permissions.onChange = { [scheduler = h.scheduler] in scheduler.permissionsChanged($0) }
        return (h, permissions)
    }

    /// The code of the SyncError `body` throws, nil when it throws none.
    static func code(_ body: () throws -> Void) -> SyncError.Code? {
        do {
            try body()
            return nil
        } catch let error as SyncError {
            return error.code
        } catch {
            return nil
        }
    }

    @Test func aSwitchedOffAppMayNotRegisterOrTrigger() throws {
        let (h, permissions) = try Self.harness()
        try h.register()
        h.dispatcher.finishLast(.retry(after: nil, detail: "server down"))  // now backing off
        permissions.deny(Self.chat)
        #expect(Self.code { try h.register("other") } == .notAllowed)
        #expect(Self.code { try h.registerPeriodic(every: 3600) } == .notAllowed)
        #expect(Self.code { try h.scheduler.trigger(appID: Self.chat, tag: "outbox") } == .notAllowed)
        #expect(h.scheduler.tags(appID: Self.chat, kind: .oneOff) == ["outbox"])
        // Another app is untouched.
        try h.register("outbox", app: "org.example.Mail")
        #expect(h.events.last?.key.appID == "org.example.Mail")
    }

    @Test func heldRegistrationsDoNotRunNorSpendAttemptsAndRunAtOnceWhenSwitchedOn() throws {
        let (h, permissions) = try Self.harness(network: .offline)
        try h.register()
        permissions.deny(Self.chat)
        h.goOnline()
        #expect(h.events.isEmpty, "a switched-off app's sync started")
        h.clock.advance(by: 7 * 24 * 3600)
        #expect(h.events.isEmpty)
        #expect(h.scheduler.registration(h.key())?.attempts == 0)
        #expect(h.state() == .pending)
        permissions.allow(Self.chat)
        #expect(h.events.count == 1, "switched on again, the due sync did not run at once")
        #expect(h.events.first?.attempt == 1)
    }

    @Test func aSyncRunningWhenSwitchedOffFinishesAndTheNextOneIsHeld() throws {
        let (h, permissions) = try Self.harness()
        try h.registerPeriodic(every: 900)
        h.clock.advance(by: 900)
        let running = try #require(h.events.first)
        permissions.deny(Self.chat)
        #expect(h.dispatcher.cancelled.isEmpty, "switching off stopped the running sync")
        h.dispatcher.finish(running.id, .success(detail: "done"))
        #expect(h.outcomes == [.succeeded])
        h.clock.advance(by: 3 * 900)
        #expect(h.events.count == 1, "the next periodic sync ran while switched off")
        #expect(h.scheduler.registration(h.key("news", kind: .periodic))?.attempts == 0)
        permissions.allow(Self.chat)
        #expect(h.events.count == 2)
    }

    @Test func expiresAfterStillCountsWhileHeld() throws {
        let (h, permissions) = try Self.harness(network: .offline)
        try h.register(options: ["expires-after": .uint32(60)])
        permissions.deny(Self.chat)
        h.goOnline()
        h.clock.advance(by: 61)
        #expect(h.outcomes == [.expired])
        #expect(h.scheduler.registration(h.key()) == nil)
        permissions.allow(Self.chat)
        #expect(h.events.isEmpty)
    }

    @Test func aSwitchedOffAppTakesNoSlotFromOthers() throws {
        var settings = SyncSettings()
        settings.concurrentEvents = 1
        let stored = Registration(
            key: RegistrationKey(appID: Self.chat, tag: "a", kind: .oneOff), handler: "upload", maxAttempts: 3,
            sequence: 1)
        let h = try Harness(settings: settings, network: .online, stored: [stored], denied: [Self.chat])
        #expect(h.events.isEmpty)
        try h.register("b", app: "org.example.Mail")
        #expect(h.events.map(\.key.appID) == ["org.example.Mail"])
    }

    @Test func allowedAtStartMeansNothingIsHeld() throws {
        let (h, _) = try Self.harness()
        try h.register()
        #expect(h.events.count == 1)
        #expect(h.scheduler.isAllowed(Self.chat))
    }

    // MARK: - ListApps' figures

    @Test func summariesCountRegistrationsWaitingRunningAndBytes() throws {
        let (h, permissions) = try Self.harness()
        try h.register("a")
        try h.register("b")
        try h.registerPeriodic(every: 3600)
        h.dispatcher.finish(
            h.events[0].id, HandlerOutcome(.success(detail: "sent"), bytesSent: 1200, bytesReceived: 300))
        var summary = try #require(h.scheduler.appSummaries()[Self.chat])
        #expect(summary.registrations == 2)  // "a" is done
        #expect(summary.running == 1)  // "b"
        #expect(summary.waiting == 1)  // the periodic one
        #expect(summary.allowed)
        #expect(summary.bytesSent == 1200 && summary.bytesReceived == 300)
        #expect(summary.lastOutcome == "succeeded")
        #expect(summary.lastSync == h.clock.now())
        h.clock.advance(by: 10)
        h.dispatcher.finishLast(HandlerOutcome(.retry(after: nil, detail: "down"), bytesSent: 5))
        permissions.deny(Self.chat)
        summary = try #require(h.scheduler.appSummary(Self.chat))
        #expect(summary.bytesSent == 1205)
        #expect(summary.lastOutcome == "retry-scheduled")
        #expect(summary.lastSync == h.clock.now())
        #expect(!summary.allowed)
        #expect(h.scheduler.appSummary("org.example.Nobody") == nil)
    }

    @Test func historySurvivesARestartAndOldDaysLeaveTheSums() throws {
        let store = MemoryStore()
        let start = Date(timeIntervalSince1970: 1_700_000_000)
        do {
            let (h, _) = try Self.harness(store: store, now: start)
            try h.register()
            h.dispatcher.finishLast(HandlerOutcome(.success(detail: "sent"), bytesSent: 1000, bytesReceived: 10))
        }
        // The same store, 10 days later: the figures are back.
        let later = start.addingTimeInterval(10 * 86_400)
        let (again, _) = try Self.harness(store: store, now: later)
        var summary = try #require(again.scheduler.appSummaries()[Self.chat])
        #expect(summary.registrations == 0)
        #expect(summary.bytesSent == 1000 && summary.bytesReceived == 10)
        #expect(summary.lastSync == start && summary.lastOutcome == "succeeded")
        try again.register()
        again.dispatcher.finishLast(HandlerOutcome(.success(detail: "sent"), bytesSent: 1))
        // 25 days after that the first day is out of the 30-day window, and pruned at start; the
        // latest day stays (the last sync), and its bytes still count.
        let (third, _) = try Self.harness(store: store, now: later.addingTimeInterval(25 * 86_400))
        summary = try #require(third.scheduler.appSummaries()[Self.chat])
        #expect(summary.bytesSent == 1)
        #expect(summary.lastSync == later)
        #expect(store.activity.count == 1)
    }

    @Test func anAgentRunningForMonthsKeepsOnlyTheWindow() throws {
        let (h, _) = try Self.harness()
        for _ in 0..<90 {
            try h.register()
            h.dispatcher.finishLast(HandlerOutcome(.success(detail: "sent"), bytesSent: 1))
            h.clock.advance(by: 86_400)
        }
        #expect(h.store.activity.count <= Int(AppActivity.window) + 1, "days before the window stay on disk")
        let summary = try #require(h.scheduler.appSummary(Self.chat))
        #expect(summary.bytesSent == UInt64(AppActivity.window) - 1, "the 29 days before today, none today")
    }

    @Test func byteCountsSaturateInsteadOfWrapping() throws {
        let (h, _) = try Self.harness()
        try h.register("a")
        try h.register("b")
        h.dispatcher.finishAll(HandlerOutcome(.success(detail: ""), bytesSent: .max, bytesReceived: .max))
        let summary = try #require(h.scheduler.appSummaries()[Self.chat])
        #expect(summary.bytesSent == .max && summary.bytesReceived == .max)
    }
}
