// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin

#if canImport(Glibc)
import Glibc
#endif

/// The files an event's options name, opened by the host beneath the registration's root
/// (bgsync-plugin.h, "Files"). A handler never opens an app-named path itself: for a sandboxed
/// app a symbolic link swapped in after Register fails the open (ELOOP) instead of leading out.
/// Valid only during `handle`, on its thread.
public struct HandlerFiles {
    private let host: UnsafePointer<bgsync_host>?
    private let event: OpaquePointer?

    /// Through the host's table (inside a worker, or a test's host).
    public init(host: UnsafePointer<bgsync_host>, event: OpaquePointer?) {
        self.host = host
        self.event = event
    }

    private init() {
        host = nil
        event = nil
    }

    /// No file access: every open fails with ENOSYS (a `HandlerEvent` made without a host).
    public static var unavailable: HandlerFiles { HandlerFiles() }

    /// Opens the path option `option` as `access` says (`.read`, `.write`, …).
    public func open(option: String, _ access: FileAccess) throws(FileError) -> HandlerFile {
        HandlerFile(fd: try openFD(option: option, access), files: self)
    }

    /// Opens the path option `option` as a directory (creating it with `.create`).
    public func openDirectory(option: String, _ access: FileAccess = []) throws(FileError) -> HandlerDirectory {
        HandlerDirectory(fd: try openFD(option: option, access.union(.directory)), files: self, label: describe(option))
    }

    /// Opens the directory holding the path option's last part, and that part's name: for a file
    /// the handler keeps companions beside, or replaces by rename.
    public func openParent(option: String) throws(FileError) -> (directory: HandlerDirectory, name: String) {
        let fd = try openFD(option: option, .parent)
        var parts = (path(option) ?? "").split(separator: "/")
        let name = String(parts.popLast() ?? "")
        return (HandlerDirectory(fd: fd, files: self, label: "/" + parts.joined(separator: "/")), name)
    }

    /// The path option's text, as the host hands it out (one accessor, not every option).
    private func path(_ option: String) -> String? {
        host?.pointee.option_string?(event, option).map { String(cString: $0) }
    }

    private func openFD(option: String, _ access: FileAccess) throws(FileError) -> Int32 {
        guard let host, let open = host.pointee.open_path else {
            throw FileError(errno: ENOSYS, subject: "option '\(option)'")
        }
        let fd = open(event, option, access.rawValue)
        guard fd >= 0 else { throw FileError(errno: -fd, subject: "option '\(option)' (\(describe(option)))") }
        return fd
    }

    private func describe(_ option: String) -> String { path(option) ?? "no path" }

    func openAt(_ dirFD: Int32, _ name: String, _ access: FileAccess, label: String) throws(FileError) -> Int32 {
        guard let host, let open = host.pointee.open_at else { throw FileError(errno: ENOSYS, subject: name) }
        let fd = open(event, dirFD, name, access.rawValue)
        guard fd >= 0 else { throw FileError(errno: -fd, subject: Self.join(label, name)) }
        return fd
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    func rename(_ fromFD: Int32, _ from: String, _ toFD: Int32, _ to: String, noReplace: Bool) -> Int32 {
        guard let host, let rename = host.pointee.rename_at else { return -ENOSYS }
        return rename(event, fromFD, from, toFD, to, noReplace ? BGSYNC_RENAME_NOREPLACE : 0)
    }

    func unlink(_ dirFD: Int32, _ name: String) -> Int32 {
        guard let host, let unlink = host.pointee.unlink_at else { return -ENOSYS }
        return unlink(event, dirFD, name, 0)
    }
}

/// How to open: one kind (`.read`, `.write`, `.directory`, `.parent`) and modifiers; the
/// values of bgsync-plugin.h's BGSYNC_OPEN_*.
public struct FileAccess: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let read = FileAccess(rawValue: BGSYNC_OPEN_READ)
    public static let write = FileAccess(rawValue: BGSYNC_OPEN_WRITE)
    public static let directory = FileAccess(rawValue: BGSYNC_OPEN_DIRECTORY)
    public static let parent = FileAccess(rawValue: BGSYNC_OPEN_PARENT)
    public static let create = FileAccess(rawValue: BGSYNC_OPEN_CREATE)
    public static let exclusive = FileAccess(rawValue: BGSYNC_OPEN_EXCLUSIVE)
    public static let truncate = FileAccess(rawValue: BGSYNC_OPEN_TRUNCATE)
}

