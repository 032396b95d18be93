// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// The protocol between the agent and a `bgsync-worker` process.
///
/// The worker is started with `bgsync-worker --serve PLUGIN [--state-dir DIR]` and one end of a `SOCK_STREAM`
/// socketpair as fd 3 (stdin is /dev/null; stdout and stderr go to the agent's stderr, so a
/// plugin printing to stdout cannot disturb the protocol). Both directions carry frames: a
/// 4-byte big-endian payload length, then that many bytes of one message (`WireMessage`, a
/// compact binary form: the worker loads no Foundation to read it, see Package.swift).
///
///   agent  → worker   `WireHello`      first, once: the agent's protocol version
///   worker → agent    `WireHello`      first, once, in answer: the worker's version
///   agent  → worker   `WireEvent`      one event
///   worker → agent    `WireReply`      progress (any number, while the event runs), then its
///                                      outcome, before the next event is read
///   agent  → worker   SIGUSR1          stop the running event (a condition was lost), queued
///                                      with sigqueue(2), the event's id as its value
///
/// One event at a time: the agent sends the next event only after the outcome. The stop is a
/// signal, not a frame, so the worker learns of it while the plugin's `handle` blocks its one
/// thread; it names its event, so a late one never stops the next. The worker starts with the
/// signal blocked (a stop before it is ready waits, pending) and takes it on one thread of its
/// own, so it never interrupts a plugin's call. The worker exits when fd 3 reaches end of file.
/// `bgsync-worker --probe PLUGIN` instead prints one `ProbeReport` as a JSON line on stdout and
/// exits (0 when the plugin loaded, 1 when it cannot be; the agent then checks the report, the
/// handler's name among it, with the rules of every name a caller gives).
///
/// Versions. dpkg replaces `bgsync-worker` (and the plugins) while the old agent runs, until the
/// postinst restarts it: for that while an agent spawns a worker of another bgsync. So the first
/// frame each way is a `WireHello`, whose first five payload bytes are frozen for every past and
/// future version (`WireHello`), and a worker checks the agent's before it loads its plugin or
/// reads anything more. The agent sends its hello and the event at once (no round trip); a
/// worker of another version answers with its own hello and exits without reading the event,
/// so it runs nothing. A worker that ends, or sends anything else, before its hello predates
/// hellos (protocol 1, whose worker exits when its first frame is not an event) or could not
/// even start (an upgrade half unpacked: a runtime library of the other version): either way
/// another bgsync, not a crash of the handler (the worker loads no plugin before its hello).
/// The agent holds such events, uncharged (WorkerPool). A worker also serves an agent of
/// protocol 1, whose first frame is an event (`servesVersion1`), while the event's form is
/// unchanged, answering in protocol 1's reply forms (`WireReply.version1`: no byte reports, an
/// outcome without the bytes moved): the agent of the release before hellos then runs its events
/// in a new worker during an upgrade instead of losing attempts to it.
public enum WireProtocol {
    /// This bgsync's protocol version. Bump it with any change of a frame's form or meaning
    /// after the hellos; 1 is the protocol before hellos existed.
    public static let version: UInt32 = 2
    /// Whether this worker runs the events of a protocol-1 agent (one that sends no hello):
    /// true while `WireEvent` keeps its protocol-1 form and `WireReply.version1` can still say
    /// what a reply means in protocol 1. Set it to false when either stops being so.
    public static let servesVersion1 = true
    /// The fd the worker finds its end of the socket on.
    public static let workerFD: Int32 = 3
    /// A frame larger than this is a broken peer, not a big event (options are capped at 64 KiB).
    public static let maxFrameBytes = 16 * 1024 * 1024
    public static let headerBytes = 4
    /// The most bytes of an outcome's detail or a progress text the agent takes from a worker:
    /// a plugin's own detail is at most BGSYNC_DETAIL_SIZE - 1 (255) bytes, the worker's own
    /// messages (a plugin that cannot load, with its path) fit, and a plugin writing frames of
    /// its own to fd 3 cannot make the agent store and announce megabytes.
    public static let maxReplyTextBytes = 4096
    /// `text` cut to `maxReplyTextBytes`, at a character boundary, with an ellipsis.
    public static func fitted(_ text: String) -> String {
        guard text.utf8.count > maxReplyTextBytes else { return text }
        let limit = maxReplyTextBytes - "…".utf8.count
        var result = ""
        var used = 0
        for character in text {
            used += character.utf8.count
            guard used <= limit else { break }
            result.append(character)
        }
        return result + "…"
    }
    /// The signal that asks a worker to stop its running event.
    public static let stopSignal = SIGUSR1

    /// The frame for `message`: length header and payload.
    public static func frame(_ message: some WireMessage) throws(WireError) -> [UInt8] {
        var writer = WireWriter()
        writer.reserveHeader()
        writer.u8(type(of: message).kind)
        message.encode(to: &writer)
        return try writer.finishFrame()
    }

    /// Reads a payload as `Message`: its kind byte must match and every byte must be used.
    public static func decode<Message: WireMessage>(
        _ type: Message.Type, from payload: [UInt8]
    ) throws(WireError) -> Message {
        var reader = WireReader(payload)
        let kind = try reader.u8()
        guard kind == Message.kind else {
            throw WireError(
                "expected a message of kind '\(Self.letter(Message.kind))', got '\(Self.letter(kind))'; "
                    + "are bgsyncd and bgsync-worker from the same bgsync?")
        }
        let message = try Message(from: &reader)
        guard reader.isAtEnd else { throw WireError("\(reader.remaining) bytes left after a message of kind \(kind)") }
        return message
    }

    /// A kind byte as the letter it is meant to be, or its number.
    static func letter(_ kind: UInt8) -> String {
        (0x21...0x7E).contains(kind) ? String(UnicodeScalar(kind)) : "\\x\(String(kind, radix: 16))"
    }

    /// The payload length announced by a 4-byte header.
    public static func payloadLength(header: some Collection<UInt8>) -> Int {
        header.prefix(headerBytes).reduce(0) { $0 << 8 | Int($1) }
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
    /// Where the next frame starts in `buffer`. Consumed bytes are dropped in one go, when the
    /// buffer is drained or they are most of it and over `compactionBytes` (not frame by frame,
    /// which moved the rest each time; never only when drained, or a peer that always leaves
    /// half a frame behind would make the buffer grow without end).
    private var start = 0
    public static let compactionBytes = 64 * 1024
    public init() {}

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete payload, nil if more bytes are needed. Throws on an oversized frame,
    /// after which the stream is unusable.
    public mutating func next() throws(WireError) -> [UInt8]? {
        guard buffer.count - start >= WireProtocol.headerBytes else { return nil }
        let length = WireProtocol.payloadLength(header: buffer[start...])
        guard length <= WireProtocol.maxFrameBytes else {
            throw WireError(
                "The peer announced a frame of \(length) bytes, more than the \(WireProtocol.maxFrameBytes)-byte limit."
            )
        }
        let payloadStart = start + WireProtocol.headerBytes
        guard buffer.count - payloadStart >= length else { return nil }
        let payload = Array(buffer[payloadStart..<(payloadStart + length)])
        start = payloadStart + length
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > Self.compactionBytes, start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return payload
    }

    /// Bytes received but not yet part of a complete frame.
    public var pendingByteCount: Int { buffer.count - start }
    /// Bytes held, consumed or not (what the decoder costs in memory).
    public var heldByteCount: Int { buffer.count }
}
