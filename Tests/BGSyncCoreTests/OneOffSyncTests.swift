// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Testing

@Suite("One-off sync semantics")
struct OneOffSyncTests {
    @Test func registeringOfflineWaitsAndFiresOnceOnline() throws {
        let h = try Harness()
        try h.register()
        #expect(h.state() == .pending)
        #expect(h.events.isEmpty)
        h.goOnline()
        #expect(h.events.count == 1)
        #expect(h.events[0].attempt == 1)
        #expect(h.state() == .firing)
        h.dispatcher.finishLast(.success(detail: "sent"))
        #expect(h.outcomes == [.succeeded])
        #expect(h.scheduler.registration(h.key()) == nil)
        #expect(h.store.rows.isEmpty)
    }

    @Test func registeringOnlineFiresAtOnce() throws {
        let h = try Harness(network: .online)
        try h.register()
        #expect(h.events.count == 1)
    }

    @Test func fiveRegistrationsOfATagCoalesceIntoOneSyncWithTheNewestOptions() throws {
        let h = try Harness()
        for n in 1...5 { try h.register(options: ["message": .int32(Int32(n))]) }
        #expect(h.scheduler.tags(appID: "org.example.Chat", kind: .oneOff) == ["outbox"])
        h.goOnline()
        #expect(h.events.count == 1)
        #expect(h.events[0].options["message"] == .int32(5))
    }

    @Test func registeringDuringBackoffFiresNow() throws {
        let h = try Harness(network: .online)
        try h.register()
        h.dispatcher.finishLast(.retry(after: nil, detail: "HTTP 503"))
        #expect(h.state() == .waiting)
        try h.register()
        #expect(h.events.count == 2)
        #expect(h.events[1].attempt == 2, "re-registering does not forget failed attempts")
    }

    @Test func reregisteringWhileFiringRunsAgainAfterwardsWithAttemptsReset() throws {
        let h = try Harness(network: .online)
        try h.register(options: ["v": .string("first")])
        h.dispatcher.finishLast(.retry(after: nil, detail: "x"))
        h.clock.advance(by: 300)
        #expect(h.events.count == 2)
        try h.register(options: ["v": .string("second")])
        #expect(h.state() == .reregisteredWhileFiring)
        h.dispatcher.finishLast(.success(detail: "ok"))
        #expect(h.outcomes == [.retryScheduled, .succeeded])
        #expect(h.events.count == 3, "fires again at once, as online")
        #expect(h.events[2].attempt == 1)
        #expect(h.events[2].options["v"] == .string("second"))
    }

    @Test func theBackoffSequenceAndLastChanceFollowTheDefaults() throws {
        let h = try Harness(network: .online)
        try h.register()
        #expect(h.events[0].lastChance == false)
        h.dispatcher.finishLast(.retry(after: nil, detail: "one"))
        #expect(h.wait() == 300)
        h.clock.advance(by: 299.9)
        #expect(h.events.count == 1)
        h.clock.advance(by: 0.1)
        #expect(h.events.count == 2)
        #expect(h.events[1].attempt == 2 && !h.events[1].lastChance)
        h.dispatcher.finishLast(.retry(after: nil, detail: "two"))
        #expect(h.wait() == 900)
        #expect(h.scheduler.registration(h.key())?.lastError == "two")
        h.clock.advance(by: 900)
        #expect(h.events[2].attempt == 3 && h.events[2].lastChance)
        h.dispatcher.finishLast(.retry(after: nil, detail: "three"))
        #expect(h.outcomes == [.retryScheduled, .retryScheduled, .failed])
        #expect(h.scheduler.registration(h.key()) == nil)
        #expect(h.store.rows.isEmpty)
    }

