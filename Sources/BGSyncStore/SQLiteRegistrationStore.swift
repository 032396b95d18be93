// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import GRDB

/// Registrations in `<directory>/registrations.sqlite3`, through GRDB on the system SQLite.
///
/// Callers' changes arrive as batches (`commit`): one transaction with `synchronous=FULL` (WAL
/// synced at the commit), because a Register reply promises the registration survives kill -9 and
/// a reboot. Background writes (an event's outcome, which nobody waits for) are held until
/// `flush()` (the agent calls it once per loop iteration) or the next batch, then committed
/// together with `synchronous=NORMAL`: safe from kill -9 and synced along with the next batch.
/// A file that is not a database, fails `PRAGMA quick_check`, or has a damaged frame in its
/// write-ahead log is repaired when the store opens (`DatabaseRepair`): kept aside byte for
/// byte, what can still be read is saved into a new file, and `repair` says what happened.
///
/// Made with a `deliver` function (the agent's: post to its loop), writes run on GRDB's own
/// serial queue and their completions are delivered through it, so the owner's thread never
/// waits on the disk. Without one, every write is made before the call returns.
/// Thread use: everything but the database queue's closures on the owner's thread; the
/// `synchronous` setting is touched only inside those closures, which GRDB runs one at a time.
public final class SQLiteRegistrationStore: RegistrationStore, @unchecked Sendable {
    public static let fileName = "registrations.sqlite3"
    public typealias Deliver = @Sendable (@escaping @Sendable () -> Void) -> Void

    /// The database file.
    public let path: String
    private var queue: DatabaseQueue?
    /// The `synchronous` setting acknowledged writes use (`.full` but in the store's own tools).
    private let acknowledgedSynchronous: Synchronous
    private let currentSynchronous: SynchronousSetting
    private let deliver: Deliver?
    /// Background writes not yet handed to the database queue.
    private var held: [StoreWrite] = []
    /// A background write was made since the last `flush` that had one.
    private var unflushed = false
    /// Called (through `deliver`) when held background writes could not be written.
    public var onBackgroundFailure: ((SyncError) -> Void)?
    /// The repair made when the store opened (or loaded its rows), if the file was damaged.
    public private(set) var repair: StoreRepair?

    /// How a commit reaches the disk. Only the store's own tools pick anything but `.full`.
    package enum Synchronous: String, Sendable {
        case full = "FULL"
        case normal = "NORMAL"
    }

    private final class SynchronousSetting: @unchecked Sendable {
        var value: Synchronous
        init(_ value: Synchronous) { self.value = value }
    }

    /// Opens or creates `<directory>/registrations.sqlite3`, creating the directory (mode 0700).
    /// `deliver` runs a completion on the owner's thread; nil makes every write synchronous.
    public convenience init(directory: String, deliver: Deliver? = nil) throws(SyncError) {
        try self.init(directory: directory, synchronous: .full, deliver: deliver)
    }

    package init(directory: String, synchronous: Synchronous, deliver: Deliver? = nil) throws(SyncError) {
        path = (directory as NSString).appendingPathComponent(Self.fileName)
        try Self.makeDirectory(directory)
        let isNew = !FileManager.default.fileExists(atPath: path)
        if !isNew, let damage = Self.damage(path) {
            repair = try DatabaseRepair.repair(path: path, damage: damage, now: Date())
        } else {
            repair = nil
        }

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
        self.deliver = deliver
        acknowledgedSynchronous = synchronous
        currentSynchronous = SynchronousSetting(synchronous)
        if isNew { Self.syncDirectory(directory) }
    }

    deinit { close() }

