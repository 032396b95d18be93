// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin
import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// The host's file functions of the plugin ABI (bgsync-plugin.h, "Files"): opening the paths an
/// app named beneath the registration's root, so that swapping a directory or file for a symbolic
/// link after Register cannot point a handler elsewhere. Every function returns a file descriptor
/// (close-on-exec, the caller's to close) or 0, or a negated errno.
///
/// Confined (`root` set): the path must lie beneath `root`, and everything below the root is
/// opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or one
/// component at a time with O_NOFOLLOW where the kernel lacks openat2. The root itself is opened
/// as recorded at Register (the app cannot rename its own data directory: it is the sandbox's
/// mount point). Unconfined (`root` nil): paths are followed as open(2) follows them; only magic
/// links (/proc/PID/fd/N and kin) are refused, where openat2 exists.
public struct ConfinedFiles: Sendable {
    /// The directory every path must stay beneath; nil when unconfined.
    public var root: String?
    /// False: walk components with O_NOFOLLOW instead of openat2 (the fallback, chosen when the
    /// kernel lacks openat2 or a seccomp filter refuses it; tests set it to exercise the walk).
    public var useOpenat2: Bool

    public init(root: String?, useOpenat2: Bool = ConfinedFiles.kernelHasOpenat2) {
        self.root = root
        self.useOpenat2 = useOpenat2
    }

    /// Whether openat2 works here: ENOSYS on Linux < 5.6; EPERM from container seccomp profiles
    /// that predate it. Probed once on "/", where nothing else can fail.
    public static let kernelHasOpenat2: Bool = {
        let fd = clinux_openat2(AT_FDCWD, "/", CLINUX_O_PATH, 0, 0)
        if fd >= 0 { close(fd) }
        return fd != -ENOSYS && fd != -EPERM
    }()

    static let kinds = BGSYNC_OPEN_READ | BGSYNC_OPEN_WRITE | BGSYNC_OPEN_DIRECTORY | BGSYNC_OPEN_PARENT
    static let modifiers = BGSYNC_OPEN_CREATE | BGSYNC_OPEN_EXCLUSIVE | BGSYNC_OPEN_TRUNCATE

    // MARK: - The ABI's four functions

    /// `open_path`: the absolute `path` (an option's value), as `how` says.
    public func open(path: String, how: UInt32) -> Int32 {
        guard Self.validHow(how, parentAllowed: true), path.hasPrefix("/"), !path.utf8.contains(0) else {
            return -EINVAL
        }
        let parts = path.split(separator: "/").map(String.init)
        let kind = how & Self.kinds
        if kind == BGSYNC_OPEN_PARENT
            || how & (BGSYNC_OPEN_DIRECTORY | BGSYNC_OPEN_CREATE)
                == BGSYNC_OPEN_DIRECTORY | BGSYNC_OPEN_CREATE
        {
            // The directory holding the last part; creating a directory starts from there too.
            guard let last = parts.last, Self.validName(last) else { return -EINVAL }
            let parent = openResolved(Array(parts.dropLast()), how: BGSYNC_OPEN_DIRECTORY)
            guard kind != BGSYNC_OPEN_PARENT, parent >= 0 else { return parent }
            defer { close(parent) }
            return openAt(parent, last, how: how)
        }
        return openResolved(parts, how: how)
    }

    /// `open_at`: the entry `name` of the directory `dirFD`.
    public func openAt(_ dirFD: Int32, _ name: String, how: UInt32) -> Int32 {
        guard dirFD >= 0, Self.validName(name), Self.validHow(how, parentAllowed: false) else { return -EINVAL }
        if how & (BGSYNC_OPEN_DIRECTORY | BGSYNC_OPEN_CREATE) == BGSYNC_OPEN_DIRECTORY | BGSYNC_OPEN_CREATE {
            // mkdirat never follows a link in the last part (EEXIST), and the open below refuses it.
            if mkdirat(dirFD, name, 0o700) != 0 {
                let error = errno
                if error != EEXIST || how & BGSYNC_OPEN_EXCLUSIVE != 0 { return -error }
            }
        }
        let (flags, mode) = Self.openFlags(how)
        return Self.checked(beneath(dirFD, name, flags: flags, mode: mode), how: how)
    }

