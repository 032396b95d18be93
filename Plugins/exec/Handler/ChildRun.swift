// SPDX-License-Identifier: Apache-2.0
import CExecSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A started child: collects the tail of its stderr and waits for it to end, killing its
/// process group when time runs out.
final class ChildRun {
    enum Ending: Equatable {
        case exited(Int32)
        case signalled(Int32)
        case timedOut(seconds: Int)
    }

    /// How much of the child's stderr is kept (the tail).
    static let stderrKept = 4096
    /// Longest detail line taken from the child's stderr.
    static let lineKept = 160

    private let child: exec_child
    private var stderrOpen = true
    private var stderrTail: [UInt8] = []
    private let started = Date()

    init(child: exec_child) {
        self.child = child
    }

    deinit {
        if stderrOpen { close(child.stderr_fd) }
        close(child.pid_fd)
    }

    /// The last non-empty line the child wrote to stderr, cut to a readable length.
    var stderrLastLine: String? {
        let text = String(decoding: stderrTail, as: UTF8.self)
        guard let line = text.split(whereSeparator: \.isNewline).last(where: { !$0.allSatisfy(\.isWhitespace) }) else {
            return nil
        }
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        return trimmed.count > Self.lineKept ? String(trimmed.prefix(Self.lineKept)) + "…" : trimmed
    }

    /// Waits until the child exits or `deadline` passes; then SIGTERM to its group, SIGKILL
    /// after `killGrace` seconds.
    func wait(until deadline: Date, killGrace: Double) -> Ending {
        if waitForExit(until: deadline) { return reap() }
        kill(-child.pid, SIGTERM)
        if !waitForExit(until: Date().addingTimeInterval(killGrace)) {
            kill(-child.pid, SIGKILL)
        }
        _ = reap()
        // Whatever is left of the group (a child that ignored SIGTERM and its own children).
        kill(-child.pid, SIGKILL)
        return .timedOut(seconds: Int(Date().timeIntervalSince(started).rounded()))
    }

    /// Polls the pidfd and the stderr pipe; true once the child has exited.
    private func waitForExit(until deadline: Date) -> Bool {
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            var fds = [pollfd(fd: child.pid_fd, events: Int16(POLLIN), revents: 0)]
            if stderrOpen { fds.append(pollfd(fd: child.stderr_fd, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(left * 1000, 60_000).rounded(.up)))
            if ready < 0 {
                if errno == EINTR { continue }
                return false
            }
            if fds.count > 1, fds[1].revents != 0 { readStderr() }
            if fds[0].revents != 0 {
                drainStderr()
                return true
            }
        }
    }

    private func readStderr() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(child.stderr_fd, $0.baseAddress, $0.count) }
        if count > 0 {
            stderrTail.append(contentsOf: buffer[..<count])
            if stderrTail.count > Self.stderrKept { stderrTail.removeFirst(stderrTail.count - Self.stderrKept) }
        } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
            close(child.stderr_fd)
            stderrOpen = false
        }
    }

    /// After the child exits: take what is already in the pipe, without waiting for
    /// grandchildren that may hold it open.
    private func drainStderr() {
        while stderrOpen {
            var fd = pollfd(fd: child.stderr_fd, events: Int16(POLLIN), revents: 0)
            guard poll(&fd, 1, 0) > 0 else { return }
            readStderr()
        }
    }

    private func reap() -> Ending {
        var status: Int32 = 0
        while waitpid(child.pid, &status, 0) < 0 {
            if errno != EINTR { return .exited(-1) }
        }
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }
}
