import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The outbox directory: which files are ready to send, and moving rejected ones aside.
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
        var path: String
        var modified: timespec
        var inode: UInt64
        var size: Int64
    }

    /// Where rejected files go, inside the outbox.
    static let failedDirectory = "failed"

    var directory: String

    /// The ready files, oldest first (mtime, then name).
    func scan() throws(OutboxError) -> [Item] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw OutboxError(.unreadable, "cannot read the outbox \(directory): \((error as NSError).localizedDescription)")
        }
        var ready: [Item] = []
        for name in names where !Self.isBeingWritten(name) {
            let path = directory + "/" + name
            var info = stat()
            // lstat: a symlink is not a regular file, and is not followed out of the outbox.
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            ready.append(Item(name: name, path: path, modified: info.st_mtim, inode: UInt64(info.st_ino), size: Int64(info.st_size)))
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

    /// Moves a rejected file to `failed/`, never over another file there.
    func moveToFailed(_ item: Item) throws(OutboxError) -> String {
        let failed = directory + "/" + Self.failedDirectory
        if mkdir(failed, 0o700) != 0, errno != EEXIST {
            throw OutboxError(.cannotMove, "cannot create \(failed): \(String(cString: strerror(errno)))")
        }
        var target = failed + "/" + item.name
        var suffix = 1
        // link, then unlink: never replaces a file already in failed/, and the file exists
        // under at least one name throughout.
        while link(item.path, target) != 0 {
            guard errno == EEXIST, suffix < 1000 else {
                throw OutboxError(.cannotMove, "cannot move \(item.name) to \(failed): \(String(cString: strerror(errno)))")
            }
            target = failed + "/" + item.name + "." + String(suffix)
            suffix += 1
        }
        unlink(item.path)
        return target
    }

    /// True if the file at `item.path` is still the one scanned (not replaced or rewritten).
    func isUnchanged(_ item: Item) -> Bool {
        var info = stat()
        return lstat(item.path, &info) == 0 && UInt64(info.st_ino) == item.inode && Int64(info.st_size) == item.size
            && info.st_mtim.tv_sec == item.modified.tv_sec && info.st_mtim.tv_nsec == item.modified.tv_nsec
    }

    /// Removes a file the server accepted, unless the app replaced it meanwhile (then the new
    /// content is for a later attempt). Returns false if it was kept for that reason.
    func remove(_ item: Item) throws(OutboxError) -> Bool {
        guard isUnchanged(item) else { return false }
        if unlink(item.path) != 0, errno != ENOENT {
            throw OutboxError(.cannotRemove, "sent \(item.name) but cannot remove it: \(String(cString: strerror(errno)))")
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
