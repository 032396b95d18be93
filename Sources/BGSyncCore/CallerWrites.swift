// SPDX-License-Identifier: Apache-2.0
/// Group commit of what callers change (Register, RegisterPeriodic, Unregister, Trigger).
///
/// A caller's operation is queued; when no commit is in flight, every queued operation is worked
/// out against memory plus the batch so far, and the batch's writes go to the store in one
/// transaction (one sync for all of them). Memory changes, and every caller of the batch hears
/// back, only once that transaction is on the disk; a failed commit changes nothing and answers
/// each caller that would have written with the store's error. Operations that arrive meanwhile
/// form the next batch. Measured on the 2-core test machine: one sync costs 70-140 µs, about
/// half of a lone Register's round trip (BENCHMARKS.md).
extension Scheduler {
    enum CallerOperation {
        case register(RegistrationRequest, maxAttempts: UInt32)
        case unregister(RegistrationKey)
        case trigger(appID: String, tag: String)

        var appID: String {
            switch self {
            case .register(let request, _): request.key.appID
            case .unregister(let key): key.appID
            case .trigger(let appID, _): appID
            }
        }
    }

    /// How many of one app's operations one batch takes (fairness, see `startBatch`). Measured
    /// with one app flooding Register (256 in flight) and another making one call at a time: the
    /// quiet app's p99 was 18x its p99 without the flood with whole batches, 3-14x with 32 per
    /// batch, 2.7x with 8 (4.8x under AddressSanitizer); see BENCHMARKS.md.
    static let operationsPerAppPerBatch = 8

    /// An operation and how to answer it: `true`/`false` is Unregister's answer, ignored by the others.
    struct QueuedOperation {
        var operation: CallerOperation
        var reply: (Result<Bool, SyncError>) -> Void
    }

    /// A batch in the making: memory as the batch leaves it, for the keys it touches.
    private struct Batch {
        enum Staged {
            case saved(Registration)
            case deleted
        }
        var staged: [RegistrationKey: Staged] = [:]
        var order: [RegistrationKey] = []
        var countChange: [ExactText: Int] = [:]
        var answers: [(reply: (Result<Bool, SyncError>) -> Void, result: Result<Bool, SyncError>, writes: Bool)] = []

        mutating func stage(_ key: RegistrationKey, _ value: Staged, existedBefore: Bool) {
            if staged.updateValue(value, forKey: key) == nil { order.append(key) }
            let existsNow = if case .saved = value { true } else { false }
            if existsNow != existedBefore { countChange[key.app, default: 0] += existsNow ? 1 : -1 }
        }
    }

    // MARK: - Caller operations

    /// Register or RegisterPeriodic, with the spec's semantics for an existing tag. `reply` runs
    /// once, on the scheduler's thread: nil once the registration is durable, or the error.
    public func register(_ request: RegistrationRequest, reply: @escaping (SyncError?) -> Void) {
        let maxAttempts: UInt32
        do throws(SyncError) {
            maxAttempts = try validate(request)
            try checkAllowed(request.key.appID)
            // Over its quota with no Unregister of its own in flight (only that could make room):
            // answered now, not queued behind commits (an app flooding past its quota costs no
            // one a commit, and its refusals no wait).
            if registrations[request.key] == nil, unregistersPerApp[request.key.app, default: 0] == 0 {
                try checkQuota(appID: request.key.appID, owned: perApp[request.key.app, default: 0])
            }
        } catch {
            return reply(error)
        }
        enqueue(.register(request, maxAttempts: maxAttempts)) { reply($0.failure) }
    }

    /// Removes a registration: `reply` gets false when there was nothing to remove. A running
    /// event finishes, is not retried, and ends `cancelled`.
    public func unregister(_ key: RegistrationKey, reply: @escaping (Result<Bool, SyncError>) -> Void) {
        enqueue(.unregister(key), reply: reply)
    }

    /// Fires now, skipping any back-off wait (or, for a periodic one, the rest of its interval),
    /// but not the network requirement. Looks at the one-off tag first, then the periodic one.
    public func trigger(appID: String, tag: String, reply: @escaping (SyncError?) -> Void) {
        do throws(SyncError) {
            try checkAllowed(appID)
        } catch {
            return reply(error)
        }
        enqueue(.trigger(appID: appID, tag: tag)) { reply($0.failure) }
    }

