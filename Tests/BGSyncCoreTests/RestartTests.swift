// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import Foundation
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

    @Test("the quota counts what was stored: full after a restart, and a removal frees a place")
    func quotaAfterRestart() throws {
        var settings = SyncSettings()
        settings.registrationsPerApp = 3
        let first = try Harness(settings: settings)
        for tag in ["a", "b", "c"] { try first.register(tag) }
        try first.register("x", app: "org.example.Other")
        let second = try Harness(settings: settings, stored: Array(first.store.rows.values))
        #expect(throws: SyncError.self) { try second.register("d") }
        try second.register("y", app: "org.example.Other")
        _ = try second.scheduler.unregister(second.key("a"))
        try second.register("d")
        #expect(second.scheduler.tags(appID: "org.example.Chat", kind: .oneOff) == ["b", "c", "d"])
    }

    @Test("two stored rows that Swift's String sees as one (composed and decomposed text) are two registrations")
    func twoRowsTwoKeys() throws {
        var settings = SyncSettings()
        settings.registrationsPerApp = 3
        let first = try Harness(settings: settings)
        try first.register("caf\u{E9}")
        var twin = try #require(first.store.rows.values.first)
        twin.key.tag = "cafe\u{301}"  // the same tag to Swift's ==, other bytes to SQLite and to the spec
        twin.sequence += 1
        let second = try Harness(settings: settings, stored: Array(first.store.rows.values) + [twin])
        #expect(second.scheduler.count == 2)
        #expect(
            second.scheduler.tags(appID: "org.example.Chat", kind: .oneOff).map(ExactText.init)
                == ["caf\u{E9}", "cafe\u{301}"].map(ExactText.init))
        try second.register("other")  // both count for the quota: one place was left, not two
        #expect(throws: SyncError.self) { try second.register("third") }
    }
}

@Suite("PackedOptional: optional times in 8 bytes")
struct PackedOptionalTests {
    @Test("none, a date and a number read back exactly, compare and code as the optionals they stand for")
    func roundTrip() throws {
        var registration = Registration(
            key: RegistrationKey(appID: "org.example.Chat", tag: "t", kind: .periodic), handler: "upload",
            maxAttempts: 3, sequence: 1)
        #expect(registration.nextAttempt == nil && registration.minInterval == nil)
        let date = Date(timeIntervalSinceReferenceDate: 812_345_678.123_456_789)
        registration.nextAttempt = date
        registration.minInterval = 900.5
        #expect(registration.nextAttempt == date)
        #expect(registration.minInterval == 900.5)
        var other = registration
        #expect(other == registration)
        other.nextAttempt = nil
        #expect(other != registration)
        #expect(MemoryLayout<PackedOptional<Date>>.size == 8)

        let coded = try JSONDecoder().decode(Registration.self, from: JSONEncoder().encode(other))
        #expect(coded == other)
        #expect(String(decoding: try JSONEncoder().encode(other), as: UTF8.self).contains("\"nextAttempt\":null"))
    }
}
