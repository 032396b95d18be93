// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import BGSyncValue
import Testing

import struct Foundation.Date

@Suite("Conditions: interruption, power, expiry, earliest start, progress")
struct ConditionsTests {
    static let battery = PowerStatus(onBattery: true, batteryPercentage: 50)
    static let lowBattery = PowerStatus(onBattery: true, batteryPercentage: 5)

    // MARK: - A condition lost while an event runs

    @Test func goingOfflineStopsTheEventAndRequeuesItWithoutChargingAnAttempt() throws {
        let h = try Harness(network: .online)
        try h.register()
        let first = try #require(h.events.first)
        h.goOffline()
        #expect(h.dispatcher.cancelled.map(\.id) == [first.id])
        #expect(h.dispatcher.cancelled.first?.grace == SyncSettings().interruptGracePeriod)
        h.dispatcher.finish(first.id, .retry(after: nil, detail: "stopped, 1 file sent, 2 files left"))
        #expect(h.outcomes == [.interrupted])
        #expect(h.state() == .pending)
        let stored = try #require(h.scheduler.registration(h.key()))
        #expect(stored.attempts == 0)
        #expect(h.store.rows[h.key()]?.attempts == 0)
        h.goOnline()
        #expect(h.events.count == 2)
        #expect(h.events[1].attempt == 1, "the interrupted attempt did not count")
    }

    @Test func threeDropsInARowDoNotLoseTheRegistration() throws {
        let h = try Harness(network: .online)
        try h.register()
        for _ in 0..<5 {
            h.goOffline()
            h.dispatcher.finishLast(.retry(after: nil, detail: "crashed"))  // killed after the grace period
            h.goOnline()
        }
        #expect(h.outcomes == Array(repeating: .interrupted, count: 5))
        #expect(h.events.count == 6)
        #expect(h.events.last?.attempt == 1)
        h.dispatcher.finishLast(.success(detail: "sent"))
        #expect(h.outcomes.last == .succeeded)
        #expect(h.scheduler.registration(h.key()) == nil)
    }

    @Test func anEventThatSucceedsAfterTheStopRequestSucceeds() throws {
        let h = try Harness(network: .online)
        try h.register()
        h.goOffline()
        h.dispatcher.finishLast(.success(detail: "sent 1 file"))
        #expect(h.outcomes == [.succeeded])
        #expect(h.scheduler.registration(h.key()) == nil)
    }

    @Test func becomingMeteredStopsOnlyUnmeteredRegistrations() throws {
        let h = try Harness(network: .online)
        try h.register("any")
        try h.register("wifi", options: ["network": .string("unmetered")])
        let byTag = Dictionary(uniqueKeysWithValues: h.events.map { ($0.key.tag, $0.id) })
        h.goOnline(metered: true)
        #expect(h.dispatcher.cancelled.map(\.id) == [byTag["wifi"]!])
        h.dispatcher.finish(byTag["wifi"]!, .retry(after: nil, detail: "stopped"))
        #expect(h.state("wifi") == .pending)
        #expect(h.events.count == 2, "waits while metered")
        h.goOnline(metered: false)
        #expect(h.events.count == 3)
        #expect(h.events[2].key.tag == "wifi" && h.events[2].attempt == 1)
    }

    @Test func anOrdinaryFailureStillCountsAnAttempt() throws {
        let h = try Harness(network: .online)
        try h.register()
        h.dispatcher.finishLast(.retry(after: nil, detail: "HTTP 503"))
        #expect(h.outcomes == [.retryScheduled])
        #expect(h.scheduler.registration(h.key())?.attempts == 1)
        #expect(h.dispatcher.cancelled.isEmpty)
    }

    // MARK: - Power

    @Test func acWaitsForMainsAndStopsWhenUnplugged() throws {
        let h = try Harness(network: .online, power: Self.battery)
        try h.register(options: ["power": .string("ac")])
        #expect(h.events.isEmpty)
        h.scheduler.powerChanged(.ac)
        #expect(h.events.count == 1)
        h.scheduler.powerChanged(Self.battery)
        #expect(h.dispatcher.cancelled.count == 1)
        h.dispatcher.finishLast(.retry(after: nil, detail: "stopped"))
        #expect(h.outcomes == [.interrupted])
        #expect(h.scheduler.registration(h.key())?.attempts == 0)
    }

    @Test func batteryNotLowUsesTheThreshold() throws {
        var settings = SyncSettings()
        settings.batteryLowThreshold = 30
        let h = try Harness(
            settings: settings, network: .online, power: PowerStatus(onBattery: true, batteryPercentage: 25))
        try h.register(options: ["power": .string("battery-not-low")])
        try h.register("plain")
        #expect(h.events.map(\.key.tag) == ["plain"])
        h.scheduler.powerChanged(PowerStatus(onBattery: true, batteryPercentage: 30))
        #expect(h.events.map(\.key.tag) == ["plain", "outbox"])
    }

