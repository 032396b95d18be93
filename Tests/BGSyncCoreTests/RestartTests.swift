// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import Testing

@Suite("What survives a restart")
struct RestartTests {
    @Test func firingRegistrationsComeBackPendingWithoutCountingAnAttempt() throws {
        let first = try Harness(network: .online)
        try first.register()
        first.dispatcher.finishLast(.retry(after: nil, detail: ""))
        first.clock.advance(by: 300)
        #expect(first.state() == .firing)
        // The agent dies here. A new one starts on the same store, offline.
        let second = try Harness(stored: Array(first.store.rows.values), now: first.clock.now())
        #expect(second.state() == .pending)
        #expect(second.scheduler.registration(second.key())?.attempts == 1)
        second.goOnline()
        #expect(second.events.first?.attempt == 2)
    }

    @Test func waitingKeepsItsWallClockDueTime() throws {
        let first = try Harness(network: .online)
        try first.register()
        first.dispatcher.finishLast(.retry(after: nil, detail: ""))
        let due = try #require(first.scheduler.registration(first.key())?.nextAttempt)
        let second = try Harness(network: .online, stored: Array(first.store.rows.values))
        #expect(second.state() == .waiting)
        #expect(second.clock.armed == due)
        second.clock.advance(by: 300)
        #expect(second.events.count == 1)
    }

    @Test func registrationOrderAndNewTagsAfterRestart() throws {
        let first = try Harness()
        for tag in ["c", "a", "b"] { try first.register(tag) }
        let second = try Harness(stored: Array(first.store.rows.values))
        try second.register("d")
        #expect(second.scheduler.tags(appID: "org.example.Chat", kind: .oneOff) == ["c", "a", "b", "d"])
    }

    @Test func firingIsNotWrittenToDisk() throws {
        let h = try Harness()
        for n in 0..<10 { try h.register("t\(n)") }
        let writes = h.store.writes
        h.goOnline()
        #expect(h.events.count == 3, "4 slots, one kept for another app")
        #expect(h.store.writes == writes, "starting an event costs no write")
    }

    @Test func callersWaitForTheDiskAndOutcomesDoNot() throws {
        let h = try Harness(network: .online)
        try h.register("a")
        try h.register("b")
        #expect(h.store.urgencies == [.acknowledged, .acknowledged])
        h.dispatcher.finishAll(.success(detail: ""))
        #expect(h.store.urgencies == [.acknowledged, .acknowledged, .background, .background])
        _ = try h.scheduler.unregister(h.key("none"))
        try h.register("c")
        _ = try h.scheduler.unregister(h.key("c"))
        #expect(h.store.urgencies.suffix(2) == [.acknowledged, .acknowledged])
    }
}
