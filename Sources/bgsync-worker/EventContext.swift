// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import BGSyncWire
import CBGSyncPlugin

#if canImport(Glibc)
import Glibc
#endif

/// The `bgsync_event` a plugin sees: an event plus the C strings and buffers handed out for it,
/// all freed together when `handle` has returned (the ABI's lifetime rule).
final class EventContext {
    let event: WireEvent
    /// Option names in byte order, as `option_name` indexes them.
    let names: [String]
    /// The file functions, held beneath the event's confinement root.
    let files: ConfinedFiles
    private var strings: [String: UnsafeMutablePointer<CChar>] = [:]
    private var buffers: [String: UnsafeMutableRawPointer] = [:]

    /// What `deadline` answers (seconds since the epoch): the event's cap, then moved by
    /// progress (see `progressed`).
    private(set) var deadline: Double
    private var lastDone: UInt64?
    private var lastProgressSent: Double?
    /// A report held back by the rate limit, sent before the outcome so the agent ends with the last.
    var heldProgress: WireReply?
    /// The last byte report (running totals of the event), what the outcome carries.
    private(set) var bytes = WireBytes()
    private var lastBytesSent: Double?
    /// A byte report held back by its rate limit, sent before the outcome.
    var heldBytes: WireReply?

    init(event: WireEvent) {
        self.event = event
        deadline = event.deadline
        names = event.options.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        files = ConfinedFiles(root: event.root)
    }

    deinit {
        for pointer in strings.values { free(pointer) }
        for pointer in buffers.values { free(pointer) }
    }

    /// At most this often a progress frame goes to the agent; reports in between are dropped.
    static let progressFrameInterval = 0.05

    /// Wall-clock seconds since the epoch, as the agent's deadlines count them.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// A progress report: moves the deadline when `done` changed (as the agent does) and returns
    /// what should go to the agent now: nothing within `progressFrameInterval` of the last frame
    /// (the report is held, and goes later or before the outcome).
    func progressed(_ progress: WireReply, done: UInt64, now: Double = EventContext.now()) -> WireReply? {
        if lastDone != done {
            lastDone = done
            deadline = event.deadline(afterProgressAt: now)
        }
        if let last = lastProgressSent, now - last < Self.progressFrameInterval {
            heldProgress = progress
            return nil
        }
        lastProgressSent = now
        heldProgress = nil
        return progress
    }

    /// At most this often a byte frame goes to the agent (BGSYNC_BYTES_REPORT_INTERVAL_MS): a fast
    /// transfer's callbacks come thousands of times a second.
    static let bytesFrameInterval = Double(BGSYNC_BYTES_REPORT_INTERVAL_MS) / 1000

    /// A byte report: bytes moved is progress (the deadline moves from now, as the agent moves
    /// it); returns the frame to send now, nil within `bytesFrameInterval` of the last one (held).
    func moved(_ report: WireBytes, now: Double = EventContext.now()) -> WireReply? {
        if report.sent != bytes.sent || report.received != bytes.received {
            deadline = event.deadline(afterProgressAt: now)
        }
        bytes = report
        let frame = WireReply.bytes(eventID: event.id, report)
        if let last = lastBytesSent, now - last < Self.bytesFrameInterval {
            heldBytes = frame
            return nil
        }
        lastBytesSent = now
        heldBytes = nil
        return frame
    }

    /// The opaque pointer handed to the plugin, and back.
    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    static func from(_ pointer: OpaquePointer?) -> EventContext? {
        guard let pointer else { return nil }
        return Unmanaged<EventContext>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }

    /// The named option, seen through any variant the caller wrapped it in.
    func option(_ name: UnsafePointer<CChar>?) -> Value? {
        guard let name else { return nil }
        return event.options[String(cString: name)]?.unwrappingVariants
    }

    /// A C string for `text`, made once per `key` and kept until the event ends, so that calling
    /// an accessor in a loop neither leaks nor invalidates earlier pointers.
    func cString(_ key: String, _ text: () -> String?) -> UnsafePointer<CChar>? {
        if let kept = strings[key] { return UnsafePointer(kept) }
        guard let value = text(), let copy = strdup(value) else { return nil }
        strings[key] = copy
        return UnsafePointer(copy)
    }

    /// A byte buffer made once per `key`; never NULL for an empty array.
    func bytes(_ key: String, _ content: [UInt8]) -> (UnsafeRawPointer, Int)? {
        if let kept = buffers[key] { return (UnsafeRawPointer(kept), content.count) }
        guard let buffer = malloc(max(1, content.count)) else { return nil }
        content.withUnsafeBytes { source in
            if let base = source.baseAddress { buffer.copyMemory(from: base, byteCount: content.count) }
        }
        buffers[key] = buffer
        return (UnsafeRawPointer(buffer), content.count)
    }
}
