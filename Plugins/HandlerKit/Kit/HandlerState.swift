// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin

#if canImport(Glibc)
import Glibc
#endif

/// Where a handler keeps state of its own across events, worker and agent restarts and reboots
/// (what a resumable upload must remember): a directory the host gives each handler, under the
/// agent's state directory and never under an app's (host growth 4, `open_state_dir`). Shared by
/// every app's events: name files from what the host vouches for (app id, tag), never from what
/// an app sends.
public struct HandlerStateAccess {
    /// A directory fd, or a negated errno.
    private let opener: () -> Int32

    /// Through the host's table (absent in an older host: ENOSYS).
    init(host: UnsafePointer<bgsync_host>, event: OpaquePointer?) {
        let open = host.pointee.open_state_dir
        let eventBits = Int(bitPattern: event.map(UnsafeRawPointer.init))
        opener = {
            guard let open else { return -ENOSYS }
            return open(OpaquePointer(bitPattern: eventBits))
        }
    }

    /// A directory at `path` (created 0700 if missing): for tests, and hosts of one's own.
    public init(path: String) {
        opener = {
            if mkdir(path, 0o700) != 0 && errno != EEXIST { return -errno }
            let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            return fd >= 0 ? fd : -errno
        }
    }

    private init(opener: @escaping () -> Int32) { self.opener = opener }

    /// No state directory (a `HandlerEvent` made without a host): `open` fails with ENOSYS.
    public static var unavailable: HandlerStateAccess { HandlerStateAccess { -ENOSYS } }

    /// Opens the directory.
    public func open() throws(FileError) -> StateDirectory {
        let fd = opener()
        guard fd >= 0 else { throw FileError(errno: -fd, subject: "the handler's state directory") }
        return StateDirectory(fd: fd)
    }
}

/// The handler's open state directory. Names are single path components the handler makes
/// itself; files are replaced atomically (written under a temporary name, fsynced, renamed), so
/// a kill or a power cut leaves the old file or the new one, never half of one.
public final class StateDirectory {
    public let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// The file `name`'s bytes, nil if it is missing, unreadable or longer than `limit`.
    public func read(_ name: String, limit: Int = 64 * 1024) -> [UInt8]? {
        let file = openat(fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { return nil }
            if got == 0 { return bytes }
            bytes += chunk[..<got]
            guard bytes.count <= limit else { return nil }
        }
    }

    /// Replaces the file `name` with `bytes` atomically and durably.
    public func write(_ name: String, _ bytes: [UInt8]) throws(FileError) {
        let temporary = ".\(name).\(getpid()).tmp"
        let file = openat(fd, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard file >= 0 else { throw FileError(errno: errno, subject: "writing state \(name)") }
        var offset = 0
        var failure: Int32 = 0
        while offset < bytes.count {
            let wrote = bytes[offset...].withUnsafeBytes { Glibc.write(file, $0.baseAddress, $0.count) }
            if wrote < 0 && errno == EINTR { continue }
            if wrote < 0 {
                failure = errno
                break
            }
            offset += wrote
        }
        if failure == 0 && fsync(file) != 0 { failure = errno }
        close(file)
        if failure == 0 && renameat(fd, temporary, fd, name) != 0 { failure = errno }
        guard failure == 0 else {
            unlinkat(fd, temporary, 0)
            throw FileError(errno: failure, subject: "writing state \(name)")
        }
        _ = fsync(fd)  // the rename itself, past a power cut
    }

    /// Removes the file `name`; a missing one is not an error.
    public func remove(_ name: String) {
        if unlinkat(fd, name, 0) == 0 { _ = fsync(fd) }
    }
}
