// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

import struct Foundation.Date

/// The heart of bgsync: Background Sync semantics over registrations, with no I/O of its own.
/// It decides when each registration fires and what happens after; the store, the clock, the
/// handlers and the network come in through the ports in Ports.swift.
///
/// All methods run on one thread (the agent's loop). A caller's change is committed to the store
/// before memory is touched, so a failed write leaves nothing half-done, and a caller hears of
/// success only once its change is durable (group commit: CallerWrites.swift).
public final class Scheduler {
    /// Read where used, so a reload's new values apply from the next decision on.
    public var settings: SyncSettings
    public private(set) var network: NetworkStatus
    /// The power supply; changed through `powerChanged` (Scheduler+Conditions.swift).
    public internal(set) var power: PowerStatus
    /// Apps the user switched off; changed through `permissionsChanged` (Scheduler+Conditions.swift).
    /// Plain Strings suffice here: app ids are ASCII (`Identifiers.validateAppID`), where String's
    /// `==` is byte equality; tags, which are any UTF-8, are compared through `ExactText`.
    public internal(set) var denied: Set<String>
    /// Per app and day: bytes moved and the last outcome, for ListApps (AppActivity.swift).
    public internal(set) var activity = AppActivity()
    public weak var observer: (any SyncObserver)?
    /// Names of the handlers that loaded; Register refuses others.
    public var handlers: [String: HandlerInfo]

    let clock: any SchedulerClock
    let store: any RegistrationStore
    let dispatcher: any EventDispatcher
    private let unitRandom: () -> Double

    /// Change only through `setRegistration`, which keeps `perApp` in step (`start` fills both).
    private(set) var registrations = RegistrationTable()
    /// How many registrations each app has (the quota check, O(1)).
    private(set) var perApp: [ExactText: Int] = [:]
    /// Events now running, by key. An entry whose registration was unregistered is `orphaned`.
    var running: [RegistrationKey: RunningEvent] = [:]
    /// Interruptions and progress (Scheduler+Conditions.swift).
    var conditions = ConditionState()
    /// Pending registrations by app, served in turns; may hold stale keys, checked on use.
    private var readyQueue = FairQueue()
    var nextSequence: Int64 = 1

    // Group commit (CallerWrites.swift).
    /// Caller operations waiting for the next batch.
    var queuedOperations: [QueuedOperation] = []
    /// Keys the batch being committed touches: no event starts or finishes for them meanwhile,
    /// so what the batch computed from them still holds when it lands. nil: no commit in flight.
    var committingKeys: Set<RegistrationKey>?
    /// Event completions for committing keys, replayed once the batch lands.
    var heldCompletions: [() -> Void] = []
    /// Queued or committing Unregisters per app: while an app has one, its quota is not decided
    /// ahead of the queue.
    var unregistersPerApp: [ExactText: Int] = [:]
    private var nextEventID: UInt64 = 1
    private var armedWakeup: Date?
    /// Held while events run, released when none does (Scheduler+Sleep.swift).
    public var sleepMonitor: (any SleepMonitor)?
    /// The machine is about to sleep: nothing new starts until it wakes.
    public internal(set) var preparingForSleep = false
    /// Whether the sleep delay lock was asked for last.
    var holdingSleepDelay = false

    struct RunningEvent {
        var id: UInt64
        var startedAt: Date
        var orphaned = false
    }

    public init(
        settings: SyncSettings, clock: any SchedulerClock, store: any RegistrationStore,
        dispatcher: any EventDispatcher, handlers: [String: HandlerInfo] = [:],
        network: NetworkStatus = .offline, power: PowerStatus = .ac, denied: Set<String> = [],
        unitRandom: @escaping () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.settings = settings
        self.clock = clock
        self.store = store
        self.dispatcher = dispatcher
        self.handlers = handlers
        self.network = network
        self.power = power
        self.denied = denied
        self.unitRandom = unitRandom
    }

    // MARK: - Start