    @Test func configuredBackoffGrowsByTheFactor() throws {
        var settings = SyncSettings()
        settings.maxAttempts = 6
        settings.retryInitialDelay = 0.2
        settings.retryFactor = 2
        let h = try Harness(settings: settings, network: .online)
        try h.register()
        var waits: [Double] = []
        for _ in 1..<6 {
            h.dispatcher.finishLast(.retry(after: nil, detail: ""))
            waits.append(try #require(h.wait()))
            h.clock.advance(by: waits.last!)
        }
        #expect(waits.map { ($0 * 1000).rounded() / 1000 } == [0.2, 0.4, 0.8, 1.6, 3.2])
        #expect(h.events.last?.lastChance == true)
    }

    @Test func jitterStaysWithinItsFraction() throws {
        var settings = SyncSettings()
        settings.retryJitter = 0.1
        for (random, expected) in [(0.0, 270.0), (0.5, 300.0), (0.999_999, 330.0)] {
            let h = try Harness(settings: settings, network: .online, random: { random })
            try h.register()
            h.dispatcher.finishLast(.retry(after: nil, detail: ""))
            #expect(abs(try #require(h.wait()) - expected) < 0.01)
        }
    }

    @Test func aRetryAfterHintLengthensTheWaitButNeverShortensIt() throws {
        let h = try Harness(network: .online)
        try h.register()
        h.dispatcher.finishLast(.retry(after: 3600, detail: "HTTP 429"))
        #expect(h.wait() == 3600)
        h.clock.advance(by: 3600)
        h.dispatcher.finishLast(.retry(after: 5, detail: "HTTP 429"))
        #expect(h.wait() == 900)
    }

    @Test func aPermanentFailureRemovesTheRegistration() throws {
        let h = try Harness(network: .online)
        try h.register()
        h.dispatcher.finishLast(.failure(detail: "HTTP 400"))
        #expect(h.observer.finished.last == .init(key: h.key(), outcome: .failed, detail: "HTTP 400"))
        #expect(h.scheduler.registration(h.key()) == nil)
    }

    @Test func unregisteringPendingOrWaitingRemovesIt() throws {
        let h = try Harness()
        try h.register()
        #expect(try h.scheduler.unregister(h.key()) == true)
        #expect(try h.scheduler.unregister(h.key()) == false)
        h.goOnline()
        #expect(h.events.isEmpty)
    }

    @Test func unregisteringWhileFiringCancelsWithoutRetry() throws {
        let h = try Harness(network: .online)
        try h.register()
        #expect(try h.scheduler.unregister(h.key()))
        #expect(h.scheduler.tags(appID: "org.example.Chat", kind: .oneOff).isEmpty)
        h.dispatcher.finishLast(.retry(after: nil, detail: "HTTP 503"))
        #expect(h.outcomes == [.cancelled])
        h.clock.advance(by: 86400)
        #expect(h.events.count == 1)
    }

    @Test func aTagRegisteredAgainAfterUnregisterWaitsForTheOldEventToEnd() throws {
        let h = try Harness(network: .online)
        try h.register()
        _ = try h.scheduler.unregister(h.key())
        try h.register()
        #expect(h.events.count == 1, "one event at a time per registration")
        h.dispatcher.finishLast(.success(detail: ""))
        #expect(h.outcomes == [.cancelled])
        #expect(h.events.count == 2)
    }

    @Test func losingTheNetworkBeforeDispatchKeepsItPendingWithoutUsingAnAttempt() throws {
        var settings = SyncSettings()
        settings.concurrentEvents = 1
        let h = try Harness(settings: settings, network: .online)
        try h.register("a")
        try h.register("b")
        #expect(h.events.map(\.key.tag) == ["a"])
        h.goOffline()
        h.dispatcher.finishLast(.retry(after: nil, detail: ""))
        #expect(h.events.count == 1, "going offline starts nothing new")
        #expect(h.state("b") == .pending)
        #expect(h.scheduler.registration(h.key("b"))?.attempts == 0)
        h.goOnline()
        #expect(h.events.map(\.key.tag) == ["a", "b"])
        #expect(h.events[1].attempt == 1)
    }

    @Test func concurrencyIsBoundedAndTheRestFollowInOrder() throws {
        var settings = SyncSettings()
        settings.concurrentEvents = 3
        let h = try Harness(settings: settings)
        for tag in ["a", "b", "c", "d"] { try h.register(tag) }
        h.goOnline()
        // One app alone gets all slots but one, which is kept for another app (FairShareTests).
        #expect(h.events.map(\.key.tag) == ["a", "b"])
        h.dispatcher.finishAll(.success(detail: ""))
        #expect(h.events.map(\.key.tag) == ["a", "b", "c", "d"])
    }

    @Test func unmeteredRegistrationsWaitForAnUnmeteredNetwork() throws {
        let h = try Harness()
        try h.register("big", options: ["network": .string("unmetered")])
        try h.register("small")
        h.goOnline(metered: true)
        #expect(h.events.map(\.key.tag) == ["small"])
        #expect(h.events[0].options["network"] == nil, "reserved keys are not passed on")
        h.goOnline(metered: false)
        #expect(h.events.map(\.key.tag) == ["small", "big"])
    }

    @Test func triggerSkipsTheBackoffButNotTheNetwork() throws {
        let h = try Harness(network: .online)
        try h.register()
        h.dispatcher.finishLast(.retry(after: nil, detail: ""))
        h.goOffline()
        try h.scheduler.trigger(appID: "org.example.Chat", tag: "outbox")
        #expect(h.state() == .pending)
        #expect(h.events.count == 1)
        h.goOnline()
        #expect(h.events.count == 2)
        #expect(throws: SyncError.self) { try h.scheduler.trigger(appID: "org.example.Chat", tag: "nope") }
    }

    @Test func maxAttemptsOptionOverridesTheDefault() throws {
        let h = try Harness(network: .online)
        try h.register(options: ["max-attempts": .uint32(1)])
        #expect(h.events[0].lastChance)
        h.dispatcher.finishLast(.retry(after: nil, detail: ""))
        #expect(h.outcomes == [.failed])
    }

    @Test func retriesThatMovedTheWorkForwardAreNotSpent() throws {
        let h = try Harness(network: .online)
        try h.register()  // the default: 3 attempts
        // Ten attempts in a row that each moved forward (a big resumable upload cut ten times):
        // none is spent, and each next one is attempt 1 again, never the last chance.
        for round in 0..<10 {
            h.dispatcher.finishLast(.retry(after: nil, detail: "cut at \(round)", advanced: true))
            #expect(h.events.last?.lastChance == false)
            h.clock.advance(by: try #require(h.wait()))
            #expect(h.events.last?.attempt == 1)
        }
        #expect(h.outcomes == Array(repeating: .retryScheduled, count: 10))
        // Then attempts that move nothing count as always: three of them and it fails.
        h.dispatcher.finishLast(.retry(after: nil, detail: "down"))
        h.clock.advance(by: try #require(h.wait()))
        h.dispatcher.finishLast(.retry(after: nil, detail: "down"))
        h.clock.advance(by: try #require(h.wait()))
        #expect(h.events.last?.attempt == 3 && h.events.last?.lastChance == true)
        h.dispatcher.finishLast(.retry(after: nil, detail: "down"))
        #expect(h.outcomes.last == .failed)
        #expect(h.scheduler.registration(h.key()) == nil)
    }

    @Test func nothingDueMeansNoWakeups() throws {
        let h = try Harness()
        for n in 0..<50 { try h.register("t\(n)") }
        h.clock.advance(by: 365 * 86400)
        #expect(h.clock.wakeups == 0)
        #expect(h.clock.armed == nil)
    }

    @Test func oneTimerForTheEarliestDueTime() throws {
        let h = try Harness(network: .online)
        try h.register("a")
        h.dispatcher.finishLast(.retry(after: 1000, detail: ""))
        try h.register("b")
        h.dispatcher.finishLast(.retry(after: 10, detail: ""))
        #expect(h.clock.armed == h.clock.now().addingTimeInterval(300))
        h.clock.advance(by: 300)
        #expect(h.events.map(\.key.tag) == ["a", "b", "b"])
        #expect(h.clock.wakeups == 1)
    }
}
