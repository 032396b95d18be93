// SPDX-License-Identifier: Apache-2.0
import struct Foundation.Date

// Conditions beyond "online": power, earliest start and expiry; what happens when a condition
// stops holding while an event runs; and the progress handlers report. All on the scheduler's
// thread, like the rest of it.
extension Scheduler {
    /// The power supply changed. Going back to a state a registration needs fires it; losing one
    /// stops the events that need it, as a lost network does.
    public func powerChanged(_ status: PowerStatus) {
        guard status != power else { return }
        power = status
        interruptUnsatisfied()
        afterChange()
    }

    /// Everything a registration needs right now besides a free slot: the network, the power
    /// option, and for a periodic one that did not say `power=any`, no power-saver profile.
    func conditionsHold(for registration: Registration) -> Bool {
        guard network.satisfies(registration.network) else { return false }
        guard power.satisfies(registration.power, threshold: settings.batteryLowThreshold) else { return false }
        if registration.key.kind == .periodic, power.powerSaver, registration.power != .any { return false }
        return true
    }

    /// Asks every running event whose conditions no longer hold to stop. Its outcome, unless it
    /// succeeded anyway, is `interrupted`: no attempt is counted, and it waits for them again.
    func interruptUnsatisfied() {
        for (key, event) in running where !event.orphaned && !conditions.interrupting.contains(event.id) {
            guard let registration = registrations[key], !conditionsHold(for: registration) else { continue }
            conditions.interrupting.insert(event.id)
            dispatcher.cancel(eventID: event.id, grace: settings.interruptGracePeriod)
        }
    }

    /// The end of an event that was interrupted, or that failed past its expiry; nil for any
    /// other (the ordinary rules apply). Writes what it decides.
    func finishInterruptedOrExpired(
        _ registration: inout Registration, interrupted: Bool, outcome: HandlerOutcome, now: Date
    ) -> SyncOutcome? {
        if outcome.succeeded { return nil }
        if let expiry = registration.expiresAt, expiry <= now {
            persist(nil, key: registration.key)
            return .expired
        }
        guard interrupted else { return nil }
        if registration.state == .reregisteredWhileFiring {
            registration.attempts = 0
            registration.lastError = ""
        }
        registration.state = .pending
        registration.nextAttempt = nil
        persist(registration, key: registration.key)
        return .interrupted
    }

    /// After an event ends: what was kept about a registration that is gone goes too, and what
    /// may run now starts.
    func afterEvent(of key: RegistrationKey) {
        if registrations[key] == nil { conditions.forget(key) }
        afterChange()
    }

    /// Removes the registrations whose `expires-after` has passed and that are not running
    /// (a running one is judged when it ends), with outcome `expired`.
    func expireDue(now: Date) {
        let due = registrations.values.filter { registration in
            guard let expiry = registration.expiresAt, expiry <= now else { return false }
            // A key a caller's batch is committing is judged at the next wake-up.
            guard committingKeys?.contains(registration.key) != true else { return false }
            return registration.state == .pending || registration.state == .waiting
        }
        for registration in due.sorted(by: { $0.sequence < $1.sequence }) {
            persist(nil, key: registration.key)
            conditions.forget(registration.key)
            observer?.syncFinished(
                registration.key, outcome: .expired, detail: "not done within its expires-after time")
        }
    }

    /// The earliest time the scheduler must look again: a waiting registration's next attempt, or
    /// an expiry of one that is not running.
    func earliestWakeup() -> Date? {
        var earliest: Date?
        for registration in registrations.values {
            if registration.state == .waiting, let due = registration.nextAttempt, earliest.map({ due < $0 }) ?? true {
                earliest = due
            }
            if registration.state == .pending || registration.state == .waiting, let expiry = registration.expiresAt,
                earliest.map({ expiry < $0 }) ?? true
            {
                earliest = expiry
            }
        }
        return earliest
    }

    // MARK: - Progress

    /// A handler reported progress on event `eventID` of `key`. Kept as the latest (for
    /// GetRegistration), and announced at most once per `progressSignalInterval` per registration.
    public func progressReported(key: RegistrationKey, eventID: UInt64, _ progress: SyncProgress) {
        guard let event = running[key], event.id == eventID, !event.orphaned else { return }
        conditions.progress[key] = progress
        let now = clock.now()
        if let last = conditions.progressAnnounced[key], now.timeIntervalSince(last) < settings.progressSignalInterval {
            return
        }
        conditions.progressAnnounced[key] = now
        observer?.syncProgress(key, progress)
    }

    /// The latest progress reported for the registration's current or last event.
    public func progress(_ key: RegistrationKey) -> SyncProgress? { conditions.progress[key] }

    /// A handler reported the bytes event `eventID` of `key` moved so far. Kept as the latest, with
    /// the rate (for GetRegistration), and announced at most once per `progressSignalInterval`
    /// per registration.
    public func transferReported(
        key: RegistrationKey, eventID: UInt64, sent: UInt64, received: UInt64, expected: UInt64
    ) {
        guard let event = running[key], event.id == eventID, !event.orphaned else { return }
        let now = clock.now()
        var transfer = TransferProgress(
            sent: sent, received: received, expected: expected, rate: conditions.transfers[key]?.rate ?? 0)
        if let sample = conditions.transferSamples[key] {
            let elapsed = now.timeIntervalSince(sample.at)
            if elapsed >= TransferProgress.rateWindow {
                let latest = Double(transfer.moved >= sample.moved ? transfer.moved - sample.moved : 0) / elapsed
                let weight = transfer.rate > 0 ? TransferProgress.rateWeight : 1
                transfer.rate = transfer.rate * (1 - weight) + latest * weight
                conditions.transferSamples[key] = (now, transfer.moved)
            }
        } else {
            conditions.transferSamples[key] = (now, transfer.moved)
        }
        conditions.transfers[key] = transfer
        if let last = conditions.transferAnnounced[key], now.timeIntervalSince(last) < settings.progressSignalInterval {
            return
        }
        conditions.transferAnnounced[key] = now
        observer?.syncTransfer(key, transfer)
    }

