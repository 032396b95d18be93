// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

/// The first frame each way: who speaks which protocol version. Its start is frozen for every
/// version, past and future, since a reader must find the version of a peer it cannot otherwise
/// read: payload byte 0 is `H`, bytes 1...4 the version as a little-endian UInt32. A later
/// version may append fields; a reader of another version ignores them (`version(of:)`).
public struct WireHello: WireMessage, Equatable {
    public static let kind = UInt8(ascii: "H")
    public var version: UInt32

    public init(version: UInt32 = WireProtocol.version) { self.version = version }

    public init(from reader: inout WireReader) throws(WireError) {
        version = try reader.u32()
    }

    public func encode(to writer: inout WireWriter) {
        writer.u32(version)
    }

    /// The version a hello payload of any version announces; nil if `payload` is no hello.
    /// Reads only the frozen bytes: what a later version appends does not matter.
    public static func version(of payload: [UInt8]) -> UInt32? {
        guard payload.count >= 5, payload[0] == kind else { return nil }
        return payload[1...4].reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// Agent → worker: run one event. The worker's view of the core's `SyncEvent`: what the ABI's
/// host functions answer, with times as seconds since the Unix epoch (the worker links no
/// Foundation, so no `Date`). `root` is the registration's confinement root, beneath which the
/// worker's file functions (`ConfinedFiles`) keep every app-named path; nil when unconfined.
public struct WireEvent: WireMessage, Equatable {
    public static let kind = UInt8(ascii: "E")

    public var id: UInt64
    public var appID: String
    public var tag: String
    public var periodic: Bool
    public var options: [String: Value]
    public var attempt: UInt32
    public var lastChance: Bool
    /// When the event's time cap runs out.
    public var deadline: Double
    public var root: String?
    /// Once the handler reports progress it is held to this many seconds without progress
    /// instead of `deadline`, and never past `ceiling` (both nil: `deadline` alone).
    public var stallTimeout: Double?
    public var ceiling: Double?

    public init(
        id: UInt64, appID: String, tag: String, periodic: Bool, options: [String: Value], attempt: UInt32,
        lastChance: Bool, deadline: Double, root: String?, stallTimeout: Double?, ceiling: Double?
    ) {
        self.id = id
        self.appID = appID
        self.tag = tag
        self.periodic = periodic
        self.options = options
        self.attempt = attempt
        self.lastChance = lastChance
        self.deadline = deadline
        self.root = root
        self.stallTimeout = stallTimeout
        self.ceiling = ceiling
    }

    public init(from reader: inout WireReader) throws(WireError) {
        id = try reader.u64()
        appID = try reader.string()
        tag = try reader.string()
        periodic = try reader.bool()
        options = try reader.options()
        attempt = try reader.u32()
        lastChance = try reader.bool()
        deadline = try reader.double()
        root = try reader.optionalString()
        stallTimeout = try reader.optionalDouble()
        ceiling = try reader.optionalDouble()
    }

    public func encode(to writer: inout WireWriter) {
        writer.u64(id)
        writer.string(appID)
        writer.string(tag)
        writer.bool(periodic)
        writer.options(options)
        writer.u32(attempt)
        writer.bool(lastChance)
        writer.double(deadline)
        writer.optionalString(root)
        writer.optionalDouble(stallTimeout)
        writer.optionalDouble(ceiling)
    }

    /// When the handler is killed if it reported progress at `lastProgress` (and nothing since):
    /// the core's `SyncEvent.deadline(afterProgressAt:)`, which the agent applies to the same numbers.
    public func deadline(afterProgressAt lastProgress: Double) -> Double {
        guard let stallTimeout, let ceiling else { return deadline }
        return min(lastProgress + stallTimeout, ceiling)
    }
}

/// Worker → agent: how far the event `eventID` got (any number, while it runs: progress in the
/// handler's units, and bytes moved), then what the handler made of it, with the bytes the event
/// moved in all.
public enum WireReply: WireMessage, Equatable {
    public static let kind = UInt8(ascii: "R")

    case progress(eventID: UInt64, done: UInt64, total: UInt64, text: String)
    /// A byte report (bgsync-plugin.h's `report_bytes`): running totals of the event.
    case bytes(eventID: UInt64, WireBytes)
    case outcome(eventID: UInt64, WireOutcome, moved: WireBytes)

    public var eventID: UInt64 {
        switch self {
        case .progress(let id, _, _, _), .bytes(let id, _), .outcome(let id, _, _): id
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let form = try reader.u8()
        let eventID = try reader.u64()
        switch form {
        case UInt8(ascii: "p"):
            self = .progress(
                eventID: eventID, done: try reader.u64(), total: try reader.u64(),
                text: try reader.string(maxBytes: WireProtocol.maxReplyTextBytes))
        case UInt8(ascii: "b"):
            self = .bytes(eventID: eventID, try WireBytes(from: &reader))
        case UInt8(ascii: "o"):
            let outcome = try WireOutcome(from: &reader)
            self = .outcome(eventID: eventID, outcome, moved: try WireBytes(from: &reader))
        default:
            throw WireError("\(form) is not a reply form")
        }
    }

    public func encode(to writer: inout WireWriter) {
        switch self {
        case .progress(let eventID, let done, let total, let text):
            writer.u8(UInt8(ascii: "p"))
            writer.u64(eventID)
            writer.u64(done)
            writer.u64(total)
            writer.string(text)
        case .bytes(let eventID, let bytes):
            writer.u8(UInt8(ascii: "b"))
            writer.u64(eventID)
            bytes.encode(to: &writer)
        case .outcome(let eventID, let outcome, let moved):
            writer.u8(UInt8(ascii: "o"))
            writer.u64(eventID)
            outcome.encode(to: &writer)
            moved.encode(to: &writer)
        }
    }
}

extension WireReply {
    /// This reply as a frame of protocol 1, for an agent of the release before hellos (a new
    /// worker may serve one during an upgrade, `WireProtocol.servesVersion1`); nil for a reply
    /// protocol 1 has no form for (a byte report). Protocol 1's outcome is today's without the
    /// bytes moved; its progress is today's.
    public func version1Frame() throws(WireError) -> [UInt8]? {
        var writer = WireWriter()
        writer.reserveHeader()
        writer.u8(Self.kind)
        switch self {
        case .bytes: return nil
        case .progress: encode(to: &writer)
        case .outcome(let eventID, var outcome, _):
            writer.u8(UInt8(ascii: "o"))
            writer.u64(eventID)
            // Protocol 1 knows no advanced retry ('a'): a plain one, which it counts.
            if case .retry(let after, let detail, true) = outcome { outcome = .retry(after: after, detail: detail) }
            outcome.encode(to: &writer)
        }
        return try writer.finishFrame()
    }
}

/// Bytes an event moved: running totals sent and received, and how many it expects to move in
/// all, sent and received together (0: unknown).
public struct WireBytes: Sendable, Equatable {
    public var sent: UInt64
    public var received: UInt64
    public var expected: UInt64

    public init(sent: UInt64 = 0, received: UInt64 = 0, expected: UInt64 = 0) {
        self.sent = sent
        self.received = received
        self.expected = expected
    }

    /// Sent and received together (never wrapping).
    public var moved: UInt64 { sent.addingReportingOverflow(received).overflow ? .max : sent + received }

    init(from reader: inout WireReader) throws(WireError) {
        sent = try reader.u64()
        received = try reader.u64()
        expected = try reader.u64()
    }

    func encode(to writer: inout WireWriter) {
        writer.u64(sent)
        writer.u64(received)
        writer.u64(expected)
    }
}

/// What a handler returned: the core's `HandlerOutcome` on the wire.
public enum WireOutcome: Sendable, Equatable {
    case success(detail: String)
    /// `after`: the handler's lower bound on the wait (seconds), nil for the back-off's own.
    /// `advanced`: the attempt moved the work forward (BGSYNC_RESULT_ADVANCED); sent as its own
    /// status byte, so an outcome without it is the same bytes as before the flag existed.
    case retry(after: Double?, detail: String, advanced: Bool = false)
    case failure(detail: String)

    init(from reader: inout WireReader) throws(WireError) {
        let status = try reader.u8()
        switch status {
        case UInt8(ascii: "s"): self = .success(detail: try Self.detail(&reader))
        case UInt8(ascii: "r"): self = .retry(after: try reader.optionalDouble(), detail: try Self.detail(&reader))
        case UInt8(ascii: "a"):
            self = .retry(after: try reader.optionalDouble(), detail: try Self.detail(&reader), advanced: true)
        case UInt8(ascii: "f"): self = .failure(detail: try Self.detail(&reader))
        default: throw WireError("\(status) is not an outcome")
        }
    }

    private static func detail(_ reader: inout WireReader) throws(WireError) -> String {
        try reader.string(maxBytes: WireProtocol.maxReplyTextBytes)
    }

    /// The same outcome with its detail cut to what the agent accepts (at a character boundary).
    public var fitted: WireOutcome {
        switch self {
        case .success(let detail): .success(detail: WireProtocol.fitted(detail))
        case .retry(let after, let detail, let advanced):
            .retry(after: after, detail: WireProtocol.fitted(detail), advanced: advanced)
        case .failure(let detail): .failure(detail: WireProtocol.fitted(detail))
        }
    }

    func encode(to writer: inout WireWriter) {
        switch self {
        case .success(let detail):
            writer.u8(UInt8(ascii: "s"))
            writer.string(detail)
        case .retry(let after, let detail, let advanced):
            writer.u8(UInt8(ascii: advanced ? "a" : "r"))
            writer.optionalDouble(after)
            writer.string(detail)
        case .failure(let detail):
            writer.u8(UInt8(ascii: "f"))
            writer.string(detail)
        }
    }
}
