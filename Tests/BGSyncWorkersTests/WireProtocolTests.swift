// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import BGSyncWorkers
import Testing

/// The agent↔worker request carries options as GVariant text, not Swift's synthesised Codable.
@Suite struct WireProtocolTests {
    @Test func optionsTravelAsGVariantTextAndReadBackTyped() throws {
        let options: [String: Value] = [
            "outbox": .string("/home/u/outbox"), "n": .uint32(3), "blob": .bytes([0, 1]),
            "headers": .stringVariantDictionary([("A", .string("b"))]), "nan": .double(.nan),
        ]
        let request = WorkerRequest(event: makeEvent(handler: "upload", options: options))
        let frame = try WireProtocol.frame(request)
        let json = String(decoding: frame.dropFirst(4), as: UTF8.self)
        #expect(json.contains(#""options":{"blob":"[byte 0x00, 0x01]","headers":"{'A': <'b'>}","#))
        #expect(json.contains(#""n":"uint32 3","nan":"nan","outbox":"'/home/u/outbox'"}"#))
        let back = try WireProtocol.decode(WorkerRequest.self, from: Array(frame.dropFirst(4)))
        var expected = options
        expected["nan"] = nil
        var got = back.event.options
        #expect(got.removeValue(forKey: "nan")?.doubleValue?.isNaN == true)
        #expect(got == expected)
    }
}