    // The same, for a store that commits before `commit` returns (the tests' MemoryStore, tools).

    public func register(_ request: RegistrationRequest) throws(SyncError) {
        try inline { register(request, reply: $0) }
    }

    public func unregister(_ key: RegistrationKey) throws(SyncError) -> Bool {
        var answer: Result<Bool, SyncError>?
        unregister(key) { answer = $0 }
        guard let answer else { preconditionFailure("unregister(_:) needs a store that commits inline") }
        return try answer.get()
    }

    public func trigger(appID: String, tag: String) throws(SyncError) {
        try inline { trigger(appID: appID, tag: tag, reply: $0) }
    }

    private func inline(_ operation: (@escaping (SyncError?) -> Void) -> Void) throws(SyncError) {
        var answer: SyncError??
        operation { answer = .some($0) }
        guard let answer else { preconditionFailure("a blocking caller operation needs a store that commits inline") }
        if let error = answer { throw error }
    }

    // MARK: - Batches

    private func enqueue(_ operation: CallerOperation, reply: @escaping (Result<Bool, SyncError>) -> Void) {
        if case .unregister(let key) = operation { unregistersPerApp[key.app, default: 0] += 1 }
        queuedOperations.append(QueuedOperation(operation: operation, reply: reply))
        startBatch()
    }

    /// Commits what is queued, unless a commit is in flight (its completion calls this again).
    func startBatch() {
        guard committingKeys == nil, !queuedOperations.isEmpty else { return }
        // Fair shares: at most `operationsPerAppPerBatch` of one app's operations per batch, in
        // order; the rest wait for the next. An app with hundreds in flight then delays another
        // app's write by about two small commits, not by two commits of everything it sent.
        var operations: [QueuedOperation] = []
        var later: [QueuedOperation] = []
        var taken: [ExactText: Int] = [:]
        for queued in queuedOperations {
            let appID = ExactText(queued.operation.appID)
            if taken[appID, default: 0] < Self.operationsPerAppPerBatch {
                taken[appID, default: 0] += 1
                operations.append(queued)
            } else {
                later.append(queued)
            }
        }
        queuedOperations = later
        var batch = Batch()
        for queued in operations {
            do throws(SyncError) {
                let (writes, answer) = try apply(queued.operation, to: &batch)
                batch.answers.append((queued.reply, .success(answer), writes))
            } catch {
                batch.answers.append((queued.reply, .failure(error), false))
            }
        }
        let writes = batch.order.map { key -> StoreWrite in
            if case .saved(let registration) = batch.staged[key]! { .save(registration.durable) } else { .delete(key) }
        }
        guard !writes.isEmpty else {
            finish(batch, operations: operations, error: nil)
            return
        }
        committingKeys = Set(batch.order)
        store.commit(writes) { [weak self] error in
            self?.finish(batch, operations: operations, error: error)
        }
    }

    /// The batch is durable (or failed): memory follows, the callers hear, the next batch starts.
    private func finish(_ batch: Batch, operations: [QueuedOperation], error: SyncError?) {
        committingKeys = nil
        if error == nil {
            for key in batch.order {
                switch batch.staged[key]! {
                case .saved(let registration):
                    setRegistration(key, registration)
                    track(registration)
                case .deleted:
                    setRegistration(key, nil)
                    orphanRunning(key)
                }
            }
        }
        for case .unregister(let key) in operations.map(\.operation) {
            let count = unregistersPerApp[key.app, default: 1] - 1
            unregistersPerApp[key.app] = count == 0 ? nil : count
        }
        for answer in batch.answers {
            if let error, answer.writes { answer.reply(.failure(error)) } else { answer.reply(answer.result) }
        }
        let held = heldCompletions
        heldCompletions = []
        for completion in held { completion() }
        afterChange()
        startBatch()
    }