    /// `rename_at`: renameat2 of one entry to another; links are renamed, never followed.
    public func rename(_ fromFD: Int32, _ from: String, _ toFD: Int32, _ to: String, flags: UInt32) -> Int32 {
        guard fromFD >= 0, toFD >= 0, Self.validName(from), Self.validName(to),
            flags & ~BGSYNC_RENAME_NOREPLACE == 0
        else { return -EINVAL }
        let noReplace = flags & BGSYNC_RENAME_NOREPLACE != 0
        let status = clinux_renameat2(fromFD, from, toFD, to, noReplace ? CLINUX_RENAME_NOREPLACE : 0)
        guard noReplace, status == -EINVAL else { return status }
        // A file system without RENAME_NOREPLACE: link (which never replaces), then unlink.
        guard linkat(fromFD, from, toFD, to, 0) == 0 else { return -errno }
        return unlinkat(fromFD, from, 0) == 0 ? 0 : -errno
    }

    /// `unlink_at`: removes one entry (with BGSYNC_UNLINK_DIRECTORY, an empty directory).
    public func unlink(_ dirFD: Int32, _ name: String, flags: UInt32) -> Int32 {
        guard dirFD >= 0, Self.validName(name), flags & ~BGSYNC_UNLINK_DIRECTORY == 0 else { return -EINVAL }
        let atFlags = flags & BGSYNC_UNLINK_DIRECTORY != 0 ? AT_REMOVEDIR : 0
        return unlinkat(dirFD, name, atFlags) == 0 ? 0 : -errno
    }

    // MARK: - Resolution

