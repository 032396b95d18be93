// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import Foundation
import Testing

@Suite struct ValueTests {
    @Test func theTwoFormsOfAByteArrayAreOneValue() {
        let compact = Value.bytes([1, 2, 3])
        let spelled = Value.array(elementSignature: "y", [.byte(1), .byte(2), .byte(3)])
        #expect(compact == spelled && spelled == compact)
        #expect(Set([compact, spelled]).count == 1)
        #expect(compact.signature == "ay" && spelled.gvariantText == compact.gvariantText)
        #expect(
            compact != .bytes([1, 2]) && compact != .array(elementSignature: "n", [.int16(1), .int16(2), .int16(3)]))
        #expect(Value.variant(compact) == .variant(spelled))
    }

    @Test func optionsTextIsOneSortedVardictThatReadsBack() throws {
        let options: [String: Value] = [
            "url": .string("https://example.org/"), "outbox": .string("/home/u/outbox"), "n": .uint32(3),
            "wrapped": .variant(.int64(-1)), "z": .bytes(Array("hi\0".utf8)),
        ]
        let text = Value.optionsText(options)
        #expect(
            text == "{'n': <uint32 3>, 'outbox': <'/home/u/outbox'>, 'url': <'https://example.org/'>, "
                + "'wrapped': <<int64 -1>>, 'z': <b'hi'>}")
        #expect(try Value.parseOptionsText(text) == options)
        #expect(Value.optionsText([:]) == "@a{sv} {}")
        #expect(try Value.parseOptionsText("@a{sv} {}").isEmpty)
        #expect(throws: ValueError.self) { try Value.parseOptionsText("['not', 'a', 'dict']") }
        #expect(throws: ValueError.self) { try Value.parseOptionsText("{'a': 1}") }  // a{si}, not a{sv}
    }

    @Test func codableIsTheAnnotatedText() throws {
        let values: [String: Value] = ["a": .uint16(7), "b": .array(elementSignature: "s", []), "c": .objectPath("/x")]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = String(decoding: try encoder.encode(values), as: UTF8.self)
        #expect(json == #"{"a":"uint16 7","b":"@as []","c":"objectpath '/x'"}"#)
        #expect(try JSONDecoder().decode([String: Value].self, from: Data(json.utf8)) == values)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Value.self, from: Data(#""[1, 'a']""#.utf8)) }
    }

    @Test func accessorsFollowThePluginHeadersRules() {
        #expect(Value.variant(.objectPath("/a")).stringValue == "/a")
        #expect(Value.uint64(.max).int64Value == nil && Value.uint64(.max).uint64Value == .max)
        #expect(Value.int16(-2).numberValue == -2 && Value.int16(-2).doubleValue == nil)
        #expect(
            Value.stringArray(["a"]).stringsValue == ["a"] && Value.array(elementSignature: "o", []).stringsValue == nil
        )
        let sv = Value.stringVariantDictionary([("a", .string("x")), ("b", .int32(1))])
        #expect(sv.stringPairsValue?.map(\.value) == ["x", nil])
        #expect(Value.stringVariantDictionary([("n", .bytes([0, 1]))]).marshalledSize == 4 + 6 + 4 + 6)
    }
}
