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

    public func loadAll() throws(SyncError) -> [Registration] { Array(rows.values) }

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
