// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import Foundation
import Testing

/// JSON text of values, read back by Foundation's JSON parser.
@Suite struct JSONTextTests {
    static func parsed(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    @Test("hostile strings come back as sent")
    func strings() throws {
        for text in ["q\"b\\s/", "\n\r\t\u{0}\u{1F}\u{7F}", "✓ 𝄞", ""] {
            #expect(try Self.parsed(JSONText.string(text)) as? String == text)
        }
    }

    @Test("string-keyed dictionaries are objects; others arrays of pairs; variants unwrapped")
    func containers() throws {
        let options = Value.vardict(["n": .uint32(3), "s": .string("x")])
        let object = try #require(try Self.parsed(JSONText.text(options)) as? [String: Any])
        #expect(object["n"] as? Int == 3)
        #expect(object["s"] as? String == "x")
        let pairs = Value.dictionary(
            keySignature: "u", valueSignature: "b", [Value.DictEntry(key: .uint32(1), value: .bool(true))])
        let array = try #require(try Self.parsed(JSONText.text(pairs)) as? [[Any]])
        #expect(array.first?.first as? Int == 1)
        #expect(array.first?.last as? Bool == true)
    }

    @Test("a number JSON cannot hold is null")
    func nonFinite() throws {
        #expect(JSONText.text(.double(.nan)) == "null")
        #expect(JSONText.text(.double(-.infinity)) == "null")
        #expect(JSONText.text(.double(1.5)) == "1.5")
    }
}
