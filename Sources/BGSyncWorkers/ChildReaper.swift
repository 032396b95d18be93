// SPDX-License-Identifier: Apache-2.0
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

/// Reaps child processes from the loop without ever blocking it, and without touching the
/// process-wide SIGCHLD disposition (other parts of the agent may start processes too): each
/// child gets a pidfd, which becomes readable when it exits. Where pidfds are missing, it looks
/// with waitpid(WNOHANG) on a timer, a few times a second.
final class ChildReaper {
    private let loop: MainLoop
    private var waiting: [pid_t: Waiter] = [:]

    private final class Waiter {
        let onExit: (ExitStatus) -> Void
        var pidfd: Int32?
        var watch: MainLoop.Watch?
        var timer: MainLoop.Timer?
        init(onExit: @escaping (ExitStatus) -> Void) { self.onExit = onExit }
    }

    init(loop: MainLoop) { self.loop = loop }

    /// Calls `onExit` on the loop once `pid` has exited and been reaped.
    func watch(_ pid: pid_t, onExit: @escaping (ExitStatus) -> Void) {
        let waiter = Waiter(onExit: onExit)
        waiting[pid] = waiter
        if let pidfd = ChildProcess.openPIDFD(pid) {
            waiter.pidfd = pidfd
            waiter.watch = loop.addWatch(fd: pidfd, events: .readable) { [unowned self] _ in self.check(pid) }
        } else {
            check(pid)
        }
    }

    private func check(_ pid: pid_t, delay: Double = 0.01) {
        guard let waiter = waiting[pid] else { return }
        guard let status = ChildProcess.reapIfExited(pid) else {
            if waiter.pidfd == nil {
                waiter.timer = loop.addTimer(after: delay) { [unowned self] in
                    self.check(pid, delay: min(delay * 2, 0.5))
                }
            }
            return
        }
        finish(pid, waiter)
        waiter.onExit(status)
    }

    private func finish(_ pid: pid_t, _ waiter: Waiter) {
        waiting[pid] = nil
        if let watch = waiter.watch { loop.removeWatch(watch) }
        if let timer = waiter.timer { loop.cancelTimer(timer) }
        if let pidfd = waiter.pidfd { close(pidfd) }
    }

    /// Waits for every child still watched, blocking. Only for shutdown, after SIGKILL: the
    /// kernel ends a killed process promptly. Their `onExit` is not called.
    func reapAllBlocking() {
        for (pid, waiter) in waiting {
            finish(pid, waiter)
            // One still running (an idle worker given time for its plugin's deinit) must not
            // hold up the caller; an ended one is a zombie, for which the signal is harmless.
            _ = Glibc.kill(pid, SIGKILL)
            ChildProcess.reapBlocking(pid)
        }
    }

    var count: Int { waiting.count }
}
