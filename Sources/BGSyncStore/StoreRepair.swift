// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import GRDB

/// What the repair of a damaged registration database did: the store's answer to a file that is
/// not a database, fails `PRAGMA quick_check`, or has a write-ahead log whose damaged frame
/// would make SQLite drop the commits after it (`DatabaseRepair`); or to rows that fail their
/// checks as they load (`SQLiteRegistrationStore.forEachStored`: then the file is kept as a copy
/// and only those rows are lost).
public struct StoreRepair: Sendable, Equatable {
    /// What was wrong, in SQLite's words.
    public var damage: String
    /// The damaged file as it was, byte for byte, then its -wal (byte for byte) and -shm (an
    /// index SQLite rebuilds from the log, as the read-only check left it) if it had them.
    public var keptFiles: [String]
    /// Registrations read back and checked, now in the new file.
    public var saved: Int
    /// Registrations known to have been in the file (its primary-key index names them, or their
    /// row was found but failed its checks) and not saved, by app id. Rows on pages so damaged
    /// that nothing names them are lost without being counted.
    public var lostByApp: [String: Int]
    public var time: Date

    /// Whether every lost row is counted: true when rows were removed as they loaded, false
    /// after a repair from pages, where a row on a page nothing names is lost uncounted.
    public var lossFullyKnown = false

    public var lost: Int { lostByApp.values.reduce(0, +) }
    /// The damaged database file as kept.
    public var keptAs: String { keptFiles[0] }
}

