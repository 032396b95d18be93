#if canImport(Glibc)
import Glibc
#endif
import BGSyncCore
import BGSyncValue
import DBusKit
import Logging

/// Finds out whether a bus caller is sandboxed, as xdg-desktop-portal does: the bus tells us the
/// caller's process id and security label (GetConnectionCredentials); the process's
/// `/proc/PID/root/.flatpak-info` names a Flatpak app, its cgroup or AppArmor label a Snap.
/// Answers are cached per unique name (unique names are never reused on a bus, and the process
/// behind one does not change), in a bounded cache.
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

    private func lookUp(_ sender: String) throws(SyncError) -> CallerSandbox {
        let reply: [Value]
        do {
            reply = try connection.call(
                destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
                method: "GetConnectionCredentials", arguments: [.string(sender)], timeout: 5)
        } catch {
            throw SyncError(.accessDenied, "Cannot tell who \(sender) is (the bus said: \(error.message)), so the call is refused.")
        }
        let credentials = reply.first?.stringKeyedDictionary ?? [:]
        guard let pid = credentials["ProcessID"]?.unwrappingVariants.uint64Value, pid > 0, pid <= UInt64(Int32.max) else {
            throw SyncError(.accessDenied, "The bus does not know the process of \(sender), so the call is refused.")
        }
        let label = credentials["LinuxSecurityLabel"]?.unwrappingVariants.arrayValue.map { bytes in
            String(decoding: bytes.compactMap { if case .byte(let b) = $0 { b } else { nil } }, as: UTF8.self)
        }
        if let label, let name = SandboxPolicy.snapName(fromAppArmorLabel: label) { return .snap(name: name) }
        return try sandbox(ofProcess: Int32(pid), sender: sender)
    }

    /// Reads the process's files through one fd on its /proc directory, so that a process that
    /// exits (and a pid reused by another) cannot make a sandboxed caller look unsandboxed: an
    /// absent .flatpak-info counts only if the process is still alive after we looked.
    private func sandbox(ofProcess pid: Int32, sender: String) throws(SyncError) -> CallerSandbox {
        let directory = open("/proc/\(pid)", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else {
            throw SyncError(.accessDenied, "The process of \(sender) (pid \(pid)) has gone, so the call is refused.")
        }
        defer { close(directory) }
        switch Self.read(at: directory, "root/.flatpak-info") {
        case .contents(let text): return .flatpak(appID: SandboxPolicy.flatpakAppID(fromInfo: text))
        case .failed(let error) where error != ENOENT:
            throw SyncError(
                .accessDenied,
                "Cannot read /proc/\(pid)/root/.flatpak-info of \(sender): \(String(cString: strerror(error))); the call is refused.")
        default: break
        }
        guard case .contents(let cgroup) = Self.read(at: directory, "cgroup"),
            case .contents(let stat) = Self.read(at: directory, "stat"), !Self.isDead(stat: stat)
        else {
            throw SyncError(.accessDenied, "The process of \(sender) (pid \(pid)) exited before it could be checked; the call is refused.")
        }
        if let name = SandboxPolicy.snapName(fromCgroup: cgroup) { return .snap(name: name) }
        return .unsandboxed
    }

    /// A zombie's root is gone too, so it reads as "no .flatpak-info"; its state in stat says Z.
    private static func isDead(stat: String) -> Bool {
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first
        return state == "Z" || state == "X" || state == "x"
    }

    private enum ReadResult { case contents(String), failed(Int32) }

    private static func read(at directory: Int32, _ name: String, limit: Int = 65536) -> ReadResult {
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

    /// The path with symbolic links followed, when it exists (see SandboxPolicy.check).
    static func resolve(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
