// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import BGSyncWire
import Foundation
import TestKit
import Testing

/// The agent↔worker messages in their binary form: what one end writes, the other reads back
/// exactly; a short, long or hostile payload is a named error, never a crash.
@Suite struct WireProtocolTests {
    static let everyKind: [String: Value] = [
        "byte": .byte(7), "bool": .bool(true), "int16": .int16(-2), "uint16": .uint16(65535),
        "int32": .int32(.min), "uint32": .uint32(3), "int64": .int64(-1 << 40), "uint64": .uint64(.max),
        "double": .double(-0.5), "string": .string("/home/u/outbox ✓"), "path": .objectPath("/org/x"),
        "signature": .signature("a{sv}"), "blob": .bytes([0, 1, 255]), "empty-blob": .bytes([]),
        "strv": .array(elementSignature: "s", [.string("a"), .string("")]),
        "empty": .array(elementSignature: "(is)", []),
        "headers": .stringVariantDictionary([("A", .string("b")), ("N", .uint32(1))]),
        "struct": .structure([.int32(1), .variant(.variant(.string("deep")))]),
        "": .string("an empty name"),
    ]

    static func event(options: [String: Value] = everyKind, root: String? = "/home/u/.var/app/org.x") -> WireEvent {
        WireEvent(
            id: 42, appID: "org.example.App", tag: "send\n<0>", periodic: true, options: options, attempt: 3,
            lastChance: false, deadline: 1_790_000_000.25, root: root, stallTimeout: 60, ceiling: 1_790_003_600)
    }

    /// The payload of `message`'s frame, after checking the header names its length.
    static func payload(_ message: some WireMessage) throws -> [UInt8] {
        let frame = try WireProtocol.frame(message)
        #expect(WireProtocol.payloadLength(header: frame) == frame.count - WireProtocol.headerBytes)
        return Array(frame.dropFirst(WireProtocol.headerBytes))
    }

    @Test("an event reads back as written, options of every type included")
    func eventRoundTrip() throws {
        for event in [Self.event(), Self.event(options: [:], root: nil)] {
            #expect(try WireProtocol.decode(WireEvent.self, from: Self.payload(event)) == event)
        }
    }

    @Test("NaN and infinities travel as the same doubles")
    func nonFinite() throws {
        let options: [String: Value] = ["nan": .double(.nan), "inf": .double(-.infinity)]
        let back = try WireProtocol.decode(WireEvent.self, from: Self.payload(Self.event(options: options)))
        #expect(back.options["nan"]?.doubleValue?.isNaN == true)
        #expect(back.options["inf"]?.doubleValue == -.infinity)
    }

    @Test(
        "every reply reads back as written",
        arguments: [
            WireReply.progress(eventID: 1, done: 3, total: 10, text: "3 of 10 ✓"),
            .bytes(eventID: 6, WireBytes(sent: 12 << 20, received: 310, expected: 13 << 20)),
            .bytes(eventID: 7, WireBytes(sent: .max, received: .max, expected: 0)),
            .outcome(eventID: 2, .success(detail: ""), moved: WireBytes()),
            .outcome(eventID: .max, .retry(after: 1.5, detail: "HTTP 503"), moved: WireBytes(sent: 5, received: 9)),
            .outcome(eventID: 4, .retry(after: nil, detail: "crashed"), moved: WireBytes()),
            .outcome(eventID: 5, .failure(detail: "HTTP 404"), moved: WireBytes(sent: 1 << 40, received: 2)),
            .outcome(eventID: 8, .retry(after: nil, detail: "cut at 40%", advanced: true), moved: WireBytes(sent: 7)),
        ])
    func replyRoundTrip(reply: WireReply) throws {
        #expect(try WireProtocol.decode(WireReply.self, from: Self.payload(reply)) == reply)
    }

    @Test("every cut of an event's payload is an error, not a crash")
    func truncated() throws {
        let payload = try Self.payload(Self.event())
        for length in 0..<payload.count {
            #expect(throws: WireError.self) { try WireProtocol.decode(WireEvent.self, from: Array(payload[..<length])) }
        }
        #expect(throws: WireError.self) { try WireProtocol.decode(WireEvent.self, from: payload + [0]) }
    }