/// Heals a damaged registration database: salvages every row that can still be read and passes
/// the store's own checks into a fresh file, keeps the damaged file aside under a name that says
/// so (`registrations.sqlite3.damaged-<UTC time>`, with `-wal`/`-shm` after it as SQLite names
/// them), and puts the fresh file in its place. What cannot be done safely (the directory not
/// writable, the disk full) throws a storage error and changes nothing.
enum DatabaseRepair {
    /// A whole file's bytes; nil (errno set) when it cannot be opened or read. Not
    /// FileManager.contents(atPath:): FoundationEssentials leaked its 4096-byte read buffer here
    /// (LeakSanitizer in check-asan, on the repair tests).
    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { return nil }
            if got == 0 { return bytes }
            bytes.append(contentsOf: buffer[0..<got])
        }
    }

    /// Damaged files kept at most (older ones are removed), so that a disk that keeps damaging
    /// the file cannot fill the directory with copies.
    static let keptAtMost = 3
    static let keptMarker = ".damaged-"

    static func repair(path: String, damage: String, now: Date) throws(SyncError) -> StoreRepair {
        let fail = { (reason: String) -> SyncError in
            SyncError(
                .storage,
                "The registration database \(path) is damaged (\(damage)) and bgsyncd could not repair it: \(reason). Nothing was changed."
            )
        }
        guard let database = readFile(path) else {
            throw fail("cannot read it (\(String(cString: strerror(errno))))")
        }
        let found = PageSalvage.scan(database: database, wal: readFile(path + "-wal"))
        let temporary = path + ".repairing"
        removeFamily(temporary)
        let outcome: (saved: Set<RegistrationKey>, rejected: [RegistrationKey])
        do {
            outcome = try fill(temporary, with: found)
        } catch {
            removeFamily(temporary)
            throw fail("cannot write a new database beside it, \(temporary) (\(describe(error)))")
        }
        var known = outcome.rejected
        for record in found.indexRecords {
            if let key = key(record, index: true) { known.append(key) }
        }
        var lostByApp: [String: Int] = [:]
        for key in Set(known).subtracting(outcome.saved) { lostByApp[key.appID, default: 0] += 1 }

        let kept: [String]
        do throws(SyncError) {
            kept = try keepAside(path, now: now)
        } catch {
            removeFamily(temporary)
            throw fail(error.message)
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            // Put the damaged file's log back beside it: the state it was found in.
            for keptFile in kept.dropFirst() { _ = rename(keptFile, path + keptFile.suffix(4)) }
            unlink(kept[0])
            removeFamily(temporary)
            throw fail("cannot put the new database in its place (\(reason))")
        }
        syncDirectory((path as NSString).deletingLastPathComponent)
        prune(path)
        return StoreRepair(
            damage: damage, keptFiles: kept, saved: outcome.saved.count, lostByApp: lostByApp, time: now)
    }

    /// The registration key of a record that has the shape of a registrations row or of its
    /// primary-key index entry.
    private static func key(_ values: [PageSalvage.SQLValue], index: Bool) -> RegistrationKey? {
        // A row has 14 columns (v1), 17 (conditions) or 18 (v3: confinement); ALTER TABLE
        // leaves older rows short. An index entry: app_id, kind, tag, rowid.
        guard index ? values.count == 4 : [14, 17, 18].contains(values.count),
            let appID = values[0].text, let kindText = values[1].text,
            let kind = RegistrationKind(rawValue: kindText), let tag = values[2].text
        else { return nil }
        if index, case .integer = values[3] {} else if index { return nil }
        return RegistrationKey(appID: appID, tag: tag, kind: kind)
    }

    /// Writes the rows found into a new database at `temporary` through the store's own schema,
    /// then reads each back with the store's own decoding: a row that fails a CHECK or a decoding
    /// check is removed, never guessed at. For a key found twice (a page's older copy in the
    /// WAL), the row written last (the higher rowid: INSERT OR REPLACE gives a new one) wins.
    private static func fill(_ temporary: String, with found: PageSalvage.Found) throws -> (
        saved: Set<RegistrationKey>, rejected: [RegistrationKey]
    ) {
        var latest: [RegistrationKey: PageSalvage.TableRow] = [:]
        for row in found.tableRows {
            guard let key = key(row.values, index: false) else { continue }
            if let other = latest[key], other.rowid > row.rowid { continue }
            latest[key] = row
        }
        var configuration = Configuration()
        configuration.label = "bgsync.repair"
        let queue = try DatabaseQueue(path: temporary, configuration: configuration)
        defer { try? queue.close() }
        try StoreSchema.migrator.migrate(queue)
        var rejected: [RegistrationKey] = []
        var saved = Set<RegistrationKey>()
        try queue.inTransaction { db in
            let insert = try db.makeStatement(
                sql:
                    "INSERT INTO \(StoreSchema.table) (\(RegistrationRow.columns.joined(separator: ", "))) VALUES (\(RegistrationRow.columns.map { _ in "?" }.joined(separator: ", ")))"
            )
            // Rows from before a migration that added columns hold fewer; SQLite reads the
            // missing ones as the column's default.
            let defaults: [PageSalvage.SQLValue] = [.null, .null, .null, .text("unconfined")]
            for (key, row) in latest {
                var values = row.values
                values += defaults.suffix(RegistrationRow.columns.count - values.count)
                do {
                    try insert.execute(arguments: StatementArguments(values.map(databaseValue)))
                } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                    rejected.append(key)  // a CHECK or NOT NULL: the row is lost; a full disk is not
                }
            }
            let reading = try db.makeStatement(sql: RegistrationRow.selectSQL)
            let reader = RegistrationRow.ColumnReader(statement: reading.sqliteStatement)
            let rows = try Row.fetchCursor(reading)
            var bad: [Int64] = []
            while try rows.next() != nil {
                do throws(RegistrationRow.BadColumn) {
                    saved.insert(try RegistrationRow.registration(from: reader).key)
                } catch {
                    bad.append(reader.rowid)
                    if let appID = reader.anyText(.appID), let tag = reader.anyText(.tag),
                        let kind = reader.anyText(.kind).flatMap(RegistrationKind.init(rawValue:))
                    {
                        rejected.append(RegistrationKey(appID: appID, tag: tag, kind: kind))
                    }
                }
            }
            for rowid in bad {
                try db.execute(sql: "DELETE FROM \(StoreSchema.table) WHERE rowid = ?", arguments: [rowid])
            }
            return .commit
        }
        return (saved, rejected)
    }

    private static func databaseValue(_ value: PageSalvage.SQLValue) -> DatabaseValue {
        switch value {
        case .null: .null
        case .integer(let number): number.databaseValue
        case .real(let number): number.databaseValue
        case .text(let text): text.databaseValue
        case .blob(let bytes): Data(bytes).databaseValue
        }
    }

    /// Gives the damaged file (a hard link: the same bytes, nothing copied) and its -wal/-shm
    /// (moved: a log left beside the new file would be replayed into it) their kept names.
    /// Returns those names; on failure, puts back what it moved.
    private static func keepAside(_ path: String, now: Date) throws(SyncError) -> [String] {
        let base = try keptName(path, now: now) { link(path, $0) == 0 ? 0 : errno }
        var kept = [base]
        for suffix in ["-wal", "-shm"] where access(path + suffix, F_OK) == 0 {
            guard rename(path + suffix, base + suffix) == 0 else {
                let reason = String(cString: strerror(errno))
                for moved in kept.dropFirst() { _ = rename(moved, path + moved.suffix(4)) }
                unlink(base)
                throw SyncError(.storage, "cannot keep \(path + suffix) aside (\(reason))")
            }
            kept.append(base + suffix)
        }
        return kept
    }

    /// Copies the file (whose log the caller has emptied into it) to its kept name, synced: for a
    /// file that stays in use, which a hard link would share.
    static func keepCopy(_ path: String, now: Date) throws(SyncError) -> String {
        try keptName(path, now: now) { name in
            guard let source = FileHandle(forReadingAtPath: path) else { return errno }
            defer { try? source.close() }
            let fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return errno }
            let target = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            do {
                while let chunk = try source.read(upToCount: 1 << 20), !chunk.isEmpty {
                    try target.write(contentsOf: chunk)
                }
                try target.synchronize()
                try target.close()
                return 0
            } catch {
                try? target.close()
                unlink(name)
                return EIO
            }
        }
    }

    /// The kept name for a damaged file seen at `now`, made by `place` (0 or an errno). A second
    /// repair within the same second gets -2, -3, …: after the newest kept so far, so that names
    /// keep sorting by age even once the first has been pruned.
    private static func keptName(_ path: String, now: Date, place: (String) -> Int32) throws(SyncError) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let stamp = formatter.string(from: now)
        let directory = (path as NSString).deletingLastPathComponent
        let same = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap {
            age(of: $0, path: path)
        }.filter { $0.stamp == stamp }
        var attempt = (same.map(\.count).max() ?? 0) + 1
        while true {
            let name = path + keptMarker + stamp + (attempt == 1 ? "" : "-\(attempt)")
            let error = place(name)
            if error == 0 { return name }
            guard error == EEXIST, attempt < 1000 else {
                throw SyncError(.storage, "cannot keep it aside as \(name) (\(String(cString: strerror(error))))")
            }
            attempt += 1
        }
    }

    /// Removes all but the newest `keptAtMost` damaged files (with their -wal/-shm). The names
    /// end in the UTC time, so they sort by age.
    static func prune(_ path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let prefix = (path as NSString).lastPathComponent + keptMarker
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let kept = names.filter { $0.hasPrefix(prefix) }
        let bases = kept.compactMap { name in age(of: name, path: path).map { (name, $0) } }
            .sorted { ($0.1.stamp, $0.1.count) < ($1.1.stamp, $1.1.count) }.map(\.0)
        for base in bases.dropLast(keptAtMost) {
            for name in kept where name == base || name == base + "-wal" || name == base + "-shm" {
                unlink((directory as NSString).appendingPathComponent(name))
            }
        }
    }

    /// The time stamp and same-second count of a kept damaged file's name (not its -wal/-shm):
    /// "registrations.sqlite3.damaged-20261206T113844Z-3" is ("20261206T113844Z", 3).
    private static func age(of name: String, path: String) -> (stamp: String, count: Int)? {
        let prefix = (path as NSString).lastPathComponent + keptMarker
        guard name.hasPrefix(prefix), !name.hasSuffix("-wal"), !name.hasSuffix("-shm") else { return nil }
        let rest = name.dropFirst(prefix.count)
        let parts = rest.split(separator: "-", maxSplits: 1)
        guard let stamp = parts.first, stamp.count == 16 else { return nil }
        guard parts.count == 2 else { return (String(stamp), 1) }
        return Int(parts[1]).map { (String(stamp), $0) }
    }

    private static func removeFamily(_ path: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(path + suffix) }
    }

    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error.resultCode)" }
        return "\(error)"
    }
}