    /// Opens the absolute path made of `parts`: beneath the root when confined.
    private func openResolved(_ parts: [String], how: UInt32) -> Int32 {
        let (flags, mode) = Self.openFlags(how)
        guard let root else {
            let path = "/" + parts.joined(separator: "/")
            return Self.checked(beneath(AT_FDCWD, path, flags: flags, mode: mode), how: how)
        }
        // Lexically clean (Register refuses `.` and `..` for sandboxed apps; so do we).
        guard !parts.contains(where: { $0 == "." || $0 == ".." }) else { return -EXDEV }
        let rootFD = Glibc.open(root, CLINUX_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { return -errno }
        defer { close(rootFD) }
        guard let below = Self.partsBelow(root: root, rootFD: rootFD, parts) else { return -EXDEV }
        if below.isEmpty {
            // The root itself: only as a directory.
            guard how & Self.kinds == BGSYNC_OPEN_DIRECTORY else { return -EISDIR }
            return Self.checked(openat(rootFD, ".", flags), how: how)
        }
        return Self.checked(beneath(rootFD, below.joined(separator: "/"), flags: flags, mode: mode), how: how)
    }

    /// The parts of the path below the root: after the root's own parts when the path starts
    /// with them as text; otherwise after the shortest prefix that is the root's directory
    /// (same device and inode), for a root recorded with links resolved (/home → /var/home).
    /// Nil when the path is not beneath the root.
    static func partsBelow(root: String, rootFD: Int32, _ parts: [String]) -> [String]? {
        let rootParts = root.split(separator: "/").map(String.init)
        if parts.starts(with: rootParts) { return Array(parts.dropFirst(rootParts.count)) }
        var rootInfo = stat()
        guard fstat(rootFD, &rootInfo) == 0 else { return nil }
        for count in stride(from: 1, through: parts.count, by: 1) {
            var info = stat()
            let prefix = "/" + parts[..<count].joined(separator: "/")
            if stat(prefix, &info) == 0, info.st_dev == rootInfo.st_dev, info.st_ino == rootInfo.st_ino {
                return Array(parts.dropFirst(count))
            }
        }
        return nil
    }

    /// openat2 beneath `dirFD` (confined) or refusing magic links only (unconfined); the
    /// O_NOFOLLOW walk where openat2 is missing.
    private func beneath(_ dirFD: Int32, _ relative: String, flags: Int32, mode: mode_t) -> Int32 {
        let confined = root != nil
        if useOpenat2 {
            let resolve =
                confined
                ? UInt64(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) : UInt64(RESOLVE_NO_MAGICLINKS)
            var fd: Int32 = -EAGAIN
            // EAGAIN: a rename raced the lookup (openat2(2)); a few tries, then give up.
            for _ in 0..<8 where fd == -EAGAIN { fd = clinux_openat2(dirFD, relative, flags, mode, resolve) }
            if fd != -ENOSYS { return fd }
        }
        guard confined else {
            let fd = openat(dirFD, relative, flags | O_CLOEXEC, mode)
            return fd >= 0 ? fd : -errno
        }
        return Self.walk(dirFD, relative.split(separator: "/").map(String.init), flags: flags, mode: mode)
    }

    /// One component at a time, never following a link: each directory with O_PATH|O_NOFOLLOW
    /// (a link there is ELOOP, as openat2 would say), the last part with O_NOFOLLOW.
    static func walk(_ dirFD: Int32, _ parts: [String], flags: Int32, mode: mode_t) -> Int32 {
        guard let last = parts.last else { return -EINVAL }
        var current = dirFD
        defer { if current != dirFD { close(current) } }
        // With O_DIRECTORY a link is ENOTDIR, not ELOOP: say ELOOP, as openat2 does.
        func failure(_ part: String) -> Int32 {
            let error = errno
            var info = stat()
            let isLink = fstatat(current, part, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFLNK
            return isLink ? -ELOOP : -error
        }
        for part in parts.dropLast() {
            let next = openat(current, part, CLINUX_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 { return failure(part) }
            if current != dirFD { close(current) }
            current = next
        }
        let fd = openat(current, last, flags | O_NOFOLLOW | O_CLOEXEC, mode)
        return fd >= 0 ? fd : failure(last)
    }

    // MARK: - Flags and checks

    static func validName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
    }

    /// Exactly one kind; modifiers only where they mean something.
    static func validHow(_ how: UInt32, parentAllowed: Bool) -> Bool {
        let kind = how & kinds
        guard how & ~(kinds | modifiers) == 0, kind.nonzeroBitCount == 1 else { return false }
        if kind == BGSYNC_OPEN_PARENT { return parentAllowed && how & modifiers == 0 }
        if kind == BGSYNC_OPEN_READ { return how & modifiers == 0 }
        if kind == BGSYNC_OPEN_DIRECTORY && how & BGSYNC_OPEN_TRUNCATE != 0 { return false }
        if how & BGSYNC_OPEN_EXCLUSIVE != 0 && how & BGSYNC_OPEN_CREATE == 0 { return false }
        return true
    }

    /// open(2) flags and mode. Files open non-blocking, so that a FIFO cannot hang the open; the
    /// flag is cleared once `checked` has seen a regular file.
    static func openFlags(_ how: UInt32) -> (Int32, mode_t) {
        switch how & kinds {
        case BGSYNC_OPEN_WRITE:
            var flags = O_WRONLY | O_NONBLOCK | O_NOCTTY
            if how & BGSYNC_OPEN_CREATE != 0 { flags |= O_CREAT }
            if how & BGSYNC_OPEN_EXCLUSIVE != 0 { flags |= O_EXCL }
            if how & BGSYNC_OPEN_TRUNCATE != 0 { flags |= O_TRUNC }
            return (flags, 0o600)
        case BGSYNC_OPEN_READ: return (O_RDONLY | O_NONBLOCK | O_NOCTTY, 0)
        default: return (O_RDONLY | O_DIRECTORY, 0)
        }
    }

    /// Regular files only for READ and WRITE (fstat on what was opened, not on a name).
    static func checked(_ fd: Int32, how: UInt32) -> Int32 {
        guard fd >= 0 else { return fd }
        let kind = how & kinds
        guard kind == BGSYNC_OPEN_READ || kind == BGSYNC_OPEN_WRITE else { return fd }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = errno
            close(fd)
            return -error
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            close(fd)
            return type == S_IFDIR ? -EISDIR : -EINVAL
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }
}