    /// Streams the rows through a cursor: only one row is converted at a time (materialising all
    /// 100,000 GRDB rows first was most of the 150 MiB peak of a large start).
    ///
    /// A row that fails its checks (damage `quick_check` does not see, such as a value garbled on
    /// an overflow page, or a bad edit) is not handed over: after the pass the file is copied
    /// aside as a damaged one and those rows are deleted (`removeUnreadable`), and `repair` says so.
    public func forEachStored(_ each: (Registration) -> Void) throws(SyncError) {
        let queue = try openQueue()
        var bad: [UnreadableRow] = []
        var good = 0
        do {
            try queue.read { db in
                let statement = try db.makeStatement(sql: RegistrationRow.selectSQL)
                let row = RegistrationRow.ColumnReader(statement: statement.sqliteStatement)
                // The cursor steps the statement; each row is read from it in place.
                let rows = try Row.fetchCursor(statement)
                while try rows.next() != nil {
                    do throws(RegistrationRow.BadColumn) {
                        each(try RegistrationRow.registration(from: row))
                        good += 1
                    } catch {
                        bad.append(
                            UnreadableRow(
                                rowid: row.rowid, key: RegistrationRow.describeKey(row), appID: row.anyText(.appID),
                                column: error))
                    }
                }
            }
        } catch {
            throw StoreFailure.error(error, path: path, doing: "loading the registrations")
        }
        if !bad.isEmpty { try removeUnreadable(bad, saved: good) }
    }

    private struct UnreadableRow {
        var rowid: Int64
        var key: String
        var appID: String?
        var column: RegistrationRow.BadColumn
    }

    /// Copies the file aside as a damaged one (after a checkpoint, so the copy holds every
    /// commit), then deletes the rows that failed their checks. If the copy cannot be made, the
    /// rows stay and loading fails naming the first.
    private func removeUnreadable(_ bad: [UnreadableRow], saved: Int) throws(SyncError) {
        let queue = try openQueue()
        let first = bad[0]
        let damage =
            "\(bad.count) row(s) that fail their checks, the first: column \(first.column.column) of \(first.key) is \(first.column.found)"
        let now = Date()
        let path = path
        var kept = ""
        do {
            try queue.writeWithoutTransaction { db in
                let checkpoint = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                // (busy, log frames, frames checkpointed): not busy, and the log emptied.
                let busy: Int = checkpoint?[0] ?? 1
                let frames: Int = checkpoint?[1] ?? 1
                guard busy == 0, frames <= 0 else {
                    throw SyncError(.storage, "the write-ahead log could not be emptied into it first")
                }
                kept = try DatabaseRepair.keepCopy(path, now: now)
                try db.inTransaction {
                    for row in bad {
                        try db.execute(sql: "DELETE FROM \(StoreSchema.table) WHERE rowid = ?", arguments: [row.rowid])
                    }
                    return .commit
                }
            }
        } catch {
            let unreadable = StoreFailure.unreadableRow(
                path: path, key: first.key, column: first.column.column, found: first.column.found)
            let reason =
                (error as? SyncError)?.message ?? StoreFailure.error(error, path: path, doing: "removing it").message
            throw SyncError(
                .storage, unreadable.message + " bgsyncd could not set the file aside to remove it: \(reason)")
        }
        DatabaseRepair.prune(path)
        var lostByApp: [String: Int] = [:]
        for row in bad { lostByApp[row.appID ?? "?", default: 0] += 1 }
        repair = StoreRepair(
            damage: damage, keptFiles: [kept], saved: saved, lostByApp: lostByApp, time: now, lossFullyKnown: true)
    }

    public func storedCount() -> Int? {
        try? queue?.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(StoreSchema.table)") }
    }

    public func save(_ registration: Registration, urgency: WriteUrgency) throws(SyncError) {
        try write(.save(registration.durable), urgency: urgency, doing: "saving \(registration.key)")
    }

    public func delete(_ key: RegistrationKey, urgency: WriteUrgency) throws(SyncError) {
        try write(.delete(key), urgency: urgency, doing: "deleting \(key)")
    }

    public func forEachActivity(_ each: (ActivityDay) -> Void) throws(SyncError) {
        let queue = try openQueue()
        do {
            try queue.read { db in
                let rows = try Row.fetchCursor(db, sql: ActivityRow.selectSQL)
                while let row = try rows.next() { each(ActivityRow.day(from: row)) }
            }
        } catch {
            throw StoreFailure.error(error, path: path, doing: "loading the sync history")
        }
    }

    public func saveActivity(_ day: ActivityDay) throws(SyncError) {
        try write(.saveActivity(day), urgency: .background, doing: "recording the sync history of \(day.appID)")
    }

    public func deleteActivity(_ day: ActivityDay) throws(SyncError) {
        try write(.deleteActivity(day), urgency: .background, doing: "pruning the sync history of \(day.appID)")
    }

