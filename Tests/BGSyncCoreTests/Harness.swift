// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import BGSyncValue

import struct Foundation.Date

/// A scheduler wired to fakes, with short names for what the tests do most.
final class Harness {
    let clock: TestClock
    let store: MemoryStore
    let dispatcher = ManualDispatcher()
    let observer = RecordingObserver()
    let scheduler: Scheduler
    static let handlers = ["upload": HandlerInfo(name: "upload", description: "Uploads", sandboxSafe: true)]

    init(
        settings: SyncSettings = SyncSettings(), network: NetworkStatus = .offline, power: PowerStatus = .ac,
        stored: [Registration] = [], now: Date = Date(timeIntervalSince1970: 1_700_000_000),
        random: @escaping () -> Double = { 0.5 }, denied: Set<String> = [], store: MemoryStore? = nil
    ) throws {
        clock = TestClock(start: now)
        self.store = store ?? MemoryStore(stored)
        scheduler = Scheduler(
            settings: settings, clock: clock, store: self.store, dispatcher: dispatcher, handlers: Self.handlers,
            network: network, power: power, denied: denied, unitRandom: random)
        scheduler.observer = observer
        try scheduler.start()
    }

    func register(_ tag: String = "outbox", app: String = "org.example.Chat", options: [String: Value] = [:]) throws {
        try scheduler.register(RegistrationRequest(appID: app, tag: tag, handler: "upload", options: options))
    }

    func registerPeriodic(_ tag: String = "news", every interval: Double, options: [String: Value] = [:]) throws {
        try scheduler.register(
            RegistrationRequest(
                appID: "org.example.Chat", tag: tag, kind: .periodic, handler: "upload", options: options,
                minInterval: interval))
    }

    func key(_ tag: String = "outbox", kind: RegistrationKind = .oneOff) -> RegistrationKey {
        RegistrationKey(appID: "org.example.Chat", tag: tag, kind: kind)
    }

    func state(_ tag: String = "outbox", kind: RegistrationKind = .oneOff) -> RegistrationState? {
        scheduler.registration(key(tag, kind: kind))?.state
    }

    var events: [SyncEvent] { dispatcher.started }
    var outcomes: [SyncOutcome] { observer.finished.map(\.outcome) }

    func goOnline(metered: Bool = false) { scheduler.networkChanged(NetworkStatus(online: true, metered: metered)) }
    func goOffline() { scheduler.networkChanged(.offline) }

    /// Seconds from now until the registration's next attempt.
    func wait(_ tag: String = "outbox", kind: RegistrationKind = .oneOff) -> Double? {
        scheduler.registration(key(tag, kind: kind))?.nextAttempt.map { $0.timeIntervalSince(clock.now()) }
    }
}
