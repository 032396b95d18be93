// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

import struct Foundation.Data
import class Foundation.JSONDecoder
import class Foundation.JSONEncoder

#if canImport(Glibc)
import Glibc
#endif

/// The protocol between the agent and a `bgsync-worker` process.
///
/// The worker is started with `bgsync-worker --serve PLUGIN` and one end of a `SOCK_STREAM`
/// socketpair as fd 3 (stdin is /dev/null; stdout and stderr go to the agent's stderr, so a
/// plugin printing to stdout cannot disturb the protocol). Both directions carry frames: a
/// 4-byte big-endian payload length, then that many bytes of UTF-8 JSON.
///
///   agent  → worker   `WorkerRequest`  one event
///   worker → agent    `WorkerReply`    progress (any number, while the event runs), then its
///                                      outcome, before the next request is read
///   agent  → worker   SIGUSR1          stop the running event (a condition was lost), queued
///                                      with sigqueue(2), the event's id as its value
///
/// One event at a time: the agent sends the next request only after the outcome. The stop is a
/// signal, not a frame, so the worker learns of it while the plugin's `handle` blocks its one
/// thread; it names its event, so a late one never stops the next. The worker starts with the
/// signal blocked (a stop before it is ready waits, pending) and takes it on one thread of its
/// own, so it never interrupts a plugin's call. The worker exits
/// when fd 3 reaches end of file. `bgsync-worker --probe PLUGIN` instead prints one `ProbeReport`
/// as a JSON line on stdout and exits (0 when the plugin is usable, 1 when it is refused).
public enum WireProtocol {
    /// The fd the worker finds its end of the socket on.
    public static let workerFD: Int32 = 3
    /// A frame larger than this is a broken peer, not a big event (options are capped at 64 KiB).
    public static let maxFrameBytes = 16 * 1024 * 1024
    public static let headerBytes = 4
    /// The signal that asks a worker to stop its running event.
    public static let stopSignal = SIGUSR1

    /// The frame for `message`: length header and JSON payload.
    public static func frame<Message: Encodable>(_ message: Message) throws -> [UInt8] {
        let payload = try encoder().encode(message)
        guard payload.count <= maxFrameBytes else {
            throw WireError("A message of \(payload.count) bytes is larger than the \(maxFrameBytes)-byte frame limit.")
        }
        let length = UInt32(payload.count)
        var bytes = [
            UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF),
        ]
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// `message` as JSON, without a frame (for the probe's report line).
    public static func jsonLine<Message: Encodable>(_ message: Message) throws -> [UInt8] {
        Array(try encoder().encode(message))
    }

    public static func decode<Message: Decodable>(_ type: Message.Type, from payload: [UInt8]) throws -> Message {
        try decoder().decode(type, from: Data(payload))
    }

    /// The payload length announced by a 4-byte header.
    public static func payloadLength(header: some Collection<UInt8>) -> Int {
        header.prefix(headerBytes).reduce(0) { $0 << 8 | Int($1) }
    }

    // Options never hold NaN or infinity (registration refuses them), but a frame must never
    // fail to encode over a number: such values travel as strings.
    private static let nonFinite = (positive: "+inf", negative: "-inf", nan: "nan")

    private static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: nonFinite.positive, negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        return encoder
    }

    private static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonFinite.positive, negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        return decoder
    }
}

/// Agent → worker: run one event. The event carries its registration's confinement, whose root
/// the worker's file functions (ConfinedFiles) keep every app-named path beneath.
public struct WorkerRequest: Codable, Sendable, Equatable {
    public var event: SyncEvent
    public init(event: SyncEvent) { self.event = event }
}

/// Worker → agent: what the handler made of the event with id `eventID` (`outcome`), or how far
/// it got (`progress`, while it runs). Exactly one of the two is set.
public struct WorkerReply: Codable, Sendable, Equatable {
    public var eventID: UInt64
    public var outcome: HandlerOutcome?
    public var progress: SyncProgress?
    public init(eventID: UInt64, outcome: HandlerOutcome) {
        self.eventID = eventID
        self.outcome = outcome
    }
    public init(eventID: UInt64, progress: SyncProgress) {
        self.eventID = eventID
        self.progress = progress
    }
}

/// What `bgsync-worker --probe` prints: the handler's self-description, or why it is refused.
public struct ProbeReport: Codable, Sendable, Equatable {
    public var name: String?
    public var description: String?
    public var sandboxSafe: Bool?
    /// The options the plugin declares as paths and as URLs (absent from an older worker's report).
    public var pathOptions: [String]?
    public var urlOptions: [String]?
    /// Set when the plugin is refused; the other fields are then absent.
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case name, description, error
        case sandboxSafe = "sandbox_safe"
        case pathOptions = "path_options"
        case urlOptions = "url_options"
    }

    public init(handler: HandlerInfo) {
        name = handler.name
        description = handler.description
        sandboxSafe = handler.sandboxSafe
        pathOptions = handler.pathOptions
        urlOptions = handler.urlOptions
    }

    public init(error: String) { self.error = error }

    /// The handler it describes, nil for a refusal or an incomplete report.
    public var handler: HandlerInfo? {
        guard error == nil, let name, let description, let sandboxSafe else { return nil }
        return HandlerInfo(
            name: name, description: description, sandboxSafe: sandboxSafe, pathOptions: pathOptions ?? [],
            urlOptions: urlOptions ?? [])
    }
}

/// A malformed frame or message.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Splits a byte stream into frame payloads. Feed it what `read` returned; take the payloads.
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    public init() {}

    public mutating func append(_ bytes: some Sequence<UInt8>) { buffer.append(contentsOf: bytes) }

    /// The next complete payload, nil if more bytes are needed. Throws on an oversized frame,
    /// after which the stream is unusable.
    public mutating func next() throws(WireError) -> [UInt8]? {
        guard buffer.count >= WireProtocol.headerBytes else { return nil }
        let length = WireProtocol.payloadLength(header: buffer)
        guard length <= WireProtocol.maxFrameBytes else {
            throw WireError(
                "The peer announced a frame of \(length) bytes, more than the \(WireProtocol.maxFrameBytes)-byte limit."
            )
        }
        guard buffer.count >= WireProtocol.headerBytes + length else { return nil }
        let payload = Array(buffer[WireProtocol.headerBytes..<(WireProtocol.headerBytes + length)])
        buffer.removeFirst(WireProtocol.headerBytes + length)
        return payload
    }

    /// Bytes received but not yet part of a complete frame.
    public var pendingByteCount: Int { buffer.count }
}
