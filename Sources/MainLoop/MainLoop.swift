// SPDX-License-Identifier: Apache-2.0
import CLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A small single-threaded event loop over poll(2): file descriptor watches, monotonic timers and
/// blocks posted from other threads. It sleeps until one of them has something to say; it
/// never polls on a period.
///
/// Everything but `post` and `stop` must be called on the loop's own thread.
public final class MainLoop: @unchecked Sendable {
    public struct Events: OptionSet, Sendable {
        public let rawValue: Int16
        public init(rawValue: Int16) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: Int16(POLLIN))
        public static let writable = Events(rawValue: Int16(POLLOUT))
        /// Reported only: the peer hung up or the fd is in error.
        public static let hangup = Events(rawValue: Int16(POLLHUP | POLLERR))
    }

    /// A watched file descriptor. Change `events` (empty disables it) at any time on the loop thread.
    public final class Watch {
        public let fd: Int32
        public var events: Events
        fileprivate let handler: (Events) -> Void
        fileprivate var removed = false
        fileprivate init(fd: Int32, events: Events, handler: @escaping (Events) -> Void) {
            self.fd = fd
            self.events = events
            self.handler = handler
        }
    }

    /// A one-shot timer on the monotonic clock.
    public final class Timer {
        public let deadline: UInt64
        fileprivate let handler: () -> Void
        fileprivate var cancelled = false
        fileprivate init(deadline: UInt64, handler: @escaping () -> Void) {
            self.deadline = deadline
            self.handler = handler
        }
    }

    private var watches: [Watch] = []
    private var timers: [Timer] = []
    private var iterationEndHandlers: [() -> Void] = []
    private let wakeFD: Int32
    private let posted = Mutex<[@Sendable () -> Void]>([])
    private let stopRequested = Atomic<Bool>(false)

    public init() {
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        precondition(wakeFD >= 0, "eventfd failed: \(String(cString: strerror(errno)))")
        addWatch(fd: wakeFD, events: .readable) { [unowned self] _ in self.drainPosted() }
    }

    deinit { close(wakeFD) }

    /// Nanoseconds on CLOCK_MONOTONIC.
    public static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    @discardableResult
    public func addWatch(fd: Int32, events: Events, _ handler: @escaping (Events) -> Void) -> Watch {
        let watch = Watch(fd: fd, events: events, handler: handler)
        watches.append(watch)
        return watch
    }

    public func removeWatch(_ watch: Watch) {
        watch.removed = true
        watches.removeAll { $0 === watch }
    }

    /// Runs `handler` once, `seconds` from now.
    @discardableResult
    public func addTimer(after seconds: Double, _ handler: @escaping () -> Void) -> Timer {
        let delay = seconds.isFinite ? UInt64(max(0, seconds) * 1e9) : UInt64.max / 2
        let timer = Timer(deadline: Self.monotonicNow() &+ delay, handler: handler)
        timers.append(timer)
        return timer
    }

    public func cancelTimer(_ timer: Timer) {
        timer.cancelled = true
        timers.removeAll { $0 === timer }
    }

    /// Runs `handler` at the end of every iteration, after the watches and timers that fired (to
    /// write out in one go what they produced).
    public func addIterationEndHandler(_ handler: @escaping () -> Void) {
        iterationEndHandlers.append(handler)
    }

    /// Runs `block` on the loop thread soon. Safe from any thread.
    public func post(_ block: @escaping @Sendable () -> Void) {
        posted.withLock { $0.append(block) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Makes `run` return after the current iteration. Safe from any thread.
    public func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Runs until `stop()`.
    public func run() {
        stopRequested.store(false, ordering: .sequentiallyConsistent)
        while !stopRequested.load(ordering: .sequentiallyConsistent) {
            iterate(timeout: nil)
        }
    }

    /// Waits once for something to happen (at most `timeout` seconds; nil waits as long as it
    /// takes) and handles it. Returns false when the wait timed out with nothing to do.
    @discardableResult
    public func iterate(timeout: Double?) -> Bool {
        let now = Self.monotonicNow()
        var waitMs: Int32 = -1
        if let next = timers.map(\.deadline).min() {
            waitMs = next <= now ? 0 : Int32(clamping: (next - now + 999_999) / 1_000_000)
        }
        if let timeout {
            let limit = Int32(clamping: Int64(max(0, timeout) * 1000))
            waitMs = waitMs < 0 ? limit : min(waitMs, limit)
        }
        let active = watches.filter { !$0.events.isEmpty }
        var fds = active.map { pollfd(fd: $0.fd, events: $0.events.rawValue, revents: 0) }
        let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), waitMs) }
        var handled = false
        if ready > 0 {
            for (index, entry) in fds.enumerated() where entry.revents != 0 {
                let watch = active[index]
                guard !watch.removed else { continue }
                handled = true
                watch.handler(Events(rawValue: entry.revents))
            }
        }
        let after = Self.monotonicNow()
        let due = timers.filter { $0.deadline <= after }
        if !due.isEmpty {
            timers.removeAll { $0.deadline <= after }
            for timer in due where !timer.cancelled {
                handled = true
                timer.handler()
            }
        }
        for handler in iterationEndHandlers { handler() }
        return handled
    }

    private func drainPosted() {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
        let blocks = posted.withLock { pending -> [@Sendable () -> Void] in
            defer { pending.removeAll() }
            return pending
        }
        for block in blocks { block() }
    }
}
