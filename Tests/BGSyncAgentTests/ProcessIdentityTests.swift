// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import CLinux
import Testing

@testable import BGSyncAgent

#if canImport(Glibc)
import Glibc
#endif

/// Identity is read from /proc only while a pidfd shows the caller's process still running: a
/// caller that exited, and a PID that now names another process, are refused.
struct ProcessIdentityTests {
    /// A real child process (`sleep`), killed and left unreaped when `exit` is true.
    func child() throws -> pid_t {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("60"), nil]
        defer { for pointer in argv { free(pointer) } }
        let status = posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ)
        try #require(status == 0)
        return pid
    }

    func killAndWaitUnreaped(_ pid: pid_t) {
        kill(pid, SIGKILL)
        var info = siginfo_t()
        _ = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT)  // a zombie now, not reaped
    }

    @Test func aRunningUnsandboxedProcessIsUnsandboxed() throws {
        let pid = try child()
        defer {
            killAndWaitUnreaped(pid)
            waitpid(pid, nil, 0)
        }
        let process = try ProcessHandle(opening: pid, sender: ":1.1")
        defer { process.close() }
        #expect(process.isRunning)
        #expect(try ProcessIdentity.sandbox(of: process, sender: ":1.1") == .unsandboxed)
    }

    @Test func aProcessThatExitedIsRefused() throws {
        let pid = try child()
        let process = try ProcessHandle(opening: pid, sender: ":1.1")
        defer { process.close() }
        killAndWaitUnreaped(pid)
        defer { waitpid(pid, nil, 0) }
        #expect(!process.isRunning)
        #expect(throws: SyncError.self) { try ProcessIdentity.sandbox(of: process, sender: ":1.1") }
    }

    /// The race the pidfd closes: the caller exits, is reaped, and its PID names another, live,
    /// unsandboxed process (here the test itself stands for it). /proc then reads fine; only
    /// the pidfd tells that it is not the caller's process any more.
    @Test func aReusedPIDIsRefused() throws {
        let pid = try child()
        let pidfd = clinux_pidfd_open(pid)
        try #require(pidfd >= 0)
        defer { close(pidfd) }
        killAndWaitUnreaped(pid)
        waitpid(pid, nil, 0)
        #expect(clinux_pidfd_pid(pidfd) == 0, "the kernel says the pidfd's process has gone")
        let reused = ProcessHandle(pid: getpid(), pidfd: pidfd)
        do {
            _ = try ProcessIdentity.sandbox(of: reused, sender: ":1.1")
            Issue.record("a PID that now names another process was trusted")
        } catch {
            #expect(error.code == .accessDenied)
            #expect(error.message.contains("exited before it could be checked"))
        }
    }

    @Test func theBusPidfdNamesItsProcess() throws {
        let pid = try child()
        defer {
            killAndWaitUnreaped(pid)
            waitpid(pid, nil, 0)
        }
        let pidfd = clinux_pidfd_open(pid)
        try #require(pidfd >= 0)
        defer { close(pidfd) }
        let process = try ProcessHandle(borrowing: pidfd, sender: ":1.1")
        #expect(process.pid == pid)
    }
}
