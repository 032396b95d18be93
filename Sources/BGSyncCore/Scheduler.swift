import struct Foundation.Date

/// The heart of bgsync: Background Sync semantics over registrations, with no I/O of its own.
/// It decides when each registration fires and what happens after; the store, the clock, the
/// handlers and the network come in through the ports in Ports.swift.
///
/// All methods run on one thread (the agent's loop). A caller's change is written to the store
/// before memory is touched, so a failed write leaves nothing half-done and a successful return
/// means the change is durable.
public final class Scheduler {
    public let settings: SyncSettings
    public private(set) var network: NetworkStatus
    /// The power supply; changed through `powerChanged` (Scheduler+Conditions.swift).
    public internal(set) var power: PowerStatus
    public weak var observer: (any SyncObserver)?
    /// Names of the handlers that loaded; Register refuses others.
    public var handlers: [String: HandlerInfo]

    let clock: any SchedulerClock
    private let store: any RegistrationStore
    let dispatcher: any EventDispatcher
    private let unitRandom: () -> Double

    var registrations: [RegistrationKey: Registration] = [:]
    /// Events now running, by key. An entry whose registration was unregistered is `orphaned`.
    var running: [RegistrationKey: RunningEvent] = [:]
    /// Interruptions and progress (Scheduler+Conditions.swift).
    var conditions = ConditionState()
    /// Pending registrations in the order they should fire; may hold stale keys, checked on use.
    private var readyQueue = ReadyQueue()
    private var nextSequence: Int64 = 1
    private var nextEventID: UInt64 = 1
    private var armedWakeup: Date?

    struct RunningEvent {
        var id: UInt64
        var startedAt: Date
        var orphaned = false
    }

    public init(
        settings: SyncSettings, clock: any SchedulerClock, store: any RegistrationStore,
        dispatcher: any EventDispatcher, handlers: [String: HandlerInfo] = [:],
        network: NetworkStatus = .offline, power: PowerStatus = .ac,
        unitRandom: @escaping () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.settings = settings
        self.clock = clock
        self.store = store
        self.dispatcher = dispatcher
        self.handlers = handlers
        self.network = network
        self.power = power
        self.unitRandom = unitRandom
    }

    // MARK: - Start

    /// Loads what the store holds and fires what is due. Events that were running when the agent
    /// stopped come back pending, without counting an attempt.
    public func start() throws(SyncError) {
        clock.onWakeup = { [weak self] in self?.wakeup() }
        let loaded = try store.loadAll().sorted(by: { $0.sequence < $1.sequence })
        registrations.reserveCapacity(loaded.count)
        for var registration in loaded {
            registration = registration.durable
            registrations[registration.key] = registration
            nextSequence = max(nextSequence, registration.sequence + 1)
            if registration.state == .pending { readyQueue.append(registration.key) }
        }
        wakeup()
    }

    // MARK: - Queries

    public func tags(appID: String, kind: RegistrationKind) -> [String] {
        registrations.values
            .filter { $0.key.appID == appID && $0.key.kind == kind }
            .sorted { $0.sequence < $1.sequence }
            .map(\.key.tag)
    }

    public func registration(_ key: RegistrationKey) -> Registration? { registrations[key] }

    public var count: Int { registrations.count }

    public var runningCount: Int { running.count }

    // MARK: - Caller operations

