// SPDX-License-Identifier: Apache-2.0
import struct Foundation.Date

// The core's view of the outside world. Each port has a real implementation in a platform
// module and a fake in BGSyncTestSupport. All calls happen on the scheduler's thread.

/// Wall-clock time and the scheduler's single wake-up timer.
public protocol SchedulerClock: AnyObject {
    func now() -> Date
    /// Arms the one wake-up at `date`, replacing any armed one; `nil` disarms it. When it fires,
    /// the clock calls `onWakeup` once. The wake-up follows the wall clock (it fires at the right
    /// time after a suspend or a clock change).
    func armWakeup(at date: Date?)
    var onWakeup: (() -> Void)? { get set }
}

/// Who waits for a write, which decides how hard it is pushed to the disk.
public enum WriteUrgency: Sendable, Equatable {
    /// A caller's reply waits on it: on the disk itself (synced) before the call returns.
    case acknowledged
    /// Nobody waits (an event's outcome): it survives the agent being killed but may be lost to
    /// a power cut, never half-written. Losing it only makes a sync run again, which
    /// at-least-once delivery allows; the next acknowledged write syncs it along.
    case background
}

/// One change in a caller's batch (see `RegistrationStore.commit`).
public enum StoreWrite: Sendable, Equatable {
    /// Inserts or replaces the registration with the same key.
    case save(Registration)
    case delete(RegistrationKey)
    /// Inserts or replaces one day of an app's activity (never in a caller's batch).
    case saveActivity(ActivityDay)
    case deleteActivity(ActivityDay)
}

/// Durable storage of registrations, throwing a `SyncError` with code `.storage` (naming the file)
/// when a write cannot be made.
public protocol RegistrationStore: AnyObject {
    /// Hands every stored registration to `each`, one at a time (a cursor: the store never holds
    /// them all at once).
    func forEachStored(_ each: (Registration) -> Void) throws(SyncError)
    /// How many `forEachStored` will hand over, when the store knows it cheaply (to size tables once).
    func storedCount() -> Int?
    /// A write nobody waits for (`.background`), or a lone acknowledged one. A background write
    /// may be held and written with the store's next flush or commit, in the order it was made;
    /// a failure found then is the store's to report.
    func save(_ registration: Registration, urgency: WriteUrgency) throws(SyncError)
    func delete(_ key: RegistrationKey, urgency: WriteUrgency) throws(SyncError)
    /// Group commit: `writes` in one transaction, on the disk itself (synced) before `completion`
    /// runs, once, on the scheduler's thread, with nil, or with the error when none of them was
    /// made. Runs after every write made before it. `completion` may run before `commit` returns
    /// (a store with no disk) or later (the commit on another thread).
    func commit(_ writes: [StoreWrite], completion: @escaping (SyncError?) -> Void)
    /// Hands every stored day of app activity (ListApps' history) to `each`.
    func forEachActivity(_ each: (ActivityDay) -> Void) throws(SyncError)
    /// Writes one day of an app's activity (replacing the stored one), or deletes it; nobody
    /// waits for either (`.background`).
    func saveActivity(_ day: ActivityDay) throws(SyncError)
    func deleteActivity(_ day: ActivityDay) throws(SyncError)
}

extension RegistrationStore {
    public func storedCount() -> Int? { nil }

    /// A store without history: ListApps then knows only what runs now.
    public func forEachActivity(_ each: (ActivityDay) -> Void) throws(SyncError) {}
    public func saveActivity(_ day: ActivityDay) throws(SyncError) {}
    public func deleteActivity(_ day: ActivityDay) throws(SyncError) {}

    public func save(_ registration: Registration) throws(SyncError) { try save(registration, urgency: .acknowledged) }
    public func delete(_ key: RegistrationKey) throws(SyncError) { try delete(key, urgency: .acknowledged) }

    /// Everything stored, in one array (tests and tools; the agent streams with `forEachStored`).
    public func loadAll() throws(SyncError) -> [Registration] {
        var all: [Registration] = []
        try forEachStored { all.append($0) }
        return all
    }
}

/// Runs events in handlers.
public protocol EventDispatcher: AnyObject {
    /// Starts `event`. `completion` must be called exactly once, later, on the scheduler's
    /// thread, whatever happens to the handler (a crash or the time cap is a `.retry`).
    func dispatch(_ event: SyncEvent, completion: @escaping (HandlerOutcome) -> Void)
    /// Asks the running event `eventID` to stop (a condition it needs was lost); a handler still
    /// running `grace` seconds later is killed. Its completion comes as usual. Unknown or
    /// finished events are ignored.
    func cancel(eventID: UInt64, grace: Double)
}

/// Follows the network. Calls `onChange` on the scheduler's thread after every change.
public protocol NetworkMonitor: AnyObject {
    var status: NetworkStatus { get }
    var onChange: ((NetworkStatus) -> Void)? { get set }
    func start()
}

/// Hears what the scheduler does, for the bus signals and the log.
public protocol SyncObserver: AnyObject {
    func syncStarted(_ event: SyncEvent)
    func syncFinished(_ key: RegistrationKey, outcome: SyncOutcome, detail: String)
    /// A write that no caller was waiting for failed (the registration stays in memory and is
    /// retried on the next change).
    func storageFailed(_ error: SyncError)
    /// A running event reported progress (rate-limited by the scheduler).
    func syncProgress(_ key: RegistrationKey, _ progress: SyncProgress)
    /// A running event reported bytes moved (rate-limited by the scheduler).
    func syncTransfer(_ key: RegistrationKey, _ transfer: TransferProgress)
}

extension SyncObserver {
    public func syncProgress(_ key: RegistrationKey, _ progress: SyncProgress) {}
    public func syncTransfer(_ key: RegistrationKey, _ transfer: TransferProgress) {}
}

/// Follows the power supply (UPower, power-profiles-daemon). Calls `onChange` on the
/// scheduler's thread after every change.
public protocol PowerMonitor: AnyObject {
    var status: PowerStatus { get }
    var onChange: ((PowerStatus) -> Void)? { get set }
    func start()
}

/// Which apps the user switched off (the desktop's permission store: GNOME Settings' "Run in
/// background", `bgsyncctl deny`). Calls `onChange` on the scheduler's thread after every change.
/// An app not named is allowed: no store, or no entry, means allowed.
public protocol AppPermissions: AnyObject {
    /// The apps switched off now.
    var denied: Set<String> { get }
    var onChange: ((Set<String>) -> Void)? { get set }
    /// Reads the current state (before the scheduler starts, so nothing runs that is switched off)
    /// and follows its changes.
    func start()
}

extension PowerMonitor {
    /// Reads the power supply afresh (after a resume); a change comes through `onChange` as usual.
    public func refresh() {}
}

/// The machine's sleep (logind): says when it is about to sleep and when it woke, and holds a
/// "delay" lock on sleep while the scheduler asks for one (while events run), so that they can be
/// stopped before it sleeps. Calls `onPrepareForSleep` on the scheduler's thread.
public protocol SleepMonitor: AnyObject {
    /// true: the machine is about to sleep (running events must stop, and the lock go, within
    /// the monitor's delay); false: it woke up (or the sleep was called off).
    var onPrepareForSleep: ((Bool) -> Void)? { get set }
    /// How long events asked to stop before sleep may take before they are killed: short enough
    /// that they end, and the lock goes, well inside the delay the system allows.
    var stopGrace: Double { get }
    /// Takes (true) or releases (false) the delay lock. Idempotent.
    func holdSleepDelay(_ hold: Bool)
    func start()
}