    @Test func periodicSyncsWaitInPowerSaverUnlessPowerAnyWasGiven() throws {
        let saver = PowerStatus(onBattery: false, powerSaver: true)
        let h = try Harness(network: .online, power: saver)
        try h.registerPeriodic("news", every: 900)
        try h.registerPeriodic("mail", every: 900, options: ["power": .string("any")])
        try h.register("outbox")  // one-off: not held back by the profile
        h.clock.advance(by: 900)
        #expect(h.events.map(\.key.tag).sorted() == ["mail", "outbox"])
        h.scheduler.powerChanged(.ac)
        #expect(h.events.map(\.key.tag).sorted() == ["mail", "news", "outbox"])
    }

    @Test func powerOptionIsValidated() {
        #expect(throws: SyncError.self) {
            try RegistrationRequest(
                appID: "org.example.Chat", tag: "t", handler: "upload", options: ["power": .string("solar")])
        }
        #expect(throws: SyncError.self) {
            try RegistrationRequest(
                appID: "org.example.Chat", tag: "t", handler: "upload", options: ["power": .bool(true)])
        }
    }

    // MARK: - Expiry and earliest start

    @Test func notBeforeHoldsTheFirstFireEvenWhenOnlineAndTriggered() throws {
        let h = try Harness(network: .online)
        try h.register(options: ["not-before": .uint32(600)])
        #expect(h.events.isEmpty)
        #expect(h.state() == .waiting)
        try h.scheduler.trigger(appID: "org.example.Chat", tag: "outbox")
        #expect(h.events.isEmpty, "a trigger skips back-off, not not-before")
        h.clock.advance(by: 599)
        #expect(h.events.isEmpty)
        h.clock.advance(by: 1)
        #expect(h.events.count == 1)
    }

    @Test func expiresAfterEndsAWaitingRegistrationWithExpired() throws {
        let h = try Harness()
        try h.register(options: ["expires-after": .uint32(3600)])
        #expect(h.clock.armed == h.clock.now().addingTimeInterval(3600))
        h.clock.advance(by: 3599)
        #expect(h.scheduler.registration(h.key()) != nil)
        h.clock.advance(by: 1)
        #expect(h.outcomes == [.expired])
        #expect(h.scheduler.registration(h.key()) == nil)
        #expect(h.store.rows.isEmpty)
        h.goOnline()
        #expect(h.events.isEmpty)
    }

    @Test func aFailureAfterExpiryEndsItInsteadOfRetrying() throws {
        let h = try Harness(network: .online)
        try h.register(options: ["expires-after": .double(100)])
        h.clock.advance(by: 150)  // the event is still running: judged when it ends
        #expect(h.outcomes.isEmpty)
        h.dispatcher.finishLast(.retry(after: nil, detail: "HTTP 503"))
        #expect(h.outcomes == [.expired])
        #expect(h.scheduler.registration(h.key()) == nil)
    }

    @Test func aRetryThatWouldComeAfterExpiryExpiresAtTheExpiry() throws {
        let h = try Harness(network: .online)
        try h.register(options: ["expires-after": .uint32(120)])
        h.dispatcher.finishLast(.retry(after: nil, detail: "HTTP 503"))  // next attempt in 300 s
        #expect(h.outcomes == [.retryScheduled])
        h.clock.advance(by: 120)
        #expect(h.outcomes == [.retryScheduled, .expired])
        #expect(h.events.count == 1)
    }

    @Test func expiryAndStartAreValidated() {
        func request(_ options: [String: Value]) throws {
            _ = try RegistrationRequest(appID: "org.example.Chat", tag: "t", handler: "upload", options: options)
        }
        #expect(throws: SyncError.self) { try request(["expires-after": .uint32(0)]) }
        #expect(throws: SyncError.self) { try request(["expires-after": .double(-1)]) }
        #expect(throws: SyncError.self) { try request(["expires-after": .double(.infinity)]) }
        #expect(throws: SyncError.self) { try request(["expires-after": .uint64(UInt64.max)]) }
        #expect(throws: SyncError.self) { try request(["not-before": .string("soon")]) }
        #expect(throws: SyncError.self) { try request(["not-before": .int32(-5)]) }
        #expect(throws: SyncError.self) { try request(["not-before": .uint32(60), "expires-after": .uint32(60)]) }
        #expect(throws: Never.self) {
            try request(["not-before": .uint32(0), "expires-after": .variant(.double(0.5))])
        }
    }

    // MARK: - Progress

    @Test func progressIsKeptAndAnnouncedAtMostOncePerInterval() throws {
        let h = try Harness(network: .online)
        try h.register()
        let event = try #require(h.events.first)
        for done in 1...5 {
            let progress = SyncProgress(done: UInt64(done), total: 5, text: "\(done) sent")
            h.scheduler.progressReported(key: h.key(), eventID: event.id, progress)
        }
        #expect(h.observer.progress.map(\.progress.done) == [1])
        #expect(h.scheduler.progress(h.key())?.done == 5)
        h.clock.advance(by: 1)
        h.scheduler.progressReported(key: h.key(), eventID: event.id, SyncProgress(done: 5, total: 5, text: "5 sent"))
        #expect(h.observer.progress.map(\.progress.done) == [1, 5])
        // A stale event's report is ignored.
        h.scheduler.progressReported(key: h.key(), eventID: event.id + 99, SyncProgress(done: 9, total: 9, text: "x"))
        #expect(h.scheduler.progress(h.key())?.done == 5)
    }

    @Test func bytesAreKeptWithARateAndAnnouncedAtMostOncePerInterval() throws {
        let h = try Harness(network: .online)
        try h.register()
        let event = try #require(h.events.first)
        let key = h.key()
        h.scheduler.transferReported(key: key, eventID: event.id, sent: 0, received: 0, expected: 10_000_000)
        // 1 MB a second for 4 s, reported every 0.25 s.
        for step in 1...16 {
            h.clock.advance(by: 0.25)
            h.scheduler.transferReported(
                key: key, eventID: event.id, sent: UInt64(step) * 250_000, received: 0, expected: 10_000_000)
        }
        let transfer = try #require(h.scheduler.transfer(key))
        #expect(transfer.sent == 4_000_000 && transfer.expected == 10_000_000)
        #expect(abs(transfer.rate - 1_000_000) < 1, "rate \(transfer.rate)")
        #expect(abs((transfer.secondsLeft ?? 0) - 6) < 0.01)
        // One signal at the start and then one a second: not one per report.
        #expect(h.observer.transfers.count == 5)
        #expect(h.observer.transfers.map(\.transfer.sent) == h.observer.transfers.map(\.transfer.sent).sorted())
        // The rate follows a slower link smoothly, not in one jump.
        for step in 1...4 {
            h.clock.advance(by: 0.5)
            h.scheduler.transferReported(
                key: key, eventID: event.id, sent: 4_000_000 + UInt64(step) * 50_000, received: 0, expected: 10_000_000)
        }
        let slower = try #require(h.scheduler.transfer(key)).rate
        #expect(slower < 1_000_000 && slower > 100_000, "rate \(slower)")
        // A stale event's report is ignored; a new event starts afresh.
        h.scheduler.transferReported(key: key, eventID: event.id + 99, sent: 1, received: 1, expected: 1)
        #expect(h.scheduler.transfer(key)?.sent == 4_200_000)
    }

    @Test func eventsCarryTheStallTimeAndCeiling() throws {
        var settings = SyncSettings()
        settings.eventStallTimeout = 30
        settings.eventCeiling = 7200
        let h = try Harness(settings: settings, network: .online)
        try h.register()
        let event = try #require(h.events.first)
        let start = h.clock.now()
        #expect(event.deadline == start.addingTimeInterval(180))
        #expect(event.deadline(afterProgressAt: start.addingTimeInterval(170)) == start.addingTimeInterval(200))
        #expect(event.deadline(afterProgressAt: start.addingTimeInterval(7190)) == start.addingTimeInterval(7200))
    }
}

@Suite struct ConditionsRequestTests {
    @Test func secondsAreReadFromAnyNumberType() throws {
        let request = try RegistrationRequest(
            appID: "org.example.Chat", tag: "t", handler: "upload",
            options: ["expires-after": .uint32(3600), "not-before": .int64(60), "power": .string("ac")])
        #expect(request.expiresAfter == 3600)
        #expect(request.notBefore == 60)
        #expect(request.power == .ac)
        #expect(request.options.isEmpty)
    }
}

@Suite struct RoutingDispatcherStopTests {
    @Test func aStopReachesTheDispatcherRunningTheEvent() {
        let app = ManualDispatcher()
        let plugins = ManualDispatcher()
        let router = RoutingDispatcher(builtIn: ["app": app], plugins: plugins)
        router.cancel(eventID: 7, grace: 5)
        // Each ignores ids it does not run; the one that runs it acts on it.
        #expect(app.cancelled.map(\.id) == [7])
        #expect(plugins.cancelled.map(\.id) == [7])
        #expect(plugins.cancelled.first?.grace == 5)
    }
}
