#if canImport(Glibc)
import Glibc
#endif
import DBusKit

/// A child process started with posix_spawn. The test runner blocks signals on its threads and
/// children would inherit that mask (a dbus-daemon that ignores SIGTERM), so the mask is reset.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private var stdoutFD: Int32
    private var stderrFD: Int32
    private var exitStatus: Int32?

    init(_ argv: [String], environment: [String: String]? = nil) throws {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw DBusError.failed("pipe failed") }
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let env = environment.map { $0.map { "\($0.key)=\($0.value)" } }
            ?? { var list: [String] = []; var p = environ; while let entry = p.pointee { list.append(String(cString: entry)); p += 1 }; return list }()
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, argv[0], &actions, &attributes, &cArgs, &cEnv)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw DBusError.failed("cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        pid = child
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
    }

    deinit {
        kill()
        if stdoutFD >= 0 { close(stdoutFD) }
        if stderrFD >= 0 { close(stderrFD) }
    }

    /// Reads what is available on stdout, waiting up to `timeout` seconds; [] at end of file, nil on timeout.
    func readStdout(timeout: Double) -> [UInt8]? { readAvailable(stdoutFD, timeout: timeout) }
    func readStderr(timeout: Double) -> [UInt8]? { readAvailable(stderrFD, timeout: timeout) }

    private func readAvailable(_ fd: Int32, timeout: Double) -> [UInt8]? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(fd, &buffer, buffer.count)
        return count > 0 ? Array(buffer[..<count]) : []
    }

    /// Collects stdout (or stderr) until `done` holds for the text so far, the stream ends, or
    /// `timeout` seconds pass. Returns the text.
    func collect(stderr: Bool = false, timeout: Double, until done: (String) -> Bool) -> String {
        var bytes: [UInt8] = []
        let deadline = MonotonicDeadline(seconds: timeout)
        while !done(String(decoding: bytes, as: UTF8.self)), let left = deadline.remaining {
            guard let chunk = stderr ? readStderr(timeout: left) : readStdout(timeout: left), !chunk.isEmpty else { break }
            bytes += chunk
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads stdout and stderr until both close.
    func readToEnd() -> (stdout: [UInt8], stderr: [UInt8]) {
        var out: [UInt8] = [], err: [UInt8] = []
        var open = [stdoutFD, stderrFD]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 30_000) > 0 else { break }
            for entry in fds where entry.revents != 0 {
                let count = read(entry.fd, &buffer, buffer.count)
                if count <= 0 {
                    open.removeAll { $0 == entry.fd }
                } else if entry.fd == stdoutFD {
                    out += buffer[..<count]
                } else {
                    err += buffer[..<count]
                }
            }
        }
        return (out, err)
    }

    /// Waits for the exit; the exit code, or 128 + signal.
    @discardableResult
    func wait() -> Int32 {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        exitStatus = code
        return code
    }

    func signal(_ number: Int32) {
        guard exitStatus == nil else { return }
        _ = Glibc.kill(pid, number)
    }

    /// SIGKILL and reap.
    func kill() {
        guard exitStatus == nil else { return }
        signal(SIGKILL)
        wait()
    }
}

struct MonotonicDeadline {
    let end: Double
    init(seconds: Double) { end = Self.now() + seconds }
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    /// Seconds left, nil once past.
    var remaining: Double? {
        let left = end - Self.now()
        return left > 0 ? left : nil
    }
}