    private func write(_ change: StoreWrite, urgency: WriteUrgency, doing: String) throws(SyncError) {
        let queue = try openQueue()
        if urgency == .background, deliver != nil {
            held.append(change)
            unflushed = true
            return
        }
        let writes = held + [change]
        held = []
        do {
            try queue.writeWithoutTransaction { db in try self.transaction(writes, urgency: urgency, db) }
        } catch {
            throw StoreFailure.error(error, path: path, doing: doing)
        }
    }

    public func commit(_ writes: [StoreWrite], completion: @escaping (SyncError?) -> Void) {
        let queue: DatabaseQueue
        do {
            queue = try openQueue()
        } catch {
            return completion(error)
        }
        let all = held + writes
        let background = held.count
        held = []
        let doing = writes.count == 1 ? Self.describe(writes[0]) : "saving \(writes.count) changes"
        guard let deliver else {
            do {
                try queue.writeWithoutTransaction { db in try self.transaction(all, urgency: .acknowledged, db) }
                completion(nil)
            } catch {
                completion(StoreFailure.error(error, path: path, doing: doing))
            }
            return
        }
        let reply = UncheckedBox(completion)
        let path = path
        let onBackgroundFailure = UncheckedBox(onBackgroundFailure)
        queue.asyncWriteWithoutTransaction { db in
            var failure: SyncError?
            do {
                try self.transaction(all, urgency: .acknowledged, db)
            } catch {
                failure = StoreFailure.error(error, path: path, doing: doing)
            }
            let result = UncheckedBox(failure)
            deliver {
                if let error = result.value, background > 0 { onBackgroundFailure.value?(error) }
                reply.value(result.value)
            }
        }
    }

    /// Hands the held background writes to the database queue, in one transaction, and calls
    /// `written` (on the owner's thread) once every background write made so far has reached
    /// the file (or failed, reported through `onBackgroundFailure`): at once when none was made
    /// since the last flush. What was announced after `written` survives kill -9.
    public func flush(written: @escaping () -> Void = {}) {
        guard unflushed, let queue, let deliver else { return written() }
        unflushed = false
        let writes = held  // may be empty: a commit took them along; its transaction is queued before
        held = []
        let path = path
        let onBackgroundFailure = UncheckedBox(onBackgroundFailure)
        let done = UncheckedBox(written)
        queue.asyncWriteWithoutTransaction { db in
            var failure: SyncError?
            if !writes.isEmpty {
                do {
                    try self.transaction(writes, urgency: .background, db)
                } catch {
                    failure = StoreFailure.error(error, path: path, doing: "recording \(writes.count) outcomes")
                }
            }
            let result = UncheckedBox(failure)
            deliver {
                if let error = result.value { onBackgroundFailure.value?(error) }
                done.value()
            }
        }
    }

    /// One transaction of `writes`, with `synchronous` set for the urgency (a pragma outside any
    /// transaction, changed only when it differs from the last write's). On the database queue.
    private func transaction(_ writes: [StoreWrite], urgency: WriteUrgency, _ db: Database) throws {
        let wanted = urgency == .acknowledged ? acknowledgedSynchronous : .normal
        if wanted != currentSynchronous.value {
            try db.execute(sql: "PRAGMA synchronous = \(wanted.rawValue)")
            currentSynchronous.value = wanted
        }
        try db.inTransaction {
            for write in writes {
                switch write {
                case .save(let registration):
                    let options = try RegistrationRow.encodeOptions(registration.options)
                    let arguments = RegistrationRow.arguments(for: registration, optionsText: options)
                    // Prepared once per connection: parsing and compiling the upsert for every
                    // write was most of the store thread's own time under 16 registering clients.
                    try db.cachedStatement(sql: RegistrationRow.upsertSQL).execute(arguments: arguments)
                case .delete(let key):
                    try db.cachedStatement(sql: Self.deleteSQL).execute(
                        arguments: [key.appID, key.kind.rawValue, key.tag])
                case .saveActivity(let day):
                    try db.cachedStatement(sql: ActivityRow.upsertSQL).execute(arguments: ActivityRow.arguments(day))
                case .deleteActivity(let day):
                    try db.cachedStatement(sql: ActivityRow.deleteSQL).execute(arguments: [day.appID, day.day])
                }
            }
            return .commit
        }
    }

