// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// A store in memory that can be told to fail, for the pure scheduler tests.
public final class MemoryStore: RegistrationStore {
    public private(set) var rows: [RegistrationKey: Registration] = [:]
    public private(set) var writes = 0
    /// The urgency of every write, in order.
    public private(set) var urgencies: [WriteUrgency] = []
    /// When set, every write throws this error (a full disk, say).
    public var failure: SyncError?

    public init(_ registrations: [Registration] = []) {
        for registration in registrations { rows[registration.key] = registration }
    }

    /// When set, `commit` holds its batch until `completeCommits()` (a commit on a slow disk).
    public var holdCommits = false
    /// Each commit's writes, in order.
    public private(set) var commits: [[StoreWrite]] = []
    private var held: [(writes: [StoreWrite], completion: (SyncError?) -> Void)] = []

    public var heldCommits: Int { held.count }

    public func forEachStored(_ each: (Registration) -> Void) throws(SyncError) {
        for registration in rows.values { each(registration) }
    }

    public func commit(_ writes: [StoreWrite], completion: @escaping (SyncError?) -> Void) {
        held.append((writes, completion))
        if !holdCommits { completeCommits() }
    }

    /// Makes the held commits durable (or fails them with `failure`), oldest first.
    public func completeCommits() {
        while !held.isEmpty {
            let (batch, completion) = held.removeFirst()
            if let failure {
                completion(failure)
                continue
            }
            commits.append(batch)
            for write in batch {
                writes += 1
                urgencies.append(.acknowledged)
                switch write {
                case .save(let registration): rows[registration.key] = registration
                case .delete(let key): rows[key] = nil
                case .saveActivity(let day): activity[ActivityKey(day)] = day
                case .deleteActivity(let day): activity[ActivityKey(day)] = nil
                }
            }
            completion(nil)
        }
    }

    /// The stored history, by app and day (not counted in `writes`).
    public private(set) var activity: [ActivityKey: ActivityDay] = [:]

    public struct ActivityKey: Hashable, Sendable {
        public var appID: String
        public var day: Int64
        public init(_ day: ActivityDay) {
            appID = day.appID
            self.day = day.day
        }
    }

    public func forEachActivity(_ each: (ActivityDay) -> Void) throws(SyncError) {
        for day in activity.values { each(day) }
    }

    public func saveActivity(_ day: ActivityDay) throws(SyncError) {
        if let failure { throw failure }
        activity[ActivityKey(day)] = day
    }

    public func deleteActivity(_ day: ActivityDay) throws(SyncError) {
        if let failure { throw failure }
        activity[ActivityKey(day)] = nil
    }

    public func save(_ registration: Registration, urgency: WriteUrgency) throws(SyncError) {
        if let failure { throw failure }
        writes += 1
        urgencies.append(urgency)
        rows[registration.key] = registration
    }

    public func delete(_ key: RegistrationKey, urgency: WriteUrgency) throws(SyncError) {
        if let failure { throw failure }
        writes += 1
        urgencies.append(urgency)
        rows[key] = nil
    }
}
