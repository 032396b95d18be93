// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import Testing

@Suite("Sleep: the delay lock only while events run, events stopped before sleep, due work at wake-up")
struct SleepTests {
    /// A harness whose scheduler reports to a fake sleep monitor, wired as the agent wires it.
    static func harness(network: NetworkStatus = .online) throws -> (Harness, FakeSleepMonitor) {
        let h = try Harness(network: network)
        let sleep = FakeSleepMonitor(stopGrace: 2)
        h.scheduler.sleepMonitor = sleep
        sleep.onPrepareForSleep = { [unowned scheduler = h.scheduler, unowned sleep] sleeping in
            if sleeping { scheduler.prepareForSleep(grace: sleep.stopGrace) } else { scheduler.resumedFromSleep() }
        }
        return (h, sleep)
    }

    @Test func theLockIsHeldOnlyWhileAnEventRuns() throws {
        let (h, sleep) = try Self.harness()
        #expect(sleep.changes.isEmpty, "idle: no lock")
        try h.register()
        #expect(sleep.holding)
        try h.register("second")
        #expect(sleep.changes == [true], "one lock for any number of running events")
        h.dispatcher.finishLast(.success(detail: "sent"))
        #expect(sleep.holding, "one event still runs")
        h.dispatcher.finishLast(.success(detail: "sent"))
        #expect(sleep.changes == [true, false])
    }

    @Test func prepareForSleepStopsTheEventWithoutChargingAnAttemptAndReleasesTheLock() throws {
        let (h, sleep) = try Self.harness()
        try h.register()
        let first = try #require(h.events.first)
        sleep.prepare(true)
        #expect(h.dispatcher.cancelled.map(\.id) == [first.id])
        #expect(h.dispatcher.cancelled.first?.grace == 2, "the monitor's grace, not the interrupt grace period")
        #expect(sleep.holding, "held until the event has stopped")
        h.dispatcher.finish(first.id, .retry(after: nil, detail: "stopped"))
        #expect(h.outcomes == [.interrupted])
        #expect(!sleep.holding)
        #expect(h.state() == .pending)
        #expect(h.scheduler.registration(h.key())?.attempts == 0)
        #expect(h.store.rows[h.key()]?.attempts == 0)
        #expect(h.events.count == 1, "nothing restarts before the machine sleeps")

        sleep.prepare(false)
        #expect(h.events.count == 2, "runs again at wake-up")
        #expect(h.events[1].attempt == 1)
        #expect(sleep.holding)
    }

    @Test func nothingStartsWhilePreparingForSleep() throws {
        let (h, sleep) = try Self.harness()
        sleep.prepare(true)
        try h.register()
        try h.scheduler.trigger(appID: "org.example.Chat", tag: "outbox")
        #expect(h.events.isEmpty)
        #expect(sleep.changes.isEmpty, "no lock taken while preparing for sleep")
        sleep.prepare(false)
        #expect(h.events.count == 1)
    }

    @Test func anEventThatSucceedsBeforeItStopsSucceeds() throws {
        let (h, sleep) = try Self.harness()
        try h.register()
        sleep.prepare(true)
        h.dispatcher.finishLast(.success(detail: "sent"))
        #expect(h.outcomes == [.succeeded])
        #expect(h.scheduler.registration(h.key()) == nil)
        #expect(!sleep.holding)
    }

    @Test func aBackOffThatEndedWhileAsleepFiresAtWakeUp() throws {
        let (h, sleep) = try Self.harness()
        try h.register()
        h.dispatcher.finishLast(.retry(after: 600, detail: "HTTP 503"))
        #expect(h.state() == .waiting)
        sleep.prepare(true)
        h.clock.sleep(for: 3600)  // asleep for an hour: the wake-up was due, nothing ran it
        #expect(h.events.count == 1)
        sleep.prepare(false)
        #expect(h.events.count == 2, "fired at wake-up, not an interval later")
        #expect(h.events[1].attempt == 2)
    }

    @Test func anEventAlreadyStoppingForALostConditionIsAskedAgainWithTheShorterGrace() throws {
        let (h, sleep) = try Self.harness()
        try h.register()
        h.goOffline()
        sleep.prepare(true)
        #expect(h.dispatcher.cancelled.map(\.grace) == [SyncSettings().interruptGracePeriod, 2])
        h.dispatcher.finishLast(.retry(after: nil, detail: "stopped"))
        #expect(h.outcomes == [.interrupted])
        #expect(h.scheduler.registration(h.key())?.attempts == 0)
        #expect(!sleep.holding)
    }

    @Test func anUnregisteredRunningEventIsStoppedTooAndEndsCancelled() throws {
        let (h, sleep) = try Self.harness()
        try h.register()
        _ = try h.scheduler.unregister(h.key())
        sleep.prepare(true)
        #expect(h.dispatcher.cancelled.count == 1)
        h.dispatcher.finishLast(.retry(after: nil, detail: "stopped"))
        #expect(h.outcomes == [.cancelled])
        #expect(!sleep.holding)
    }
}