    /// Loads what the store holds and fires what is due. Events that were running when the agent
    /// stopped come back pending, without counting an attempt.
    public func start() throws(SyncError) {
        clock.onWakeup = { [weak self] in self?.wakeup() }
        // Streamed from the store's cursor into the table; only the pending keys are sorted.
        var pending: [(sequence: Int64, key: RegistrationKey)] = []
        // Sized once: growing by doubling held the old and the new table at once (the peak).
        if let count = store.storedCount() { registrations.reserveCapacity(count) }
        // One copy of each app id (an app has up to registrations-per-app rows; an id longer than
        // 15 bytes is a heap string per row otherwise: 5 MiB of a 100,000-row start), and its
        // count, kept here and handed to `perApp` at the end, which saves hashing the app id twice
        // more per row. Keys compare as bytes, as SQLite's primary key does, so each row is a
        // registration of its own (a composed and a decomposed "café" are two) and counts once;
        // the check stays for a store that could hold one key twice.
        var appIDs: [ExactText: (shared: String, count: Int)] = [:]
        try store.forEachStored { stored in
            var registration = stored.durable
            let app = registration.key.app
            let shared = appIDs[app]?.shared ?? registration.key.appID
            registration.key.appID = shared
            if registrations.updateValue(registration, forKey: registration.key) == nil {
                appIDs[app, default: (shared, 0)].count += 1
            }
            nextSequence = max(nextSequence, registration.sequence + 1)
            if registration.state == .pending { pending.append((registration.sequence, registration.key)) }
        }
        perApp = appIDs.mapValues(\.count)
        try loadActivity()
        pending.sort { $0.sequence < $1.sequence }
        for entry in pending { readyQueue.append(entry.key) }
        wakeup()
    }

    // MARK: - Queries

    /// One scan of the table for an app that has registrations (only their order and tags are
    /// copied out); none at all for an app that has none.
    public func tags(appID: String, kind: RegistrationKind) -> [String] {
        guard perApp[ExactText(appID)] != nil else { return [] }
        var found: [(sequence: Int64, tag: String)] = []
        for registration in registrations.values
        where registration.key.kind == kind && ExactText.sameBytes(registration.key.appID, appID) {
            found.append((registration.sequence, registration.key.tag))
        }
        return found.sorted { $0.sequence < $1.sequence }.map(\.tag)
    }

    public func registration(_ key: RegistrationKey) -> Registration? { registrations[key] }

    public var count: Int { registrations.count }

    public var runningCount: Int { running.count }

    /// The network changed. Going online fires everything due; going offline starts nothing
    /// new (running events finish).
    public func networkChanged(_ status: NetworkStatus) {
        guard status != network else { return }
        network = status
        interruptUnsatisfied()
        afterChange()
    }

    // MARK: - Time

    /// The clock's wake-up: due waiting registrations become pending.
    func wakeup() {
        armedWakeup = nil
        let now = clock.now()
        expireDue(now: now)
        let due = registrations.updateEach { registration in
            guard registration.state == .waiting, let due = registration.nextAttempt, due <= now else { return false }
            registration.state = .pending  // no write: a past due time already reads as pending
            registration.nextAttempt = nil
            return true
        }
        for key in due { readyQueue.append(key) }
        afterChange(rescan: true)
    }

    /// Dispatches what may run; on a wake-up, also looks again for the earliest due time.
    func afterChange(rescan: Bool = false) {
        dispatchReady()
        if rescan {
            rearmWakeup()
        }
        updateSleepDelay()
    }

    /// Arms the clock for the earliest waiting registration: a scan of all of them, so only on a
    /// wake-up (and at start). In between, `noteWaiting` keeps the armed time early enough; one
    /// that turns out too early (its registration went) just rescans.
    private func rearmWakeup() {
        let earliest = earliestWakeup()
        if earliest != armedWakeup {
            armedWakeup = earliest
            clock.armWakeup(at: earliest)
        }
    }

    /// Queues a pending registration, or makes sure the wake-up comes early enough for a waiting one.
    func track(_ registration: Registration) {
        if let expiry = registration.expiresAt { noteWaiting(until: expiry) }
        switch registration.state {
        case .pending: readyQueue.append(registration.key)
        case .waiting: if let due = registration.nextAttempt { noteWaiting(until: due) }
        case .firing, .reregisteredWhileFiring: break
        }
    }

    func noteWaiting(until date: Date) {
        if let armed = armedWakeup, armed <= date { return }
        armedWakeup = date
        clock.armWakeup(at: date)
    }

    // MARK: - Firing