    /// Register or RegisterPeriodic, with the spec's semantics for an existing tag.
    public func register(_ request: RegistrationRequest) throws(SyncError) {
        guard handlers[request.handler] != nil else {
            let known = handlers.keys.sorted().joined(separator: ", ")
            throw SyncError(
                .unknownHandler,
                "No handler named '\(request.handler)' is installed (installed: \(known.isEmpty ? "none" : known)).")
        }
        let maxAttempts = request.maxAttempts ?? settings.maxAttempts
        guard maxAttempts <= settings.maxAttemptsLimit else {
            throw .invalidArgument("Option 'max-attempts' is \(maxAttempts); at most \(settings.maxAttemptsLimit) are allowed.")
        }
        let size = Self.encodedSize(of: request.options)
        guard size <= settings.maxOptionsBytes else {
            throw .invalidArgument("The options take \(size) bytes; at most \(settings.maxOptionsBytes) are allowed. Pass large data as a file path.")
        }
        let now = clock.now()

        if var existing = registrations[request.key] {
            existing.handler = request.handler
            existing.options = request.options
            existing.network = request.network
            existing.maxAttempts = maxAttempts
            existing.applyTimes(of: request, now: now)
            if request.key.kind == .periodic {
                updatePeriodic(&existing, interval: clampedInterval(request.minInterval), now: now)
            } else {
                switch existing.state {
                case .pending: break  // coalesced: one sync for many registrations
                case .waiting:
                    existing.state = .pending
                    existing.nextAttempt = nil
                case .firing, .reregisteredWhileFiring:
                    existing.state = .reregisteredWhileFiring
                }
                existing.holdUntilNotBefore(now: now)
            }
            try store.save(existing.durable)
            registrations[request.key] = existing
            track(existing)
        } else {
            let owned = registrations.keys.lazy.filter { $0.appID == request.key.appID }.count
            guard owned < settings.registrationsPerApp else {
                throw SyncError(
                    .quotaExceeded,
                    "\(request.key.appID) already has \(owned) registrations, the most one app may have; unregister some first.")
            }
            var registration = Registration(
                key: request.key, handler: request.handler, options: request.options, network: request.network,
                maxAttempts: maxAttempts, sequence: nextSequence)
            registration.applyTimes(of: request, now: now)
            if request.key.kind == .periodic {
                let interval = clampedInterval(request.minInterval)
                registration.minInterval = interval
                registration.intervalStart = now
                registration.state = .waiting
                registration.nextAttempt = now.addingTimeInterval(interval)
            }
            registration.holdUntilNotBefore(now: now)
            try store.save(registration.durable)
            nextSequence += 1
            registrations[request.key] = registration
            track(registration)
        }
        afterChange()
    }

    /// Removes a registration. A running event finishes, is not retried, and ends `cancelled`.
    /// Returns false when there was nothing to remove.
    public func unregister(_ key: RegistrationKey) throws(SyncError) -> Bool {
        guard registrations[key] != nil else { return false }
        try store.delete(key)
        registrations[key] = nil
        running[key]?.orphaned = true
        afterChange()
        return true
    }

    /// Fires now, skipping any back-off wait (or, for a periodic one, the rest of its interval),
    /// but not the network requirement. Looks at the one-off tag first, then the periodic one.
    public func trigger(appID: String, tag: String) throws(SyncError) {
        let keys = RegistrationKind.allCases.map { RegistrationKey(appID: appID, tag: tag, kind: $0) }
        guard let key = keys.first(where: { registrations[$0] != nil }), var registration = registrations[key] else {
            throw SyncError(.notFound, "\(appID) has no registration with tag '\(tag)'.")
        }
        guard registration.state == .waiting else {
            afterChange()  // pending: fire it if we can; running: nothing to do
            return
        }
        registration.state = .pending
        registration.nextAttempt = nil
        registration.holdUntilNotBefore(now: clock.now())  // a trigger skips back-off, not not-before
        try store.save(registration.durable)
        registrations[key] = registration
        track(registration)
        afterChange()
    }

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
    private func wakeup() {
        armedWakeup = nil
        let now = clock.now()
        expireDue(now: now)
        for (key, registration) in registrations where registration.state == .waiting {
            if let due = registration.nextAttempt, due <= now {
                var updated = registration
                updated.state = .pending
                updated.nextAttempt = nil
                registrations[key] = updated  // no write: a past due time already reads as pending
                readyQueue.append(key)
            }
        }
        afterChange(rescan: true)
    }

