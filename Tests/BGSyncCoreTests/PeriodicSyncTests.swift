// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Testing

@Suite("Periodic sync semantics")
struct PeriodicSyncTests {
    @Test func neverFiresAtRegistrationAndFiresOnceTheIntervalPassed() throws {
        let h = try Harness(network: .online)
        try h.registerPeriodic(every: 3600)
        #expect(h.events.isEmpty)
        #expect(h.state("news", kind: .periodic) == .waiting)
        h.clock.advance(by: 3599)
        #expect(h.events.isEmpty)
        h.clock.advance(by: 1)
        #expect(h.events.count == 1)
        h.dispatcher.finishLast(.success(detail: ""))
        #expect(h.wait("news", kind: .periodic) == 3600)
        h.clock.advance(by: 3600)
        #expect(h.events.count == 2)
    }

    @Test func aDueSyncWaitsForTheNetwork() throws {
        let h = try Harness()
        try h.registerPeriodic(every: 3600)
        h.clock.advance(by: 7200)
        #expect(h.state("news", kind: .periodic) == .pending)
        #expect(h.events.isEmpty)
        h.goOnline()
        #expect(h.events.count == 1)
    }

    @Test func theIntervalIsClampedToTheConfiguredFloor() throws {
        let h = try Harness(network: .online)
        try h.registerPeriodic(every: 60)
        #expect(h.scheduler.registration(h.key("news", kind: .periodic))?.minInterval == 900)
        h.clock.advance(by: 899)
        #expect(h.events.isEmpty)
        h.clock.advance(by: 1)
        #expect(h.events.count == 1)
    }

    @Test func failuresBackOffThenWaitForTheNextInterval() throws {
        let h = try Harness(network: .online)
        try h.registerPeriodic(every: 86400)
        h.clock.advance(by: 86400)
        h.dispatcher.finishLast(.retry(after: nil, detail: "a"))
        #expect(h.wait("news", kind: .periodic) == 300)
        h.clock.advance(by: 300)
        h.dispatcher.finishLast(.retry(after: nil, detail: "b"))
        #expect(h.wait("news", kind: .periodic) == 900)
        h.clock.advance(by: 900)
        #expect(h.events.last?.lastChance == true)
        h.dispatcher.finishLast(.retry(after: nil, detail: "c"))
        #expect(h.outcomes == [.retryScheduled, .retryScheduled, .failed])
        #expect(h.wait("news", kind: .periodic) == 86400)
        #expect(h.scheduler.registration(h.key("news", kind: .periodic))?.attempts == 0)
        #expect(h.scheduler.registration(h.key("news", kind: .periodic))?.lastError == "c")
    }

    @Test func aPeriodicRetryThatMovedForwardIsNotSpentEither() throws {
        let h = try Harness(network: .online)
        try h.registerPeriodic(every: 86400)
        h.clock.advance(by: 86400)
        for _ in 0..<5 {
            h.dispatcher.finishLast(.retry(after: nil, detail: "cut", advanced: true))
            #expect(h.wait("news", kind: .periodic) == 300, "the first back-off again: nothing was spent")
            h.clock.advance(by: 300)
            #expect(h.events.last?.attempt == 1 && h.events.last?.lastChance == false)
        }
        #expect(h.outcomes == Array(repeating: .retryScheduled, count: 5))
    }

    @Test func registeringAgainUpdatesTheInterval() throws {
        let h = try Harness(network: .online)
        try h.registerPeriodic(every: 7200)
        h.clock.advance(by: 1000)
        try h.registerPeriodic(every: 3600)
        #expect(h.wait("news", kind: .periodic) == 2600)
        h.clock.advance(by: 2600)
        #expect(h.events.count == 1)
    }

    @Test func periodicAndOneOffTagsAreSeparateNamespaces() throws {
        let h = try Harness()
        try h.register("news")
        try h.registerPeriodic(every: 3600)
        #expect(h.scheduler.tags(appID: "org.example.Chat", kind: .oneOff) == ["news"])
        #expect(h.scheduler.tags(appID: "org.example.Chat", kind: .periodic) == ["news"])
        #expect(try h.scheduler.unregister(h.key("news")))
        #expect(h.state("news", kind: .periodic) == .waiting)
    }

    @Test func triggerFiresAPeriodicSyncEarly() throws {
        let h = try Harness(network: .online)
        try h.registerPeriodic(every: 3600)
        try h.scheduler.trigger(appID: "org.example.Chat", tag: "news")
        #expect(h.events.count == 1)
        h.dispatcher.finishLast(.success(detail: ""))
        #expect(h.wait("news", kind: .periodic) == 3600)
    }
}