/// A file or directory the host refused to open, or an I/O error on one.
public struct FileError: Error, Equatable, Sendable {
    /// The errno, such as ELOOP for a symbolic link in a sandboxed app's path.
    public var errno: Int32
    public var message: String

    public init(errno: Int32, subject: String) {
        self.errno = errno
        message = "\(subject): \(Self.reason(errno))"
    }

    static func reason(_ code: Int32) -> String {
        switch code {
        case ELOOP: return "a symbolic link is in the way (a sandboxed app's paths are not followed through links)"
        case EXDEV: return "not inside the app's data directory"
        case ENOENT: return "does not exist"
        case EISDIR: return "is a directory, not a file"
        case ENOTDIR: return "is not a directory"
        case EINVAL: return "not a regular file, or not an absolute path in a string option"
        case ENOSYS: return "this bgsync-worker offers handlers no file access (it is older than the handler)"
        default: return String(cString: strerror(code))
        }
    }
}

/// An open file; closed when the last reference goes.
public final class HandlerFile {
    public let fd: Int32
    let files: HandlerFiles

    init(fd: Int32, files: HandlerFiles) {
        self.fd = fd
        self.files = files
    }

    deinit { close(fd) }

    /// Everything from the current offset to the end.
    public func readAll() throws(FileError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw FileError(errno: errno, subject: "reading")
            }
            if got == 0 { return bytes }
            bytes += chunk[..<got]
        }
    }

    /// Writes all of `bytes`, then fsyncs (a file about to be renamed into place must be whole).
    public func writeAll(_ bytes: [UInt8]) throws(FileError) {
        var offset = 0
        while offset < bytes.count {
            let wrote = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if wrote < 0 {
                if errno == EINTR { continue }
                throw FileError(errno: errno, subject: "writing")
            }
            offset += wrote
        }
        guard fsync(fd) == 0 else { throw FileError(errno: errno, subject: "writing") }
    }

    /// fsync: what was written is on the disk (before a rename puts it in place).
    public func sync() throws(FileError) {
        guard fsync(fd) == 0 else { throw FileError(errno: errno, subject: "writing") }
    }

    /// fstat of the open file.
    public func status() -> stat? {
        var info = stat()
        return fstat(fd, &info) == 0 ? info : nil
    }
}

/// An open directory: list it, and open, rename and remove its entries (one name each, never a
/// path), all relative to this fd, so that a swapped parent cannot redirect them.
public final class HandlerDirectory {
    public let fd: Int32
    let files: HandlerFiles
    /// For messages: its path.
    let label: String

    init(fd: Int32, files: HandlerFiles, label: String) {
        self.fd = fd
        self.files = files
        self.label = label
    }

    deinit { close(fd) }

    /// The entry names, without `.` and `..`, in no particular order.
    public func names() throws(FileError) -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else {
            let error = errno
            if copy >= 0 { close(copy) }
            throw FileError(errno: error, subject: "listing \(label)")
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// lstat of an entry (links are not followed): nil if it does not exist.
    public func status(_ name: String) -> stat? {
        var info = stat()
        return fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 ? info : nil
    }

    public func open(_ name: String, _ access: FileAccess) throws(FileError) -> HandlerFile {
        HandlerFile(fd: try files.openAt(fd, name, access, label: label), files: files)
    }

    public func openDirectory(_ name: String, _ access: FileAccess = []) throws(FileError) -> HandlerDirectory {
        let fd = try files.openAt(fd, name, access.union(.directory), label: label)
        return HandlerDirectory(fd: fd, files: files, label: HandlerFiles.join(label, name))
    }

    /// Renames `name` to `newName` in `directory` (this one by default); with `noReplace`, an
    /// existing `newName` is an EEXIST error instead of replaced.
    public func rename(
        _ name: String, to newName: String, in directory: HandlerDirectory? = nil, noReplace: Bool = false
    ) throws(FileError) {
        let status = files.rename(fd, name, (directory ?? self).fd, newName, noReplace: noReplace)
        guard status == 0 else {
            throw FileError(errno: -status, subject: "renaming \(HandlerFiles.join(label, name))")
        }
    }

    /// Removes the entry `name` (a link is removed itself). ENOENT is an error: the caller decides.
    public func remove(_ name: String) throws(FileError) {
        let status = files.unlink(fd, name)
        guard status == 0 else {
            throw FileError(errno: -status, subject: "removing \(HandlerFiles.join(label, name))")
        }
    }
}
