// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Testing

/// Event slots (`concurrent-events`) shared between apps, on the pure scheduler with the test
/// clock: no app can hold them all against another, however long its events run.
struct FairShareTests {
    static let a = "org.example.A"
    static let b = "org.example.B"
    static let c = "org.example.C"

    func harness(slots: Int) throws -> Harness {
        var settings = SyncSettings()
        settings.concurrentEvents = slots
        settings.eventTimeout = 3600
        return try Harness(settings: settings, network: .online)
    }

    func running(_ h: Harness, _ app: String) -> Int {
        let ids = Set(h.dispatcher.runningIDs)
        return h.events.filter { ids.contains($0.id) && $0.key.appID == app }.count
    }

    @Test func aNewAppStartsAtOnceWhileAnotherAppsEventsHang() throws {
        let h = try harness(slots: 4)
        for n in 0..<4 { try h.register("slow\(n)", app: Self.a) }  // as many as there are slots
        #expect(running(h, Self.a) == 3, "one slot stays free for another app")
        try h.register("quick", app: Self.b)
        #expect(running(h, Self.b) == 1, "B's event starts without waiting for A's to end")
        #expect(h.scheduler.runningCount == 4)
    }

    @Test func whileOthersHaveWorkAnAppGetsNoMoreThanItsShare() throws {
        let h = try harness(slots: 4)
        for n in 0..<6 { try h.register("a\(n)", app: Self.a) }
        for n in 0..<6 { try h.register("b\(n)", app: Self.b) }
        #expect(running(h, Self.a) == 3 && running(h, Self.b) == 1)
        finishOne(h, of: Self.a)
        #expect(running(h, Self.a) == 2 && running(h, Self.b) == 1, "the free slot is kept: both have one running")
        finishOne(h, of: Self.a)
        #expect(running(h, Self.a) + running(h, Self.b) == 3)
        #expect(running(h, Self.a) <= 2 && running(h, Self.b) <= 2, "each at most its share, 4 / 2")
        // A third app gets the kept slot at once.
        try h.register("c0", app: Self.c)
        #expect(running(h, Self.c) == 1)
        #expect(h.scheduler.runningCount == 4)
        // Shares are now 4 / 3 = 1: whoever holds two gets no new slot as its events end.
        let twice = running(h, Self.a) == 2 ? Self.a : Self.b
        finishOne(h, of: twice)
        finishOne(h, of: twice)
        #expect(running(h, twice) <= 1)
    }

    func finishOne(_ h: Harness, of app: String) {
        let ids = Set(h.dispatcher.runningIDs)
        guard let event = h.events.first(where: { ids.contains($0.id) && $0.key.appID == app }) else {
            Issue.record("\(app) has nothing running")
            return
        }
        h.dispatcher.finish(event.id, .success(detail: ""))
    }

    @Test func appsTakeTurnsInsteadOfFirstComeFirstServed() throws {
        let h = try harness(slots: 2)
        for n in 0..<50 { try h.register("flood\(n)", app: Self.a) }
        try h.register("one", app: Self.b)
        // With one slot each, B's single sync runs among the first, not after A's fifty.
        let positionOfB = try #require(h.events.firstIndex { $0.key.appID == Self.b })
        #expect(positionOfB <= 1)
    }

    @Test func aloneAnAppUsesEverySlotButOne() throws {
        let h = try harness(slots: 4)
        for n in 0..<8 { try h.register("t\(n)", app: Self.a) }
        #expect(h.scheduler.runningCount == 3)
        let one = try harness(slots: 1)
        for n in 0..<3 { try one.register("t\(n)", app: Self.a) }
        #expect(one.scheduler.runningCount == 1, "with one slot, the app takes it")
    }

    @Test func theRule() {
        #expect(FairShare.share(slots: 4, activeApps: 1) == 4)
        #expect(FairShare.share(slots: 4, activeApps: 2) == 2)
        #expect(FairShare.share(slots: 4, activeApps: 3) == 1)
        #expect(FairShare.share(slots: 4, activeApps: 9) == 1)
        #expect(FairShare.mayStart(held: 0, share: 1, free: 1))
        #expect(!FairShare.mayStart(held: 1, share: 4, free: 1), "the last slot is for an app with none")
        #expect(FairShare.mayStart(held: 1, share: 4, free: 2))
        #expect(!FairShare.mayStart(held: 2, share: 2, free: 2))
        #expect(!FairShare.mayStart(held: 0, share: 1, free: 0))
    }
}
