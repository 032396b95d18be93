// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin
import FoundationEssentials

/// The running event's link back to the agent: whether it was asked to stop (a condition it
/// needs stopped holding) and where progress goes. Inside a worker it is backed by the host's
/// growth-2 functions `cancelled`, `cancel_fd` and `progress` and growth 3's `report_bytes`
/// (absent, and so never called, in an older host's smaller table); in tests, by closures.
///
/// A handler that reports progress is held to the agent's stall time instead of the event cap:
/// each report moves `deadline` to what the host says it now is.
public final class HandlerControl: @unchecked Sendable {
    private let isCancelledNow: @Sendable () -> Bool
    private let report: (UInt64, UInt64, String) -> Date?
    private let reportMoved: (UInt64, UInt64, UInt64) -> Date?
    /// A file descriptor that turns readable once the event is asked to stop (the host's), or -1:
    /// for `HTTPRequest.cancelFD` and other waits beside the handler's own descriptors.
    public let cancelFD: Int32
    /// The last `reportBytes` (tests look at them; a handler reads its own totals here).
    public private(set) var bytesSent: UInt64 = 0
    public private(set) var bytesReceived: UInt64 = 0
    public private(set) var bytesExpected: UInt64 = 0
    /// How many byte reports were made (tests look at it).
    public private(set) var byteReports = 0
    /// The deadline after the last progress report, nil before one.
    public private(set) var movedDeadline: Date?
    /// Reports made so far (tests look at them).
    public private(set) var reports: [(done: UInt64, total: UInt64, text: String)] = []

    /// For tests: `cancelled` is polled; `progress` sees each report and may return a new deadline.
    public init(
        cancelled: @escaping @Sendable () -> Bool = { false },
        progress: @escaping (UInt64, UInt64, String) -> Date? = { _, _, _ in nil },
        bytes: @escaping (_ sent: UInt64, _ received: UInt64, _ expected: UInt64) -> Date? = { _, _, _ in nil },
        cancelFD: Int32 = -1
    ) {
        isCancelledNow = cancelled
        report = progress
        reportMoved = bytes
        self.cancelFD = cancelFD
    }

    /// Backed by the host's table; the functions a smaller (older) table lacks read as absent.
    init(host: UnsafePointer<bgsync_host>, event: OpaquePointer?) {
        let size = Int(host.pointee.struct_size)
        func has(_ field: PartialKeyPath<bgsync_host>, _ width: Int) -> Bool {
            guard let offset = MemoryLayout<bgsync_host>.offset(of: field) else { return false }
            return size >= offset + width
        }
        let pointerWidth = MemoryLayout<UnsafeRawPointer>.size
        let cancelled = has(\bgsync_host.cancelled, pointerWidth) ? host.pointee.cancelled : nil
        let progress = has(\bgsync_host.progress, pointerWidth) ? host.pointee.progress : nil
        let reportBytes = has(\bgsync_host.report_bytes, pointerWidth) ? host.pointee.report_bytes : nil
        let cancelFD = has(\bgsync_host.cancel_fd, pointerWidth) ? host.pointee.cancel_fd : nil
        self.cancelFD = cancelFD?(event) ?? -1
        let deadline = host.pointee.deadline
        let eventBits = Int(bitPattern: event.map(UnsafeRawPointer.init))
        isCancelledNow = {
            guard let cancelled else { return false }
            return cancelled(OpaquePointer(bitPattern: eventBits))
        }
        report = { done, total, text in
            guard let progress else { return nil }
            text.withCString { progress(event, done, total, $0) }
            return deadline.map { Date(timeIntervalSince1970: $0(event)) }
        }
        reportMoved = { sent, received, expected in
            guard let reportBytes else { return nil }
            reportBytes(event, sent, received, expected)
            return deadline.map { Date(timeIntervalSince1970: $0(event)) }
        }
    }

    /// True once the agent asked this event to stop. Return soon (a retry): the attempt is not
    /// counted, and the registration waits for its conditions again.
    public var isCancelled: Bool { isCancelledNow() }

    /// Reports progress in the handler's own units (`total` 0: unknown) with a short text.
    public func progress(done: UInt64, total: UInt64, _ text: String) {
        reports.append((done, total, text))
        if let moved = report(done, total, text) { movedDeadline = moved }
    }

    /// Reports the event's bytes so far: running totals over all its transfers (they never go
    /// down) and the bytes it expects to move in all, sent and received together (0: unknown).
    /// Call it as bytes move: the host rate-limits what reaches the agent. Moving bytes is
    /// progress: the deadline moves with them.
    public func reportBytes(sent: UInt64, received: UInt64, expected: UInt64) {
        bytesSent = sent
        bytesReceived = received
        bytesExpected = expected
        byteReports += 1
        if let moved = reportMoved(sent, received, expected) { movedDeadline = moved }
    }
}

/// Running byte totals of an event over several exchanges, reported through `reportBytes` as
/// each exchange moves: feed it the exchange's own counts (`moving`), then `finished` when it
/// ends. With HTTPClient: `request.onProgress = { meter.moving(sent: $0.sent, received: $0.received) }`
/// and `meter.finished(sent: response.bytesSent, received: response.bytesReceived)`.
public final class TransferMeter {
    public let control: HandlerControl
    /// Bytes the event expects to move in all (0: unknown); change it as you learn more.
    public var expected: UInt64
    /// Totals of the exchanges that ended.
    public private(set) var sent: UInt64 = 0
    public private(set) var received: UInt64 = 0

    public init(control: HandlerControl, expected: UInt64 = 0) {
        self.control = control
        self.expected = expected
    }

    /// The running exchange has moved this much so far.
    public func moving(sent current: UInt64, received currentReceived: UInt64) {
        control.reportBytes(sent: sent + current, received: received + currentReceived, expected: expected)
    }

    /// The running exchange ended having moved this much.
    public func finished(sent current: UInt64, received currentReceived: UInt64) {
        sent += current
        received += currentReceived
        control.reportBytes(sent: sent, received: received, expected: expected)
    }
}
