import BGSyncCore
import Foundation
import GRDB

/// Registrations in `<directory>/registrations.sqlite3`, through GRDB on the system SQLite.
///
/// Every call is one transaction, durable when it returns: an acknowledged write commits with
/// `synchronous=FULL` (WAL synced at the commit), because a Register reply promises the
/// registration survives kill -9 and a reboot; a background write (an event's outcome, which
/// nobody waits for) commits with `synchronous=NORMAL`, safe from kill -9 and synced along with
/// the next acknowledged one. A file that is not a database or fails `PRAGMA quick_check` is reported, never emptied
/// or recreated. Used from one thread (the agent's loop), hence a single `DatabaseQueue`.
public final class SQLiteRegistrationStore: RegistrationStore {
    public static let fileName = "registrations.sqlite3"

    /// The database file.
    public let path: String
    private var queue: DatabaseQueue?
    /// The `synchronous` setting acknowledged writes use (`.full` but in the store's own tools).
    private let acknowledgedSynchronous: Synchronous
    private var currentSynchronous: Synchronous

    /// How a commit reaches the disk. Only the store's own tools pick anything but `.full`.
    package enum Synchronous: String {
        case full = "FULL"
        case normal = "NORMAL"
    }

    /// Opens or creates `<directory>/registrations.sqlite3`, creating the directory (mode 0700).
    public convenience init(directory: String) throws(SyncError) {
        try self.init(directory: directory, synchronous: .full)
    }