    private static let deleteSQL = "DELETE FROM \(StoreSchema.table) WHERE app_id = ? AND kind = ? AND tag = ?"

    private static func describe(_ write: StoreWrite) -> String {
        switch write {
        case .save(let registration): "saving \(registration.key)"
        case .delete(let key): "deleting \(key)"
        case .saveActivity(let day), .deleteActivity(let day): "recording the sync history of \(day.appID)"
        }
    }

    /// Closes the file (checkpointing the log). Later calls throw. Safe to call twice.
    public func close() {
        guard let queue else { return }
        if !held.isEmpty {
            let writes = held
            held = []
            try? queue.writeWithoutTransaction { db in try self.transaction(writes, urgency: .background, db) }
        }
        self.queue = nil
        // Closing checkpoints the log into the database file, syncing background writes too.
        try? queue.close()
    }

    // MARK: - Opening

    private func openQueue() throws(SyncError) -> DatabaseQueue {
        guard let queue else {
            throw SyncError(
                .storage,
                "The registration database \(path) was already closed; this is a bug in bgsyncd, please report it.")
        }
        return queue
    }

    private static func makeDirectory(_ directory: String) throws(SyncError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw SyncError(
                    .storage,
                    "Cannot keep registrations in \(directory): it exists and is not a directory. Move it aside, or set another state-dir in bgsyncd.conf."
                )
            }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw SyncError(
                .storage,
                "Cannot create the state directory \(directory) (\(describe(error))). Check that you may write to its parent, or set another state-dir in bgsyncd.conf."
            )
        }
    }

    /// How the existing file at `path` is damaged, or nil if it is not (or cannot be opened to
    /// tell: opening it for real then reports why). Read-only: a read-write connection would
    /// checkpoint the log into the damaged file as it closes, and delete the log.
    private static func damage(_ path: String) -> String? {
        if let log = DatabaseRepair.readFile(path + "-wal"), let wal = PageSalvage.WALLog(log) {
            let survey = wal.survey()
            // SQLite reads a log up to its first frame that fails its checksum and silently
            // drops every commit after it: registrations that were acknowledged.
            if survey.droppedCommits > 0 {
                return "\(survey.damagedFrames) damaged frame(s) in its write-ahead log, "
                    + "which would hide the \(survey.droppedCommits) commit(s) after them"
            }
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "bgsync.check"
        // Opening a WAL database creates an empty -wal and -shm; remove those this check made, so
        // that a damaged file is kept with exactly the files it had.
        let hadLog = access(path + "-wal", F_OK) == 0 || access(path + "-shm", F_OK) == 0
        defer {
            var status = stat()
            if !hadLog, stat(path + "-wal", &status) == 0, status.st_size == 0 {
                unlink(path + "-wal")
                unlink(path + "-shm")
            }
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            let problems = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            return problems == ["ok"] ? nil : "quick_check: " + problems.prefix(3).joined(separator: "; ")
        } catch let error as DatabaseError where [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(error.resultCode) {
            return error.message ?? "\(error.resultCode)"
        } catch {
            return nil
        }
    }

    /// Switches on WAL and full syncs and brings the schema up to date (`damage` checked the file).
    private static func prepare(_ queue: DatabaseQueue, path: String, synchronous: Synchronous) throws(SyncError) {
        let migrator = StoreSchema.migrator
        do {
            if try queue.read({ db in try migrator.hasBeenSuperseded(db) }) {
                throw SyncError(
                    .storage,
                    "The registration database \(path) was written by a newer bgsync; this version cannot use it. Update bgsync, or move the file aside and restart."
                )
            }
            try queue.writeWithoutTransaction { db in
                let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                guard mode == "wal" else {
                    throw SyncError(
                        .storage,
                        "Cannot switch \(path) to write-ahead logging (SQLite kept journal mode '\(mode ?? "?")'). Put the state directory on a local file system."
                    )
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

/// Carries a value the compiler cannot prove `Sendable` to the database queue and back; each is
/// used on one thread at a time (a completion is only ever run on the owner's thread).
private final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
