// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import GRDB

/// Turns what SQLite reports into storage errors that name the file and say what to do.
enum StoreFailure {
    /// `doing` completes "… failed", e.g. "saving org.example.Chat/outbox".
    static func error(_ error: any Error, path: String, doing: String) -> SyncError {
        if let error = error as? SyncError { return error }  // already says what went wrong
        guard let database = error as? DatabaseError else {
            return SyncError(.storage, "\(capitalized(doing)) failed on the registration database \(path): \(error).")
        }
        let detail = database.message ?? "\(database.resultCode)"
        switch database.resultCode {
        case .SQLITE_FULL:
            return SyncError(
                .storage,
                "\(capitalized(doing)) failed: the disk holding \(path) is full (\(detail)). Nothing was changed; free some space and try again."
            )
        case .SQLITE_READONLY:
            return readOnly(path: path, doing: doing, detail: detail)
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH:
            return SyncError(
                .storage,
                "Cannot open the registration database \(path) (\(detail)). Check that its directory exists and that you may read and write both; or set another state-dir in bgsyncd.conf."
            )
        case .SQLITE_NOTADB, .SQLITE_CORRUPT:
            return damaged(path: path, detail: detail)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return SyncError(
                .storage,
                "\(capitalized(doing)) failed: \(path) is locked by another process (\(detail)). Is a second bgsyncd running? Stop it, or close whatever holds the file open."
            )
        case .SQLITE_IOERR where diskIsFull(path):
            // Opening a WAL database creates its -shm; on a full disk that fails as an I/O error.
            return SyncError(
                .storage,
                "\(capitalized(doing)) failed: the disk holding \(path) is full (\(detail)). Nothing was changed; free some space and try again."
            )
        case .SQLITE_IOERR:
            return SyncError(
                .storage,
                "\(capitalized(doing)) failed: input/output error on \(path) (\(detail)). Check the disk (see `dmesg`) and try again."
            )
        default:
            return SyncError(.storage, "\(capitalized(doing)) failed on the registration database \(path): \(detail).")
        }
    }

    /// SQLite creates -wal and -shm with the database's permissions, so after a chmod of the
    /// database alone they may still be read-only: name every file that is.
    static func readOnly(path: String, doing: String, detail: String) -> SyncError {
        let directory = (path as NSString).deletingLastPathComponent
        let candidates: [String] = [path, path + "-wal", path + "-shm", directory]
        let blocking = candidates.filter { (candidate: String) -> Bool in
            access(candidate, F_OK) == 0 && access(candidate, W_OK) != 0
        }
        let names: String = blocking.isEmpty ? path : blocking.joined(separator: " ")
        let what = "\(capitalized(doing)) failed: \(path) is read-only (\(detail))."
        return SyncError(.storage, what + " Make it writable by you (chmod u+w \(names)) and restart bgsyncd.")
    }

    /// The file turned out damaged after it was opened (a damaged file found at the start is
    /// repaired: DatabaseRepair). Restarting repairs it.
    static func damaged(path: String, detail: String) -> SyncError {
        SyncError(
            .storage,
            "The registration database \(path) is damaged (\(detail)). Restart bgsyncd: it keeps a damaged file aside and starts again from the registrations it can still read."
        )
    }

    static func unreadableRow(path: String, key: String, column: String, found: String) -> SyncError {
        SyncError(
            .storage,
            "The registration database \(path) holds a value bgsyncd cannot read: column \(column) of \(key) is \(found). Fix or delete that row with sqlite3, or move the file aside and restart."
        )
    }

    /// No block left for an ordinary user on the file system holding `path`'s directory.
    static func diskIsFull(_ path: String) -> Bool {
        var status = statvfs()
        return statvfs((path as NSString).deletingLastPathComponent, &status) == 0 && status.f_bavail == 0
    }

    private static func capitalized(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() }
}