    /// The latest bytes reported for the registration's current or last event.
    public func transfer(_ key: RegistrationKey) -> TransferProgress? { conditions.transfers[key] }
}

extension ConditionState {
    mutating func forget(_ key: RegistrationKey) {
        progress[key] = nil
        progressAnnounced[key] = nil
        transfers[key] = nil
        transferSamples[key] = nil
        transferAnnounced[key] = nil
    }
}

extension Registration {
    /// Sets `expiresAt` and `notBefore` from the request's seconds-from-now (or clears them).
    mutating func applyTimes(of request: RegistrationRequest, now: Date) {
        power = request.power
        expiresAt = request.expiresAfter.map { now.addingTimeInterval($0) }
        notBefore = request.notBefore.map { now.addingTimeInterval($0) }
    }

    /// A pending registration whose earliest start is still ahead waits for it instead.
    mutating func holdUntilNotBefore(now: Date) {
        guard let start = notBefore, start > now, state == .pending || state == .waiting else { return }
        state = .waiting
        nextAttempt = max(nextAttempt ?? start, start)
    }
}

// MARK: - The user's say: apps switched off, and what each app did

extension Scheduler {
    /// The user switched apps off or on again. A switched-off app's registrations are held: none
    /// starts and no attempt is spent (an event already running finishes); `expires-after` still
    /// counts. Switched on again, what is due runs at once.
    public func permissionsChanged(_ denied: Set<String>) {
        guard denied != self.denied else { return }
        self.denied = denied
        afterChange()
    }

    public func isAllowed(_ appID: String) -> Bool { !denied.contains(appID) }

    /// Register, RegisterPeriodic and Trigger of an app the user switched off.
    func checkAllowed(_ appID: String) throws(SyncError) {
        guard denied.contains(appID) else { return }
        throw SyncError(
            .notAllowed,
            "The user switched \(appID) off: it may not sync in the background (\"Run in background\" in the "
                + "desktop's settings, or `bgsyncctl allow \(appID)`).")
    }

    /// Loads the stored history at start, dropping days before the window.
    func loadActivity() throws(SyncError) {
        var loaded = AppActivity()
        try store.forEachActivity { loaded.load($0) }
        for old in loaded.prune(now: clock.now()) {
            do throws(SyncError) { try store.deleteActivity(old) } catch { observer?.storageFailed(error) }
        }
        activity = loaded
    }

    /// An event of `key` ended: its bytes and outcome go into the app's day.
    func recordActivity(_ key: RegistrationKey, _ result: SyncOutcome, _ outcome: HandlerOutcome, now: Date) {
        for old in activity.pruneOncePerDay(now: now) {
            do throws(SyncError) { try store.deleteActivity(old) } catch { observer?.storageFailed(error) }
        }
        let day = activity.record(
            appID: key.appID, at: now, outcome: result, bytesSent: outcome.bytesSent,
            bytesReceived: outcome.bytesReceived)
        do throws(SyncError) { try store.saveActivity(day) } catch { observer?.storageFailed(error) }
    }

    /// Every app with registrations or history, as ListApps shows it: one scan of the table.
    public func appSummaries() -> [String: AppSummary] {
        var apps: [String: AppSummary] = [:]
        for registration in registrations.values {
            var summary = apps[registration.key.appID] ?? AppSummary()
            summary.registrations += 1
            switch registration.state {
            case .pending, .waiting: summary.waiting += 1
            case .firing, .reregisteredWhileFiring: break
            }
            apps[registration.key.appID] = summary
        }
        for key in running.keys { apps[key.appID, default: AppSummary()].running += 1 }
        for appID in activity.appIDs where apps[appID] == nil { apps[appID] = AppSummary() }
        let now = clock.now()
        for appID in Array(apps.keys) {
            apps[appID]?.allowed = isAllowed(appID)
            if var summary = apps[appID] {
                activity.summarize(appID, into: &summary, now: now)
                apps[appID] = summary
            }
        }
        return apps
    }

    /// One app's summary (for a sandboxed caller, who sees only its own), nil when it has
    /// neither registrations nor history.
    public func appSummary(_ appID: String) -> AppSummary? {
        var summary = AppSummary()
        var known = false
        // Like GetTags: one scan for an app that has registrations, none for one that has none.
        if perApp[ExactText(appID)] != nil {
            for registration in registrations.values where registration.key.appID == appID {
                known = true
                summary.registrations += 1
                if registration.state == .pending || registration.state == .waiting { summary.waiting += 1 }
            }
        }
        for key in running.keys where key.appID == appID {
            known = true
            summary.running += 1
        }
        if activity.appIDs.contains(appID) { known = true }
        guard known else { return nil }
        summary.allowed = isAllowed(appID)
        activity.summarize(appID, into: &summary, now: clock.now())
        return summary
    }
}
