// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Why a test could not set up what it needs (a program missing, a daemon that did not start).
public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A point on the monotonic clock some seconds ahead: bounded waits without sleeps.
public struct Deadline: Sendable {
    public let end: Double
    public init(seconds: Double) { end = Self.now() + seconds }

    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Seconds left, nil once past.
    public var remaining: Double? {
        let left = end - Self.now()
        return left > 0 ? left : nil
    }
}

/// A real child process for the tests: posix_spawn, its stdout (and stderr) on pipes read with
/// timeouts, and optionally its stdin. The one way tests start programs.
///
/// The test runner blocks signals on its threads and children inherit the mask (a dbus-daemon
/// that ignores SIGTERM), so the child starts with no signal blocked and the usual dispositions.
public final class ChildProcess: @unchecked Sendable {
    /// Where the child's stderr goes.
    public enum Errors: Sendable {
        /// A pipe, read with `readStderr` / `readToEnd`.
        case pipe
        /// Appended to a file, kept for reading after a failure (a daemon outliving a crashed
        /// test must not hold the runner's pipes).
        case file(String)
        /// Into the stdout pipe.
        case stdout
        /// This process's own stderr (where the test runner shows it).
        case inherit
    }

    public let pid: pid_t
    private var stdoutFD: Int32
    private var stderrFD: Int32
    private var stdinFD: Int32
    private var exitStatus: Int32?
    private var buffered: [UInt8] = []
    private var stdoutEnded = false