    /// Starts what may run, sharing the slots between apps (FairQueue.swift): while several apps
    /// have work, each gets at most its share, and one app never takes the last free slot, so
    /// a newcomer's event starts at once however long another app's events run.
    private func dispatchReady() {
        guard network.online, !preparingForSleep else { return }
        var held: [ExactText: Int] = [:]
        for key in running.keys { held[key.app, default: 0] += 1 }
        let limit = settings.concurrentEvents
        var progress = true
        while progress, running.count < limit {
            progress = false
            // An app switched off holds its registrations: it takes no turn and no share.
            let waiting = readyQueue.appsInTurn().filter { !denied.contains($0.string) }
            // Apps with work: those waiting, and those running something with nothing waiting
            // (counted over the few running apps, not by hashing every waiting one).
            let active = waiting.count + held.keys.count { denied.contains($0.string) || !readyQueue.hasPending($0) }
            for app in waiting where running.count < limit {
                let mine = held[app] ?? 0
                let share = FairShare.share(slots: limit, activeApps: active)
                guard FairShare.mayStart(held: mine, share: share, free: limit - running.count) else { continue }
                let next = readyQueue.popFirst(of: app) { key in
                    guard let registration = registrations[key], registration.state == .pending else { return .drop }
                    // An unregistered twin still running, metered, power, or being committed: it waits.
                    guard running[key] == nil, conditionsHold(for: registration),
                        committingKeys?.contains(key) != true
                    else { return .keep }
                    return .take
                }
                guard let key = next, let registration = registrations[key] else { continue }
                fire(registration)
                held[app] = mine + 1
                progress = true
            }
        }
    }

    private func fire(_ registration: Registration) {
        let now = clock.now()
        let id = nextEventID
        nextEventID += 1
        let attempt = registration.attempts + 1
        let event = SyncEvent(
            id: id, key: registration.key, handler: registration.handler, options: registration.options,
            attempt: attempt, lastChance: attempt >= registration.maxAttempts,
            deadline: now.addingTimeInterval(settings.eventTimeout), confinement: registration.confinement,
            stallTimeout: settings.eventStallTimeout, ceiling: now.addingTimeInterval(settings.eventCeiling))
        var firing = registration
        firing.state = .firing
        registrations[registration.key] = firing
        running[registration.key] = RunningEvent(id: id, startedAt: now)
        conditions.forget(registration.key)  // a new event: its own progress, announced afresh
        observer?.syncStarted(event)
        dispatcher.dispatch(event) { [weak self] outcome in
            self?.eventFinished(key: registration.key, id: id, outcome: outcome)
        }
    }

    private func eventFinished(key: RegistrationKey, id: UInt64, outcome: HandlerOutcome) {
        guard let event = running[key], event.id == id else { return }  // a duplicate completion
        if committingKeys?.contains(key) == true {
            heldCompletions.append { [weak self] in self?.eventFinished(key: key, id: id, outcome: outcome) }
            return
        }
        running[key] = nil
        let interrupted = conditions.interrupting.remove(id) != nil
        defer { afterEvent(of: key) }
        guard !event.orphaned, var registration = registrations[key] else {
            recordActivity(key, .cancelled, outcome, now: clock.now())
            observer?.syncFinished(key, outcome: .cancelled, detail: outcome.detail)
            return
        }
        let now = clock.now()
        let result: SyncOutcome
        if let ended = finishInterruptedOrExpired(&registration, interrupted: interrupted, outcome: outcome, now: now) {
            result = ended
        } else if registration.state == .reregisteredWhileFiring {
            // Registered again while running: run once more, from a clean slate.
            registration.state = .pending
            registration.attempts = 0
            registration.lastError = ""
            result = outcome.succeeded ? .succeeded : .retryScheduled
            persist(registration, key: key)
        } else if key.kind == .periodic {
            result = finishPeriodic(&registration, outcome: outcome, startedAt: event.startedAt, now: now)
            persist(registration, key: key)
        } else {
            result = finishOneOff(&registration, outcome: outcome, now: now)
            persist(result == .retryScheduled ? registration : nil, key: key)
        }
        recordActivity(key, result, outcome, now: now)
        observer?.syncFinished(key, outcome: result, detail: outcome.detail)
    }

