// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// Why a child process could not be started.
struct SpawnError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Starting and waiting for child processes without disturbing the rest of the agent.
enum ChildProcess {
    /// Starts `executable` with `arguments` (argv[0] is added). In the child: stdin is
    /// /dev/null, stdout is `stdout` (our stderr unless given), stderr is ours, `fd3` (if any)
    /// becomes fd 3, and every other fd is closed. Signal dispositions and the signal mask are
    /// reset, so a signal the agent blocks (for a signalfd) or ignores is not blocked or ignored
    /// in the worker; only the stop signal starts blocked (see WireProtocol).
    static func spawn(executable: String, arguments: [String], stdout: Int32 = 2, fd3: Int32? = nil) throws(SpawnError)
        -> pid_t
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if stdout != 1 { posix_spawn_file_actions_adddup2(&actions, stdout, 1) }
        if let fd3 { posix_spawn_file_actions_adddup2(&actions, fd3, WireProtocol.workerFD) }
        // Without it (glibc < 2.34) the agent's own fds are still close-on-exec.
        _ = clinux_spawn_add_closefrom(&actions, fd3 == nil ? 3 : WireProtocol.workerFD + 1)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Only the stop signal starts blocked: one sent before the worker can take it (it installs
        // its handler after starting) waits, pending, instead of killing it.
        var onlyStop = sigset_t()
        sigemptyset(&onlyStop)
        sigaddset(&onlyStop, WireProtocol.stopSignal)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &onlyStop)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envp = childEnvironment().map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw SpawnError(message: "Cannot start \(executable): \(String(cString: strerror(status))).")
        }
        return pid
    }

    /// Our environment, with the Swift runtime's crash backtracer off unless asked for: a crashing
    /// handler is reported as "crashed" either way, and symbolicating its backtrace would keep
    /// the dead worker around (and a core busy) for seconds.
    private static func childEnvironment() -> [String] {
        var entries: [String] = []
        var index = 0
        while let entry = environ[index] {
            entries.append(String(cString: entry))
            index += 1
        }
        if !entries.contains(where: { $0.hasPrefix("SWIFT_BACKTRACE=") }) {
            entries.append("SWIFT_BACKTRACE=enable=no")
        }
        return entries
    }

    /// A pidfd for `pid` (readable once it has exited), or nil where the kernel or C library
    /// lacks pidfd_open (Linux < 5.3); callers then poll with waitpid.
    static func openPIDFD(_ pid: pid_t) -> Int32? {
        let fd = clinux_pidfd_open(pid)
        return fd >= 0 ? fd : nil
    }

    /// waitpid without blocking: the status if `pid` has exited (and is now reaped), else nil.
    static func reapIfExited(_ pid: pid_t) -> ExitStatus? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return ExitStatus(raw: status) }
            if result < 0 && errno == EINTR { continue }
            // 0: still running. ECHILD: not ours any more (someone else reaped it): nothing to wait for.
            return result < 0 ? ExitStatus(raw: -1) : nil
        }
    }

    /// waitpid, blocking: only for a child that was just sent SIGKILL.
    @discardableResult
    static func reapBlocking(_ pid: pid_t) -> ExitStatus {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, 0)
            if result == pid { return ExitStatus(raw: status) }
            if result < 0 && errno == EINTR { continue }
            return ExitStatus(raw: -1)
        }
    }

    /// Waits up to `timeout` seconds for `pid` to exit and reaps it; kills it (SIGKILL) if it
    /// has not exited by then. For short-lived helpers such as the probe. Returns the status and
    /// whether it had to be killed.
    static func waitOrKill(_ pid: pid_t, timeout: Double) -> (status: ExitStatus, killed: Bool) {
        let deadline = MonotonicDeadline(after: timeout)
        if let pidfd = openPIDFD(pid) {
            defer { close(pidfd) }
            var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            while !deadline.passed {
                if poll(&entry, 1, deadline.remainingMilliseconds) > 0 { break }
            }
            if let status = reapIfExited(pid) { return (status, false) }
        } else {
            // No pidfd: look a few times a second until the deadline.
            while true {
                if let status = reapIfExited(pid) { return (status, false) }
                if deadline.passed { break }
                usleep(20_000)
            }
        }
        kill(pid, SIGKILL)
        return (reapBlocking(pid), true)
    }
}

/// How a child ended, from waitpid's status word.
struct ExitStatus: CustomStringConvertible, Equatable {
    /// The raw wait status; -1 when it is unknown (the child was reaped elsewhere).
    var raw: Int32

    var signal: Int32? { raw >= 0 && raw & 0x7F != 0 && raw & 0x7F != 0x7F ? raw & 0x7F : nil }
    var exitCode: Int32? { raw >= 0 && raw & 0x7F == 0 ? (raw >> 8) & 0xFF : nil }

    var description: String {
        if let exitCode { return "exited with status \(exitCode)" }
        if let signal {
            let name = strsignal(signal).map { String(cString: $0) } ?? "signal"
            return "was killed by signal \(signal) (\(name))"
        }
        return "ended (status unknown)"
    }
}

/// A point on the monotonic clock some seconds ahead.
struct MonotonicDeadline {
    let nanoseconds: UInt64
    init(after seconds: Double) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        nanoseconds = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec) + UInt64(max(0, seconds) * 1e9)
    }
    private var remainingNanoseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let current = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        return nanoseconds > current ? nanoseconds - current : 0
    }
    var passed: Bool { remainingNanoseconds == 0 }
    var remainingSeconds: Double { Double(remainingNanoseconds) / 1e9 }
    var remainingMilliseconds: Int32 { Int32(clamping: (remainingNanoseconds + 999_999) / 1_000_000) }
}
