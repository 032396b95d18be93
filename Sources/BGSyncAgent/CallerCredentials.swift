// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import CLinux
import DBusKit
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Finds out whether a bus caller is sandboxed, as xdg-desktop-portal does: the bus tells us the
/// caller's process (GetConnectionCredentials) and security label; the process's
/// `/proc/PID/root/.flatpak-info` names a Flatpak app, its AppArmor label or cgroup a Snap.
/// Answers are cached per unique name (unique names are never reused on a bus, and the process
/// behind one does not change), in a bounded cache.
///
/// The process is held by a pidfd: the bus's `ProcessFD` where it sends one (dbus-daemon ≥ 1.15.8,
/// dbus-broker), otherwise one opened for the PID at once. After /proc is read, the pidfd must
/// show the process still running: a process that exited (and so a PID that could have been
/// reused by another) is refused. Without `ProcessFD` a PID reused before the pidfd was opened
/// cannot be told; Debian 12's dbus-daemon 1.14 sends none.
final class CallerCredentials {
    private let connection: DBusConnection
    private let logger: Logger
    private var cache: [String: CallerSandbox] = [:]
    private let cacheLimit = 1024

    init(connection: DBusConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// The sandbox of the connection `sender`; throws AccessDenied when it cannot be told
    /// (the caller has already gone, or its process cannot be read): unknown is not trusted.
    func sandbox(of sender: String) throws(SyncError) -> CallerSandbox {
        if let known = cache[sender] { return known }
        let found = try lookUp(sender)
        if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[sender] = found
        if found.isSandboxed { logger.debug("\(sender) is a \(found.kindName) app: \(found.ownAppID ?? "no app id")") }
        return found
    }

    func forget(_ sender: String) {
        cache[sender] = nil
    }

    private func lookUp(_ sender: String) throws(SyncError) -> CallerSandbox {
        var credentials: ConnectionCredentials
        do {
            credentials = try connection.connectionCredentials(of: sender)
        } catch {
            throw SyncError(
                .accessDenied, "Cannot tell who \(sender) is (the bus said: \(error.message)), so the call is refused.")
        }
        defer { credentials.close() }
        if let label = credentials.securityLabel {
            switch SandboxIdentity.snap(fromAppArmorLabel: String(decoding: label, as: UTF8.self)) {
            case .instance(let name): return .snap(instance: name)
            case .unrecognised(let what): throw Self.unrecognised(sender, what)
            case .none: break
            }
        }
        let process: ProcessHandle
        if let fd = credentials.processFD {
            process = try ProcessHandle(borrowing: fd, sender: sender)
        } else {
            guard let pid = credentials.processID, pid > 0, pid <= UInt32(Int32.max) else {
                throw SyncError(
                    .accessDenied, "The bus does not know the process of \(sender), so the call is refused.")
            }
            process = try ProcessHandle(opening: Int32(pid), sender: sender)
        }
        defer { process.close() }
        return try ProcessIdentity.sandbox(of: process, sender: sender)
    }

    static func unrecognised(_ sender: String, _ what: String) -> SyncError {
        SyncError(
            .accessDenied,
            "\(sender) runs in what looks like a Snap sandbox but cannot be identified (\(what)); the call is refused.")
    }

    /// The path with symbolic links followed, when it exists (see SandboxPolicy.check).
    static func resolve(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// A process held by a pidfd, with its PID as seen from here.
struct ProcessHandle {
    let pid: Int32
    let pidfd: Int32
    private let owned: Bool

    /// A PID and a pidfd that must name the same process (tests pair them otherwise, to stand
    /// for a PID reused after its process exited); the caller keeps the fd.
    init(pid: Int32, pidfd: Int32) {
        self.pid = pid
        self.pidfd = pidfd
        owned = false
    }

    /// The bus's ProcessFD: read its PID; the credentials keep the fd.
    init(borrowing pidfd: Int32, sender: String) throws(SyncError) {
        let pid = clinux_pidfd_pid(pidfd)
        guard pid > 0 else { throw ProcessIdentity.gone(sender, pid: nil) }
        self.pid = pid
        self.pidfd = pidfd
        owned = false
    }

    /// A pidfd opened for `pid` now; a kernel without pidfd_open (before 5.3) leaves -1, and
    /// only the zombie check of /proc/PID/stat remains.
    init(opening pid: Int32, sender: String) throws(SyncError) {
        let fd = clinux_pidfd_open(pid)
        let error = fd < 0 ? -fd : 0
        if error == ESRCH { throw ProcessIdentity.gone(sender, pid: pid) }
        if fd < 0, error != ENOSYS {
            throw SyncError(
                .accessDenied,
                "Cannot hold the process of \(sender) (pid \(pid)): \(String(cString: strerror(error))); "
                    + "the call is refused.")
        }
        self.pid = pid
        pidfd = fd
        owned = fd >= 0
    }

    /// Whether the process is still the running one the pidfd was opened on.
    var isRunning: Bool { pidfd < 0 || clinux_pidfd_exited(pidfd) == 0 }

    func close() {
        if owned { _ = Glibc.close(pidfd) }
    }
}

/// Reads a held process's sandbox from /proc, and trusts what it read only if the process was
/// still running afterwards.
enum ProcessIdentity {
    static func sandbox(of process: ProcessHandle, sender: String) throws(SyncError) -> CallerSandbox {
        let pid = process.pid
        let directory = open("/proc/\(pid)", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw gone(sender, pid: pid) }
        defer { close(directory) }
        // Everything is read before deciding, so that the liveness check below covers it all.
        let info = read(at: directory, "root/.flatpak-info")
        let cgroup = read(at: directory, "cgroup")
        let stat = read(at: directory, "stat")
        guard process.isRunning, case .contents(let statText) = stat, !isDead(stat: statText) else {
            throw gone(sender, pid: pid)
        }
        switch info {
        case .contents(let text): return .flatpak(appID: SandboxIdentity.flatpakAppID(fromInfo: text))
        case .failed(let error) where error != ENOENT:
            throw SyncError(
                .accessDenied,
                "Cannot read /proc/\(pid)/root/.flatpak-info of \(sender): \(String(cString: strerror(error))); "
                    + "the call is refused.")
        default: break
        }
        guard case .contents(let cgroupText) = cgroup else { throw gone(sender, pid: pid) }
        switch SandboxIdentity.snap(fromCgroup: cgroupText) {
        case .instance(let name): return .snap(instance: name)
        case .unrecognised(let what): throw CallerCredentials.unrecognised(sender, what)
        case .none: return .unsandboxed
        }
    }

    static func gone(_ sender: String, pid: Int32?) -> SyncError {
        SyncError(
            .accessDenied,
            "The process of \(sender)\(pid.map { " (pid \($0))" } ?? "") exited before it could be checked; "
                + "the call is refused.")
    }

    /// A zombie's root is gone too, so it reads as "no .flatpak-info"; its state in stat says Z.
    static func isDead(stat: String) -> Bool {
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first
        return state == "Z" || state == "X" || state == "x"
    }

    enum ReadResult {
        case contents(String)
        case failed(Int32)
    }

    static func read(at directory: Int32, _ name: String, limit: Int = 65536) -> ReadResult {
        let fd = openat(directory, name, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failed(errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failed(errno)
            }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return .contents(String(decoding: bytes, as: UTF8.self))
    }
}