    /// Starts `argv` (argv[0] found on PATH when it has no slash). `environment` replaces the
    /// whole environment; nil inherits this process's. With `input`, the child's stdin is a pipe
    /// (`writeLine`, `closeInput`), else /dev/null.
    public init(
        _ argv: [String], environment: [String: String]? = nil, input: Bool = false, errors: Errors = .pipe,
        directory: String? = nil
    ) throws(TestSetupError) {
        guard !argv.isEmpty else { throw TestSetupError("no program to start") }
        // Glibc's module does not export posix_spawn_file_actions_addchdir_np: env -C changes
        // directory, then executes the program.
        let argv = directory.map { ["/usr/bin/env", "-C", $0] + argv } ?? argv
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        var inPipe: [Int32] = [-1, -1]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, !input || pipe(&inPipe) == 0 else {
            throw TestSetupError("pipe failed: \(String(cString: strerror(errno)))")
        }
        for fd in outPipe + errPipe + inPipe where fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if input {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        switch errors {
        case .pipe: posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        case .stdout: posix_spawn_file_actions_adddup2(&actions, outPipe[1], 2)
        case .file(let path): posix_spawn_file_actions_addopen(&actions, 2, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        case .inherit: break
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let env = environment.map { $0.map { "\($0.key)=\($0.value)" } } ?? Self.currentEnvironment()
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer { for pointer in cArgs + cEnv { free(pointer) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, argv[0], &actions, &attributes, &cArgs, &cEnv)
        close(outPipe[1])
        close(errPipe[1])
        if input { close(inPipe[0]) }
        guard rc == 0 else {
            for fd in [outPipe[0], errPipe[0], inPipe[1]] where fd >= 0 { close(fd) }
            throw TestSetupError("cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        pid = child
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
        stdinFD = input ? inPipe[1] : -1
    }

    deinit {
        kill()
        for fd in [stdoutFD, stderrFD, stdinFD] where fd >= 0 { close(fd) }
    }

    public static func currentEnvironment() -> [String] {
        var list: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            list.append(String(cString: pointer))
            entry += 1
        }
        return list
    }

    // MARK: Output

    /// Reads what is available on stdout, waiting up to `timeout` seconds; [] at end of file,
    /// nil on timeout.
    public func readStdout(timeout: Double) -> [UInt8]? {
        if !buffered.isEmpty {
            defer { buffered.removeAll() }
            return buffered
        }
        return Self.readAvailable(stdoutFD, timeout: timeout)
    }

    public func readStderr(timeout: Double) -> [UInt8]? { Self.readAvailable(stderrFD, timeout: timeout) }

    /// The next line of stdout without its newline; nil once stdout is closed. Throws when no
    /// whole line arrives within `timeout` seconds.
    public func readLine(timeout: Double = 10) throws(TestSetupError) -> String? {
        let deadline = Deadline(seconds: timeout)
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            if stdoutEnded { return nil }
            guard let left = deadline.remaining, let chunk = Self.readAvailable(stdoutFD, timeout: left) else {
                throw TestSetupError("pid \(pid) printed no line in \(timeout) s")
            }
            if chunk.isEmpty { stdoutEnded = true } else { buffered += chunk }
        }
    }

    /// Collects stdout (or stderr) until `done` holds for the text so far, the stream ends, or
    /// `timeout` seconds pass. Returns the text.
    public func collect(stderr: Bool = false, timeout: Double, until done: (String) -> Bool) -> String {
        var bytes: [UInt8] = []
        let deadline = Deadline(seconds: timeout)
        while !done(String(decoding: bytes, as: UTF8.self)), let left = deadline.remaining {
            guard let chunk = stderr ? readStderr(timeout: left) : readStdout(timeout: left), !chunk.isEmpty else {
                break
            }
            bytes += chunk
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads stdout and stderr until both close (or nothing comes for `idle` seconds).
    public func readToEnd(idle: Double = 30) -> (stdout: [UInt8], stderr: [UInt8]) {
        var out = buffered
        var err: [UInt8] = []
        buffered.removeAll()
        var open = [stdoutFD, stderrFD]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(idle * 1000))
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { break }
            for entry in fds where entry.revents != 0 {
                let count = read(entry.fd, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
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

    private static func readAvailable(_ fd: Int32, timeout: Double) -> [UInt8]? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = Deadline(seconds: timeout)
        while true {
            let left = deadline.remaining ?? 0
            let ready = poll(&entry, 1, Int32(left * 1000))
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = read(fd, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            return count > 0 ? Array(buffer[..<count]) : []
        }
    }

    // MARK: Input

    public func writeLine(_ line: String) {
        guard stdinFD >= 0 else { return }
        let bytes = Array((line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { write(stdinFD, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return }
            sent += count
        }
    }

    /// Closes the child's stdin (its cue to finish, for the helper scripts).
    public func closeInput() {
        guard stdinFD >= 0 else { return }
        close(stdinFD)
        stdinFD = -1
    }

    // MARK: Life

    public var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        guard reaped == pid else { return reaped == 0 }
        exitStatus = Self.code(status)
        return false
    }

    /// Waits for the exit; the exit code, or 128 + signal.
    @discardableResult
    public func wait() -> Int32 {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = Self.code(status)
        exitStatus = code
        return code
    }

    /// Waits up to `seconds` for the exit: the exit code, or nil if still running.
    public func wait(seconds: Double) -> Int32? {
        // A pidfd would wake us at the exit; polling waitpid every 10 ms keeps this portable
        // to kernels without pidfd_open and costs nothing a test would notice.
        let deadline = Deadline(seconds: seconds)
        while isRunning {
            guard deadline.remaining != nil else { return nil }
            usleep(10_000)
        }
        return exitStatus
    }

    public func signal(_ number: Int32) {
        guard exitStatus == nil else { return }
        _ = Glibc.kill(pid, number)
    }

    /// SIGKILL and reap.
    public func kill() {
        guard exitStatus == nil else { return }
        signal(SIGKILL)
        wait()
    }

    private static func code(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// Runs a program to completion: its exit status, stdout and stderr.
public func runProgram(
    _ argv: [String], environment: [String: String]? = nil, directory: String? = nil
) throws(TestSetupError) -> (status: Int32, stdout: String, stderr: String) {
    let child = try ChildProcess(argv, environment: environment, directory: directory)
    let (out, err) = child.readToEnd()
    let status = child.wait()
    return (status, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

/// Runs a program to completion and returns its stdout; throws with its stderr when it fails.
@discardableResult
public func runChecked(
    _ argv: [String], environment: [String: String]? = nil, directory: String? = nil
) throws(TestSetupError) -> String {
    let result = try runProgram(argv, environment: environment, directory: directory)
    guard result.status == 0 else {
        throw TestSetupError(
            "\(argv.joined(separator: " ")) failed (\(result.status)): \(result.stderr)\(result.stdout)")
    }
    return result.stdout
}

/// `runProgram` with the program apart from its arguments.
public func runProgram(
    _ program: String, _ arguments: [String], environment: [String: String]? = nil
) throws(TestSetupError) -> (status: Int32, stdout: String, stderr: String) {
    try runProgram([program] + arguments, environment: environment)
}