    package init(directory: String, synchronous: Synchronous) throws(SyncError) {
        path = (directory as NSString).appendingPathComponent(Self.fileName)
        try Self.makeDirectory(directory)
        let isNew = !FileManager.default.fileExists(atPath: path)

        var configuration = Configuration()
        configuration.label = "bgsync.registrations"
        // Another process (sqlite3, a backup) may hold the file briefly; wait rather than fail.
        configuration.busyMode = .timeout(2)
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw StoreFailure.error(error, path: path, doing: "opening the registration database")
        }
        do {
            try Self.prepare(queue, path: path, synchronous: synchronous)
        } catch {
            try? queue.close()
            throw error
        }
        self.queue = queue
        acknowledgedSynchronous = synchronous
        currentSynchronous = synchronous
        if isNew { Self.syncDirectory(directory) }
    }

    deinit { close() }

    public func loadAll() throws(SyncError) -> [Registration] {
        let queue = try openQueue()
        let rows: [Row]
        do {
            rows = try queue.read { db in try Row.fetchAll(db, sql: RegistrationRow.selectSQL) }
        } catch {
            throw StoreFailure.error(error, path: path, doing: "loading the registrations")
        }
        var registrations: [Registration] = []
        registrations.reserveCapacity(rows.count)
        for row in rows {
            do {
                registrations.append(try RegistrationRow.registration(from: row))
            } catch {
                let key = "\(String.fromDatabaseValue(row["app_id"]) ?? "?")/\(String.fromDatabaseValue(row["tag"]) ?? "?")"
                throw StoreFailure.unreadableRow(path: path, key: key, column: error.column, found: error.found)
            }
        }
        return registrations
    }

    public func save(_ registration: Registration, urgency: WriteUrgency) throws(SyncError) {
        let queue = try openQueue(for: urgency)
        let durable = registration.durable
        let optionsText = try RegistrationRow.encodeOptions(durable.options)
        let arguments = RegistrationRow.arguments(for: durable, optionsText: optionsText)
        do {
            try queue.write { db in try db.execute(sql: RegistrationRow.upsertSQL, arguments: arguments) }
        } catch {
            throw StoreFailure.error(error, path: path, doing: "saving \(registration.key)")
        }
    }

    public func delete(_ key: RegistrationKey, urgency: WriteUrgency) throws(SyncError) {
        let queue = try openQueue(for: urgency)
        do {
            try queue.write { db in
                try db.execute(
                    sql: "DELETE FROM \(StoreSchema.table) WHERE app_id = ? AND kind = ? AND tag = ?",
                    arguments: [key.appID, key.kind.rawValue, key.tag])
            }
        } catch {
            throw StoreFailure.error(error, path: path, doing: "deleting \(key)")
        }
    }

    /// The queue, with `synchronous` set for a write of this urgency (a pragma outside any
    /// transaction, changed only when the urgency differs from the last write's).
    private func openQueue(for urgency: WriteUrgency) throws(SyncError) -> DatabaseQueue {
        let queue = try openQueue()
        let wanted = urgency == .acknowledged ? acknowledgedSynchronous : .normal
        guard wanted != currentSynchronous else { return queue }
        do {
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(wanted.rawValue)") }
        } catch {
            throw StoreFailure.error(error, path: path, doing: "setting how writes reach the disk")
        }
        currentSynchronous = wanted
        return queue
    }

    /// Closes the file (checkpointing the log). Later calls throw. Safe to call twice.
    public func close() {
        guard let queue else { return }
        self.queue = nil
        // Closing checkpoints the log into the database file, syncing background writes too.
        try? queue.close()
    }

    // MARK: - Opening

    private func openQueue() throws(SyncError) -> DatabaseQueue {
        guard let queue else {
            throw SyncError(.storage, "The registration database \(path) was already closed; this is a bug in bgsyncd, please report it.")
        }
        return queue
    }

    private static func makeDirectory(_ directory: String) throws(SyncError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw SyncError(.storage, "Cannot keep registrations in \(directory): it exists and is not a directory. Move it aside, or set another state-dir in bgsyncd.conf.")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw SyncError(.storage, "Cannot create the state directory \(directory) (\(describe(error))). Check that you may write to its parent, or set another state-dir in bgsyncd.conf.")
        }
    }

    /// Checks the file, then switches on WAL and full syncs and brings the schema up to date.
    private static func prepare(_ queue: DatabaseQueue, path: String, synchronous: Synchronous) throws(SyncError) {
        let migrator = StoreSchema.migrator
        do {
            // Check before anything writes to the file.
            let problems = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            guard problems == ["ok"] else {
                throw StoreFailure.damaged(path: path, detail: "quick_check: " + problems.prefix(3).joined(separator: "; "))
            }
            if try queue.read({ db in try migrator.hasBeenSuperseded(db) }) {
                throw SyncError(.storage, "The registration database \(path) was written by a newer bgsync; this version cannot use it. Update bgsync, or move the file aside and restart.")
            }
            try queue.writeWithoutTransaction { db in
                let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                guard mode == "wal" else {
                    throw SyncError(.storage, "Cannot switch \(path) to write-ahead logging (SQLite kept journal mode '\(mode ?? "?")'). Put the state directory on a local file system.")
                }
                try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
            }
            try migrator.migrate(queue)
            // SQLite quietly opens a file it may not write read-only; find out now rather than at
            // the first Register. A write statement that changes nothing fails with SQLITE_READONLY
            // (BEGIN IMMEDIATE does not, in WAL mode).
            try queue.write { db in try db.execute(sql: "DELETE FROM \(StoreSchema.table) WHERE 0") }
        } catch let error as SyncError {
            throw error
        } catch {
            throw StoreFailure.error(error, path: path, doing: "opening the registration database")
        }
    }

    /// Makes a new file's directory entry durable too (SQLite syncs its journals' entries only).
    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = Glibc.close(fd)
    }

    private static func describe(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError, let underlying = cocoa.underlying as? POSIXError {
            return String(cString: strerror(underlying.code.rawValue))
        }
        return error.localizedDescription
    }

    // MARK: - For tests and measurements

    /// Caps the file at its current size plus `pages`, so writes past it fail with SQLITE_FULL:
    /// how the tests fill the disk without filling the disk.
    package func limitGrowth(toPages pages: Int) throws {
        try openQueue().writeWithoutTransaction { db in
            let current = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(current + pages)")
        }
    }

    package func pragma(_ name: String) throws -> String? {
        try openQueue().read { db in try String.fetchOne(db, sql: "PRAGMA \(name)") }
    }
}