    /// Works out one operation against memory plus the batch: whether it writes, and the answer
    /// (Unregister's: whether there was something to remove).
    private func apply(
        _ operation: CallerOperation, to batch: inout Batch
    ) throws(SyncError) -> (writes: Bool, answer: Bool) {
        func current(_ key: RegistrationKey) -> Registration? {
            switch batch.staged[key] {
            case .saved(let registration)?: registration
            case .deleted?: nil
            case nil: registrations[key]
            }
        }
        switch operation {
        case .register(let request, let maxAttempts):
            let existing = current(request.key)
            let registration: Registration
            if let existing {
                registration = updated(existing, by: request, maxAttempts: maxAttempts)
            } else {
                let owned = perApp[request.key.app, default: 0] + batch.countChange[request.key.app, default: 0]
                try checkQuota(appID: request.key.appID, owned: owned)
                registration = created(by: request, maxAttempts: maxAttempts)
            }
            batch.stage(request.key, .saved(registration), existedBefore: existing != nil)
            return (true, true)
        case .unregister(let key):
            guard current(key) != nil else { return (false, false) }
            batch.stage(key, .deleted, existedBefore: true)
            return (true, true)
        case .trigger(let appID, let tag):
            let keys = RegistrationKind.allCases.map { RegistrationKey(appID: appID, tag: tag, kind: $0) }
            guard let key = keys.first(where: { current($0) != nil }), var registration = current(key) else {
                throw SyncError(.notFound, "\(appID) has no registration with tag '\(tag)'.")
            }
            guard registration.state == .waiting else { return (false, true) }  // pending or running: fires anyway
            registration.state = .pending
            registration.nextAttempt = nil
            registration.holdUntilNotBefore(now: clock.now())  // a trigger skips back-off, not not-before
            batch.stage(key, .saved(registration), existedBefore: true)
            return (true, true)
        }
    }

    private func validate(_ request: RegistrationRequest) throws(SyncError) -> UInt32 {
        guard handlers[request.handler] != nil else {
            let known = handlers.keys.sorted().joined(separator: ", ")
            throw SyncError(
                .unknownHandler,
                "No handler named '\(request.handler)' is installed (installed: \(known.isEmpty ? "none" : known)).")
        }
        let maxAttempts = request.maxAttempts ?? settings.maxAttempts
        guard maxAttempts <= settings.maxAttemptsLimit else {
            throw .invalidArgument(
                "Option 'max-attempts' is \(maxAttempts); at most \(settings.maxAttemptsLimit) are allowed.")
        }
        let size = Self.encodedSize(of: request.options)
        guard size <= settings.maxOptionsBytes else {
            throw .invalidArgument(
                "The options take \(size) bytes; at most \(settings.maxOptionsBytes) are allowed. "
                    + "Pass large data as a file path."
            )
        }
        return maxAttempts
    }

    private func checkQuota(appID: String, owned: Int) throws(SyncError) {
        guard owned < settings.registrationsPerApp else {
            throw SyncError(
                .quotaExceeded,
                "\(appID) already has \(owned) registrations, the most one app may have; unregister some first.")
        }
    }

    private func updated(_ existing: Registration, by request: RegistrationRequest, maxAttempts: UInt32) -> Registration
    {
        var registration = existing
        registration.handler = request.handler
        registration.options = request.options
        registration.network = request.network
        registration.maxAttempts = maxAttempts
        registration.confinement = request.confinement  // the boundary of whoever registered last
        registration.applyTimes(of: request, now: clock.now())
        if request.key.kind == .periodic {
            updatePeriodic(&registration, interval: clampedInterval(request.minInterval), now: clock.now())
        } else {
            switch registration.state {
            case .pending: break  // coalesced: one sync for many registrations
            case .waiting:
                registration.state = .pending
                registration.nextAttempt = nil
            case .firing, .reregisteredWhileFiring:
                registration.state = .reregisteredWhileFiring
            }
            registration.holdUntilNotBefore(now: clock.now())
        }
        return registration
    }

    private func created(by request: RegistrationRequest, maxAttempts: UInt32) -> Registration {
        var registration = Registration(
            key: request.key, handler: request.handler, options: request.options, network: request.network,
            maxAttempts: maxAttempts, sequence: nextSequence, confinement: request.confinement)
        nextSequence += 1
        registration.applyTimes(of: request, now: clock.now())
        if request.key.kind == .periodic {
            let now = clock.now()
            let interval = clampedInterval(request.minInterval)
            registration.minInterval = interval
            registration.intervalStart = now
            registration.state = .waiting
            registration.nextAttempt = now.addingTimeInterval(interval)
        }
        registration.holdUntilNotBefore(now: clock.now())
        return registration
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}