    /// Dispatches what may run; on a wake-up, also looks again for the earliest due time.
    func afterChange(rescan: Bool = false) {
        dispatchReady()
        if rescan {
            rearmWakeup()
        }
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

    private func noteWaiting(until date: Date) {
        if let armed = armedWakeup, armed <= date { return }
        armedWakeup = date
        clock.armWakeup(at: date)
    }

    // MARK: - Firing

    private func dispatchReady() {
        guard network.online else { return }
        var skipped: [RegistrationKey] = []
        while running.count < settings.concurrentEvents, let key = readyQueue.popFirst() {
            guard let registration = registrations[key], registration.state == .pending else { continue }
            guard running[key] == nil, conditionsHold(for: registration) else {
                skipped.append(key)  // an unregistered twin still running, metered, or power
                continue
            }
            fire(registration)
        }
        readyQueue.prepend(skipped)
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
        running[key] = nil
        let interrupted = conditions.interrupting.remove(id) != nil
        defer { afterEvent(of: key) }
        guard !event.orphaned, var registration = registrations[key] else {
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
            if case .success = outcome { result = .succeeded } else { result = .retryScheduled }
            persist(registration, key: key)
        } else if key.kind == .periodic {
            result = finishPeriodic(&registration, outcome: outcome, startedAt: event.startedAt, now: now)
            persist(registration, key: key)
        } else {
            result = finishOneOff(&registration, outcome: outcome, now: now)
            persist(result == .retryScheduled ? registration : nil, key: key)
        }
        observer?.syncFinished(key, outcome: result, detail: outcome.detail)
    }

    private func finishOneOff(_ registration: inout Registration, outcome: HandlerOutcome, now: Date) -> SyncOutcome {
        switch outcome {
        case .success:
            return .succeeded
        case .failure(let detail):
            registration.lastError = detail
            return .failed
        case .retry(let after, let detail):
            registration.attempts += 1
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
        switch outcome {
        case .success:
            registration.attempts = 0
            registration.lastError = ""
            waitForNextInterval(&registration, from: startedAt, interval: interval)
            return .succeeded
        case .retry(let after, let detail) where registration.attempts + 1 < registration.maxAttempts:
            registration.attempts += 1
            registration.lastError = detail
            scheduleRetry(&registration, hint: after, now: now)
            return .retryScheduled
        case .retry(_, let detail), .failure(let detail):
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

    private func updatePeriodic(_ registration: inout Registration, interval: Double, now: Date) {
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
                registrations[key] = registration
                track(registration)
            } else {
                try store.delete(key, urgency: .background)
                registrations[key] = nil
            }
        } catch {
            observer?.storageFailed(error)
            registrations[key] = registration
            if let registration { track(registration) }
        }
    }

    private func clampedInterval(_ requested: Double?) -> Double {
        max(requested ?? settings.minPeriodicInterval, settings.minPeriodicInterval)
    }

    static func encodedSize(of options: [String: OptionValue]) -> Int {
        options.reduce(0) { $0 + $1.key.utf8.count + $1.value.approximateSize }
    }
}

/// A FIFO of keys without duplicates, cheap to pop from the front.
struct ReadyQueue {
    private var items: [RegistrationKey] = []
    private var head = 0
    private var members: Set<RegistrationKey> = []

    mutating func append(_ key: RegistrationKey) {
        if members.insert(key).inserted { items.append(key) }
    }

    mutating func popFirst() -> RegistrationKey? {
        guard head < items.count else { return nil }
        let key = items[head]
        head += 1
        members.remove(key)
        if head > 1024, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return key
    }

    /// Puts keys back at the front, in order (those skipped by one dispatch round).
    mutating func prepend(_ keys: [RegistrationKey]) {
        let fresh = keys.filter { members.insert($0).inserted }
        guard !fresh.isEmpty else { return }
        items.replaceSubrange(head..<head, with: fresh)
    }
}

extension OptionValue {
    /// The size a value takes, counted as D-Bus marshals it (near enough): what the options
    /// limit is about.
    var approximateSize: Int {
        switch self {
        case .bool, .int32, .uint32: 4
        case .byte: 1
        case .int16, .uint16: 2
        case .int64, .uint64, .double: 8
        case .string(let s), .objectPath(let s), .signature(let s): s.utf8.count + 5
        case .array(let type, let items): 4 + type.utf8.count + items.reduce(0) { $0 + $1.approximateSize }
        case .dictionary(_, _, let entries):
            4 + entries.reduce(0) { $0 + $1.key.approximateSize + $1.value.approximateSize }
        case .tuple(let items): items.reduce(0) { $0 + $1.approximateSize }
        case .variant(let inner): inner.typeString.utf8.count + 2 + inner.approximateSize
        }
    }
}
