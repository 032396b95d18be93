// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWire

#if canImport(Glibc)
import Glibc
#endif

/// Runs `bgsync-worker --probe` on one plugin file and reads its report.
enum PluginProbe {
    static func run(path: String, workerExecutable: String, timeout: Double) -> Verdict<HandlerInfo> {
        var pipeFDs: [Int32] = [-1, -1]
        // A socketpair rather than pipe2, which Swift's Glibc module hides.
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pipeFDs) == 0 else {
            return .refused("It could not be probed: \(String(cString: strerror(errno))).")
        }
        let (readEnd, writeEnd) = (pipeFDs[0], pipeFDs[1])
        defer { close(readEnd) }
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(executable: workerExecutable, arguments: ["--probe", path], stdout: writeEnd)
        } catch {
            close(writeEnd)
            return .refused("It could not be probed: \(error.message)")
        }
        close(writeEnd)

        let deadline = MonotonicDeadline(after: timeout)
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        while !deadline.passed, output.count < 64 * 1024 {
            guard poll(&entry, 1, deadline.remainingMilliseconds) > 0 else { continue }
            let got = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            output += buffer[..<got]
        }
        // Output ends when the probe exits; give it what is left of the time to do so.
        let (status, killed) = ChildProcess.waitOrKill(pid, timeout: deadline.remainingSeconds)
        if killed {
            return .refused(
                "Loading it did not finish within \(timeout.formatted) s (a library constructor may hang); it was stopped."
            )
        }
        let lines = output.split(separator: UInt8(ascii: "\n"))
        let report = lines.last.flatMap { try? ProbeReport(jsonLine: Array($0)) }
        if let error = report?.error { return .refused(error) }
        do {
            if status.exitCode == 0, let handler = try report?.handler() { return .usable(handler) }
        } catch {
            return .refused(error.message)
        }
        if status.signal != nil { return .refused("Loading it crashed: the probe \(status).") }
        return .refused("The probe \(status) without a usable report; is \(workerExecutable) from this bgsync?")
    }
}

extension Double {
    /// "5" rather than "5.0" for whole numbers, for messages.
    var formatted: String { self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}
