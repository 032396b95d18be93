// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWire
import CLinux
import MainLoop

import struct Foundation.Date

#if canImport(Glibc)
import Glibc
#endif

/// One event waiting for, or running in, a worker.
struct WorkerJob {
    let event: SyncEvent
    let completion: (HandlerOutcome) -> Void
    /// The agent asked it to stop (SIGUSR1 sent; killed at the end of the grace period).
    var stopRequested = false
    /// The `done` of the last progress report; progress is a change of it.
    var lastDone: UInt64?
    /// The last byte report (running totals); bytes moved are progress too.
    var bytes: WireBytes?
}

/// The agent's end of one `bgsync-worker --serve` process: its socket, the bytes in flight
/// both ways, and the event it runs. Loop thread only.
final class WorkerConnection {
    let handler: String
    let pid: pid_t
    let fd: Int32
    var watch: MainLoop.Watch?
    var job: WorkerJob?
    /// Fires at the running event's deadline.
    var deadlineTimer: WallClockTimer?
    /// The running event's deadline: its cap, or, once it reports progress, the stall time
    /// after the last progress (never past the ceiling).
    var deadline = Date.distantFuture
    /// Ends a stop request's grace period.
    var graceTimer: MainLoop.Timer?
    /// When `graceTimer` fires (monotonic ns), to tell whether a new stop request ends sooner.
    var graceEnds: UInt64?
    /// When it last finished an event (monotonic ns), to evict the least recently used.
    var lastUsed: UInt64
    /// Set by a reload while it runs an event: stop it once that event is done.
    var retireWhenDone = false
    private var incoming = FrameDecoder()
    /// Kept between reads (a new zeroed 16 KiB array per readable event showed in the storm's profile).
    private var readBuffer = [UInt8](repeating: 0, count: 16 * 1024)
    /// The agent's hello goes first, sent with the first event (WireProtocol).
    private var outgoing: [UInt8] = WorkerConnection.helloFrame
    /// The worker's hello came, of this agent's version: what it sends next are replies.
    private(set) var greeted = false

    /// A hello cannot be too large for a frame: the fallback is never taken.
    static let helloFrame = (try? WireProtocol.frame(WireHello())) ?? []

    var isIdle: Bool { job == nil }

    /// Starts `bgsync-worker --serve plugin [--state-dir DIR]` with its end of a new socketpair as fd 3.
    init(handler: String, pluginPath: String, workerExecutable: String, stateDirectory: String? = nil)
        throws(SpawnError)
    {
        var pair: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &pair) == 0 else {
            throw SpawnError(message: "Cannot make a socket for a worker: \(String(cString: strerror(errno))).")
        }
        defer { close(pair[1]) }
        do {
            pid = try ChildProcess.spawn(
                executable: workerExecutable,
                arguments: ["--serve", pluginPath] + (stateDirectory.map { ["--state-dir", $0] } ?? []), fd3: pair[1])
        } catch {
            close(pair[0])
            throw error
        }
        fd = pair[0]
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.handler = handler
        lastUsed = MainLoop.monotonicNow()
    }

    /// Queues `frame` and sends what the socket takes now. False if the worker is gone.
    func send(_ frame: [UInt8]) -> Bool {
        outgoing += frame
        return flush()
    }

    /// Sends queued bytes without blocking; watches for writability while some remain.
    func flush() -> Bool {
        while !outgoing.isEmpty {
            let sent = outgoing.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                return false
            }
            outgoing.removeFirst(sent)
        }
        watch?.events = outgoing.isEmpty ? .readable : [.readable, .writable]
        return true
    }

    enum ReadResult {
        /// Complete replies, and whether the worker has gone since (end of file or a read error).
        /// A worker may answer and then exit, as it does when its plugin cannot start.
        case replies([WireReply], closed: Bool)
        case protocolError(String)
        /// The worker is of another bgsync: its hello announced `version`, or (nil) it ended or
        /// sent something else before any hello, as a worker from before hellos does. It ran
        /// nothing of the event.
        case otherVersion(UInt32?)
    }

    /// Reads what is available without blocking and returns the complete replies in it.
    func readAvailable() -> ReadResult {
        var closed = false
        while true {
            let got = readBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if got > 0 {
                incoming.append(readBuffer[..<got])
                continue
            }
            if got < 0 && errno == EINTR { continue }
            if got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            closed = true
            break
        }
        var replies: [WireReply] = []
        do {
            while let payload = try incoming.next() {
                guard greeted else {
                    guard WireHello.version(of: payload) == WireProtocol.version else {
                        return .otherVersion(WireHello.version(of: payload))
                    }
                    greeted = true
                    continue
                }
                replies.append(try WireProtocol.decode(WireReply.self, from: payload))
            }
        } catch {
            return greeted ? .protocolError("\(error)") : .otherVersion(nil)
        }
        if closed && !greeted { return .otherVersion(nil) }
        return .replies(replies, closed: closed)
    }

    /// Sends SIGKILL. The caller stops watching and hands the pid to the reaper.
    func kill() {
        _ = Glibc.kill(pid, SIGKILL)
    }

    func closeSocket() {
        close(fd)
    }
}
