// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit

#if canImport(Glibc)
import Glibc
#endif

/// The outbox directory: which files are ready to send, and moving rejected ones aside. Opened
/// by the host beneath the app's root (`HandlerFiles`); every later step names one entry of that
/// open directory, never a path, so a directory swapped for a link cannot redirect it.
///
/// Readiness is by name, as in Maildir: apps write each request body under a temporary name
/// (starting with `.`, or ending in `.part`, `.tmp` or `~`) and rename it into the outbox when
/// complete. Those names are never sent; every other regular file is complete and is sent at
/// once. (An age rule guessed: a rename keeps the old mtime or not depending on the writer, and
/// waiting a second cost every message a second and an attempt.)
struct Outbox {
    /// A file ready to be sent.
    struct Item {
        var name: String
        var modified: timespec
        var inode: UInt64
        var size: Int64
    }

    /// Where rejected files go, inside the outbox.
    static let failedDirectory = "failed"

    let directory: HandlerDirectory
    /// The outbox path, for messages.
    let path: String

    /// Opens the path option `option` as the outbox.
    static func open(_ files: HandlerFiles, option: String, path: String) throws(OutboxError) -> Outbox {
        do {
            return Outbox(directory: try files.openDirectory(option: option), path: path)
        } catch {
            throw OutboxError(.unreadable, "cannot open the outbox: \(error.message)")
        }
    }

    /// The ready files, oldest first (mtime, then name).
    func scan() throws(OutboxError) -> [Item] {
        let names: [String]
        do {
            names = try directory.names()
        } catch {
            throw OutboxError(.unreadable, "cannot read the outbox \(path): \(error.message)")
        }
        var ready: [Item] = []
        for name in names where !Self.isBeingWritten(name) {
            // lstat: a symlink is not a regular file, and is not followed out of the outbox.
            guard let info = directory.status(name), info.st_mode & S_IFMT == S_IFREG else { continue }
            ready.append(
                Item(name: name, modified: info.st_mtim, inode: UInt64(info.st_ino), size: Int64(info.st_size)))
        }
        ready.sort { a, b in
            if a.modified.tv_sec != b.modified.tv_sec { return a.modified.tv_sec < b.modified.tv_sec }
            if a.modified.tv_nsec != b.modified.tv_nsec { return a.modified.tv_nsec < b.modified.tv_nsec }
            return Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
        }
        return ready
    }

    /// The Maildir rule: a name its writer has not finished with.
    static func isBeingWritten(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasSuffix("~")
    }

    /// `item` opened for reading and its size now, if the file is still the one scanned (opened
    /// without following a link; the inode is compared on the open file, so a swap after the
    /// scan is not read). The body is sent from this fd as it goes, never read whole.
    func open(_ item: Item) throws(FileError) -> (file: HandlerFile, size: Int64)? {
        let file = try directory.open(item.name, .read)
        guard let info = file.status(), UInt64(info.st_ino) == item.inode else { return nil }
        return (file, Int64(info.st_size))
    }

    /// Moves a rejected file to `failed/`, never over another file there.
    func moveToFailed(_ item: Item) throws(OutboxError) -> String {
        let failed: HandlerDirectory
        do {
            failed = try directory.openDirectory(Self.failedDirectory, .create)
        } catch {
            throw OutboxError(.cannotMove, "cannot create \(Self.failedDirectory)/ in the outbox: \(error.message)")
        }
        var target = item.name
        var suffix = 1
        while true {
            do {
                // RENAME_NOREPLACE: never replaces a file already in failed/.
                try directory.rename(item.name, to: target, in: failed, noReplace: true)
                return path + "/" + Self.failedDirectory + "/" + target
            } catch {
                guard error.errno == EEXIST, suffix < 1000 else {
                    throw OutboxError(
                        .cannotMove, "cannot move \(item.name) to \(Self.failedDirectory)/: \(error.message)")
                }
                target = item.name + "." + String(suffix)
                suffix += 1
            }
        }
    }

    /// True if the entry `item.name` is still the file scanned (not replaced or rewritten).
    func isUnchanged(_ item: Item) -> Bool {
        guard let info = directory.status(item.name) else { return false }
        return UInt64(info.st_ino) == item.inode && Int64(info.st_size) == item.size
            && info.st_mtim.tv_sec == item.modified.tv_sec && info.st_mtim.tv_nsec == item.modified.tv_nsec
    }

    /// Removes a file the server accepted, unless the app replaced it meanwhile (then the new
    /// content is for a later attempt). Returns false if it was kept for that reason.
    func remove(_ item: Item) throws(OutboxError) -> Bool {
        guard isUnchanged(item) else { return false }
        do {
            try directory.remove(item.name)
        } catch {
            // Already gone (the app took it back): what was asked for.
            guard error.errno == ENOENT else {
                throw OutboxError(.cannotRemove, "sent \(item.name) but cannot remove it: \(error.message)")
            }
        }
        return true
    }
}

struct OutboxError: Error {
    enum Code: String {
        case unreadable = "outbox-unreadable"
        case cannotMove = "cannot-move-to-failed"
        case cannotRemove = "cannot-remove-sent"
    }

    var code: Code
    var message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
