// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin
import Foundation

/// The running event's link back to the agent: whether it was asked to stop (a condition it
/// needs stopped holding) and where progress goes. Inside a worker it is backed by the host's
/// growth-2 functions `cancelled` and `progress` (absent, and so never called, in an older host's
/// smaller table); in tests, by closures.
///
/// A handler that reports progress is held to the agent's stall time instead of the event cap:
/// each report moves `deadline` to what the host says it now is.
public final class HandlerControl: @unchecked Sendable {
    private let isCancelledNow: @Sendable () -> Bool
    private let report: (UInt64, UInt64, String) -> Date?
    /// The deadline after the last progress report, nil before one.
    public private(set) var movedDeadline: Date?
    /// Reports made so far (tests look at them).
    public private(set) var reports: [(done: UInt64, total: UInt64, text: String)] = []

    /// For tests: `cancelled` is polled; `progress` sees each report and may return a new deadline.
    public init(
        cancelled: @escaping @Sendable () -> Bool = { false },
        progress: @escaping (UInt64, UInt64, String) -> Date? = { _, _, _ in nil }
    ) {
        isCancelledNow = cancelled
        report = progress
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
    }

    /// True once the agent asked this event to stop. Return soon (a retry): the attempt is not
    /// counted, and the registration waits for its conditions again.
    public var isCancelled: Bool { isCancelledNow() }

    /// Reports progress in the handler's own units (`total` 0: unknown) with a short text.
    public func progress(done: UInt64, total: UInt64, _ text: String) {
        reports.append((done, total, text))
        if let moved = report(done, total, text) { movedDeadline = moved }
    }
}