    private func finishOneOff(_ registration: inout Registration, outcome: HandlerOutcome, now: Date) -> SyncOutcome {
        switch outcome.kind {
        case .success:
            return .succeeded
        case .failure(let detail):
            registration.lastError = detail
            return .failed
        case .retry(let after, let detail, let advanced):
            // An attempt that moved the work forward is not spent (as BITS counts only time without
            // progress): a 5 GB upload that needs many events is not dropped after three of them.
            // Bounded by the handler, which sets `advanced` only for progress it keeps (a server's
            // confirmed offset above any before): the work is finite, and attempts in a row that
            // move nothing still count.
            if !advanced { registration.attempts += 1 }
            registration.lastError = detail
            guard registration.attempts < registration.maxAttempts else { return .failed }
            scheduleRetry(&registration, hint: after, now: now)
            return .retryScheduled
        }
    }

    private func finishPeriodic(
        _ registration: inout Registration, outcome: HandlerOutcome, startedAt: Date, now: Date
    ) -> SyncOutcome {
        let interval = registration.minInterval ?? settings.minPeriodicInterval
        switch outcome.kind {
        case .success:
            registration.attempts = 0
            registration.lastError = ""
            waitForNextInterval(&registration, from: startedAt, interval: interval)
            return .succeeded
        case .retry(let after, let detail, let advanced)
        where advanced || registration.attempts + 1 < registration.maxAttempts:
            if !advanced { registration.attempts += 1 }
            registration.lastError = detail
            scheduleRetry(&registration, hint: after, now: now)
            return .retryScheduled
        case .retry(_, let detail, _), .failure(let detail):
            // Out of attempts (or hopeless): wait for the next interval, counted from now.
            registration.attempts = 0
            registration.lastError = detail
            waitForNextInterval(&registration, from: now, interval: interval)
            return .failed
        }
    }

    private func scheduleRetry(_ registration: inout Registration, hint: Double?, now: Date) {
        var delay = settings.backoff(afterFailures: registration.attempts, unitRandom: unitRandom())
        if let hint, hint.isFinite, hint > delay { delay = hint }
        registration.state = .waiting
        registration.nextAttempt = now.addingTimeInterval(delay)
    }

    private func waitForNextInterval(_ registration: inout Registration, from start: Date, interval: Double) {
        registration.intervalStart = start
        registration.state = .waiting
        registration.nextAttempt = start.addingTimeInterval(interval)
    }

    func updatePeriodic(_ registration: inout Registration, interval: Double, now: Date) {
        guard registration.minInterval != interval else { return }
        registration.minInterval = interval
        // A new interval counts from the start of the current one, unless it is backing off.
        if registration.state == .waiting, registration.attempts == 0 {
            registration.nextAttempt = (registration.intervalStart ?? now).addingTimeInterval(interval)
        }
    }

    /// Writes an outcome no caller is waiting for: `nil` deletes. A failed write is reported
    /// and memory goes ahead; the disk keeps the older state, which only means a repeat run.
    func persist(_ registration: Registration?, key: RegistrationKey) {
        do {
            if let registration {
                try store.save(registration.durable, urgency: .background)
                setRegistration(key, registration)
                track(registration)
            } else {
                try store.delete(key, urgency: .background)
                setRegistration(key, nil)
            }
        } catch {
            observer?.storageFailed(error)
            setRegistration(key, registration)
            if let registration { track(registration) }
        }
    }

    /// Sets or removes a registration, keeping the per-app counts.
    func setRegistration(_ key: RegistrationKey, _ registration: Registration?) {
        let existed =
            if let registration { registrations.updateValue(registration, forKey: key) != nil } else {
                registrations.removeValue(forKey: key) != nil
            }
        guard existed != (registration != nil) else { return }
        let count = perApp[key.app, default: 0] + (existed ? -1 : 1)
        perApp[key.app] = count == 0 ? nil : count
    }

    /// Marks a running event of a removed registration: it finishes, `cancelled`, with no retry.
    func orphanRunning(_ key: RegistrationKey) { running[key]?.orphaned = true }

    func clampedInterval(_ requested: Double?) -> Double {
        max(requested ?? settings.minPeriodicInterval, settings.minPeriodicInterval)
    }

    static func encodedSize(of options: [String: Value]) -> Int {
        options.reduce(0) { $0 + $1.key.utf8.count + $1.value.marshalledSize }
    }
}