    @Test("a message of another kind is refused by name")
    func wrongKind() throws {
        let payload = try Self.payload(WireReply.outcome(eventID: 1, .success(detail: ""), moved: WireBytes()))
        let error = #expect(throws: WireError.self) { try WireProtocol.decode(WireEvent.self, from: payload) }
        #expect(error?.message.contains("same bgsync") == true)
    }

    @Test("every cut of a byte report or an outcome is an error, and so is a byte more or an unknown form")
    func truncatedReplies() throws {
        for reply in [
            WireReply.bytes(eventID: 3, WireBytes(sent: 1, received: 2, expected: 3)),
            .outcome(eventID: 3, .success(detail: "ok"), moved: WireBytes(sent: 1, received: 2)),
        ] {
            let payload = try Self.payload(reply)
            for length in 0..<payload.count {
                #expect(throws: WireError.self) {
                    try WireProtocol.decode(WireReply.self, from: Array(payload[..<length]))
                }
            }
            #expect(throws: WireError.self) { try WireProtocol.decode(WireReply.self, from: payload + [0]) }
        }
        var unknown = try Self.payload(WireReply.bytes(eventID: 3, WireBytes()))
        unknown[1] = UInt8(ascii: "B")
        #expect(throws: WireError.self) { try WireProtocol.decode(WireReply.self, from: unknown) }
    }

    @Test("a reply's text over the limit is refused; the worker cuts its own at a character boundary")
    func replyTextLimit() throws {
        let long = String(repeating: "é", count: WireProtocol.maxReplyTextBytes)  // twice the bytes
        let outcome = WireReply.outcome(eventID: 1, .failure(detail: long), moved: WireBytes())
        #expect(throws: WireError.self) { try WireProtocol.decode(WireReply.self, from: Self.payload(outcome)) }
        let progress = WireReply.progress(eventID: 1, done: 0, total: 0, text: long)
        #expect(throws: WireError.self) { try WireProtocol.decode(WireReply.self, from: Self.payload(progress)) }

        let fitted = WireOutcome.failure(detail: long).fitted
        let back = try WireProtocol.decode(
            WireReply.self, from: Self.payload(WireReply.outcome(eventID: 1, fitted, moved: WireBytes())))
        guard case .outcome(_, .failure(let detail), _) = back else {
            Issue.record("not a failure: \(back)")
            return
        }
        #expect(detail.utf8.count <= WireProtocol.maxReplyTextBytes && detail.hasSuffix("…"))
        #expect(detail.dropLast().allSatisfy { $0 == "é" })
        #expect(WireOutcome.success(detail: "short").fitted == .success(detail: "short"))
    }

    @Test("a count larger than the payload is refused before anything is allocated for it")
    func hugeCount() throws {
        var writer = WireWriter()
        writer.u8(WireEvent.kind)
        writer.u64(1)
        writer.u32(.max)  // the app id's length
        #expect(throws: WireError.self) { try WireProtocol.decode(WireEvent.self, from: writer.bytes) }
        var options = WireWriter()
        options.u32(.max)  // option count
        var reader = WireReader(options.bytes)
        #expect(throws: WireError.self) { try reader.options() }
    }

    @Test("a value nested deeper than D-Bus allows is refused")
    func tooDeep() throws {
        var value = Value.string("x")
        for _ in 0...WireReader.maxValueDepth { value = .variant(value) }
        var writer = WireWriter()
        writer.value(value)
        var reader = WireReader(writer.bytes)
        #expect(throws: WireError.self) { try reader.value() }
    }

    @Test("a hello's first five payload bytes are frozen: kind H, then the version little-endian")
    func helloLayout() throws {
        let frame = try WireProtocol.frame(WireHello(version: 0x0102_0304))
        // Every past and future bgsync reads a peer's version from exactly these bytes.
        #expect(frame == [0, 0, 0, 5, UInt8(ascii: "H"), 4, 3, 2, 1])
        #expect(
            try WireProtocol.decode(WireHello.self, from: Self.payload(WireHello())).version == WireProtocol.version)
        #expect(WireProtocol.version >= 2)  // 1 is the protocol before hellos
    }

    @Test("the version of a later, longer hello is read; what is no hello has none")
    func helloVersionOfAnyPeer() throws {
        // A future version appends fields: its version still reads, from the same bytes.
        #expect(WireHello.version(of: [UInt8(ascii: "H"), 99, 0, 0, 0] + Array("more fields".utf8)) == 99)
        #expect(WireHello.version(of: try Self.payload(WireHello())) == WireProtocol.version)
        // The first frame of a protocol-1 agent is an event; of a worker, a reply.
        #expect(WireHello.version(of: try Self.payload(Self.event())) == nil)
        #expect(
            WireHello.version(
                of: try Self.payload(WireReply.outcome(eventID: 1, .success(detail: ""), moved: WireBytes()))) == nil)
        #expect(WireHello.version(of: [UInt8(ascii: "H"), 2, 0, 0]) == nil)  // cut short
        #expect(WireHello.version(of: []) == nil)
    }

    @Test("random bytes never crash the reader")
    func randomBytes() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("WireProtocolTests.randomBytes seed \(seed)")  // a crash is reproduced with this seed
        var generator = SplitMix64(seed: seed)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<64, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if !bytes.isEmpty, Bool.random(using: &generator) { bytes[0] = WireEvent.kind }
            _ = try? WireProtocol.decode(WireEvent.self, from: bytes)
            _ = try? WireProtocol.decode(WireReply.self, from: bytes)
            _ = WireHello.version(of: bytes)
        }
    }

    @Test("frames split anywhere in a stream come out whole, in order")
    func frameDecoder() throws {
        let frames = try (0..<50).map { index in
            try WireProtocol.frame(WireReply.progress(eventID: UInt64(index), done: 0, total: 0, text: "t\(index)"))
        }
        let stream = frames.flatMap { $0 }
        for chunk in [1, 3, 7, 64, stream.count] {
            var decoder = FrameDecoder()
            var got: [UInt64] = []
            for start in stride(from: 0, to: stream.count, by: chunk) {
                decoder.append(stream[start..<min(start + chunk, stream.count)])
                while let payload = try decoder.next() {
                    got.append(try WireProtocol.decode(WireReply.self, from: payload).eventID)
                }
            }
            #expect(got == Array(0..<50))
            #expect(decoder.pendingByteCount == 0)
        }
    }

    @Test("a peer that always leaves half a frame behind cannot make the decoder grow")
    func neverDrained() throws {
        let frame = try WireProtocol.frame(WireReply.progress(eventID: 1, done: 0, total: 0, text: "x"))
        let half = frame.count / 2
        var decoder = FrameDecoder()
        decoder.append(frame[..<half])
        for _ in 0..<100_000 {
            decoder.append(frame[half...] + frame[..<half])  // the rest of one, half of the next
            #expect(try decoder.next() != nil)
        }
        #expect(decoder.pendingByteCount == half)
        #expect(decoder.heldByteCount < 2 * FrameDecoder.compactionBytes + frame.count)
    }

    @Test("an announced frame over the limit ends the stream")
    func oversizedFrame() {
        var decoder = FrameDecoder()
        decoder.append([0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: WireError.self) { try decoder.next() }
    }

    @Test("the probe's JSON line, written without Foundation, reads back with Foundation's decoder")
    func probeReportJSON() throws {
        let hostile = "q\"b\\s/\n\r\t\u{0}\u{1F}\u{7F} ✓ 𝄞"
        let reports = [
            ProbeReport(
                name: "upload", description: hostile, sandboxSafe: true, pathOptions: ["outbox", hostile],
                urlOptions: []),
            ProbeReport(error: hostile),
        ]
        for report in reports {
            let line = report.jsonLine
            #expect(!line.contains(UInt8(ascii: "\n")))
            #expect(try JSONDecoder().decode(ProbeReport.self, from: Data(line)) == report)
        }
    }
}
