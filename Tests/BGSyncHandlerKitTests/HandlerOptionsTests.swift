// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CBGSyncPlugin
import HandlerTestKit
import Testing

@testable import BGSyncHandlerKit

/// `HandlerOptions` has one backing: what a test gives directly and what a worker's host hands
/// out read alike, by the same rules.
@Suite struct HandlerOptionsTests {
    static let options: [String: Value] = [
        "s": "x", "o": .objectPath("/a/b"), "u": .uint32(7), "big": .uint64(.max), "neg": .int16(-3),
        "d": 2.5, "b": .variant(.bool(true)), "as": ["p", "q r"], "empty": .array(elementSignature: "s", []),
        "kv": ["k": "v", "a": "z"],
        "sv": .stringVariantDictionary([("n", .int32(1)), ("t", .string("it's"))]),
        "y": .bytes([0, 0xff, 0x27]), "str": .bytes(Array("hi\0".utf8)),
        "tuple": .structure([.int32(1), .variant(.int64(2))]), "nested": .variant(.variant(.string("deep"))),
    ]

    func reads(_ o: HandlerOptions) -> [String] {
        o.names.map { (name: String) -> String in
            var fields: [String] = [name, o.type(name) ?? "-", o.string(name) ?? "-"]
            fields.append(o.strings(name)?.joined(separator: ",") ?? "-")
            let pairs: [String]? = o.stringPairs(name)?.map { "\($0.key)=\($0.value)" }
            fields.append(pairs?.joined(separator: ",") ?? "-")
            fields.append(o.int(name).map { String($0) } ?? "-")
            fields.append(o.bool(name).map { String($0) } ?? "-")
            fields.append(o.double(name).map { String($0) } ?? "-")
            fields.append(o.bytes(name).map { "\($0)" } ?? "-")
            fields.append(o.text(name) ?? "-")
            return fields.joined(separator: "|")
        }
    }

    @Test func theHostAndSwiftValuesReadAlike() {
        var host = fakeHost()
        let event = FakeEvent(options: Self.options)
        let throughHost = HandlerOptions(host: &host, event: event.pointer)
        let direct = HandlerOptions(Self.options)
        #expect(direct.names.count == Self.options.count)
        #expect(reads(throughHost) == reads(direct))
        // The rules themselves, as bgsync-plugin.h states them.
        #expect(direct.string("o") == "/a/b" && direct.int("u") == 7 && direct.int("big") == nil)
        #expect(direct.double("neg") == -3 && direct.bool("b") == true && direct.type("b") == "b")
        #expect(direct.stringPairs("sv")?.map(\.key) == ["t"] && direct.strings("empty") == [])
        #expect(direct.bytes("y") == [0, 0xff, 0x27] && direct.text("str") == "b'hi'")
        #expect(direct.string("nested") == "deep" && direct.text("tuple") == "(1, <int64 2>)")
    }
}
