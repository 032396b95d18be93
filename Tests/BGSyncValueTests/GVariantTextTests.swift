// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import Testing

@Suite struct GVariantTextTests {
    @Test(arguments: [
        ("'hello'", Value.string("hello")),
        ("\"it's\"", .string("it's")),
        ("'tab\\there \\u00e9'", .string("tab\there é")),
        ("5", .int32(5)),
        ("-5", .int32(-5)),
        ("uint32 5", .uint32(5)),
        ("int64 -3", .int64(-3)),
        ("byte 0x10", .byte(16)),
        ("int16 -7", .int16(-7)),
        ("uint16 7", .uint16(7)),
        ("uint64 18446744073709551615", .uint64(UInt64.max)),
        ("1.5", .double(1.5)),
        ("-2e3", .double(-2000)),
        ("double 3", .double(3)),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("['a', 'b']", .stringArray(["a", "b"])),
        ("[1, 2.5]", .array(elementSignature: "d", [.double(1), .double(2.5)])),
        ("@as []", .array(elementSignature: "s", [])),
        (
            "{'k': 'v'}",
            .dictionary(
                keySignature: "s", valueSignature: "s",
                [Value.DictEntry(key: .string("k"), value: .string("v"))])
        ),
        ("{'a': <1>, 'b': <'x'>}", .stringVariantDictionary([("a", .int32(1)), ("b", .string("x"))])),
        ("@a{sv} {}", .dictionary(keySignature: "s", valueSignature: "v", [])),
        ("<'x'>", .variant(.string("x"))),
        ("(1, 'a')", .structure([.int32(1), .string("a")])),
        ("('only',)", .structure([.string("only")])),
        ("objectpath '/org/x'", .objectPath("/org/x")),
        ("signature 'a{sv}'", .signature("a{sv}")),
        ("b'ab'", .bytes([97, 98, 0])),  // GLib's byte strings end in a NUL
        ("[byte 0x61, 0x62]", .array(elementSignature: "y", [.byte(97), .byte(98)])),
        ("[@as [], ['x']]", .array(elementSignature: "as", [.stringArray([]), .stringArray(["x"])])),
        ("['sh', '-c', 'echo hi']", .stringArray(["sh", "-c", "echo hi"])),
    ])
    func parses(text: String, value: Value) throws {
        #expect(try Value.parse(gvariantText: text) == value)
    }

    @Test(arguments: [
        "", "'unterminated", "[1, 'a']", "[]", "{}", "()", "uint32 -1", "byte 256", "int32 99999999999",
        "objectpath 'nope'", "@x 'a'", "nonsense", "[1,", "1 2", String(repeating: "[", count: 10_000),
        String(repeating: "<", count: 500) + "1" + String(repeating: ">", count: 500),
    ])
    func refusesWithAnError(text: String) {
        #expect(throws: ValueError.self) { try Value.parse(gvariantText: text) }
    }

    @Test(arguments: [
        Value.byte(0x0f), .bool(true), .int16(-1), .uint16(2), .int32(-3), .uint32(4), .int64(Int64.min),
        .uint64(UInt64.max), .double(1), .double(-0.25), .double(1e300), .double(.infinity),
        .string("quote ' and \" and \\ and \n and \u{01}"), .string("it's"), .objectPath("/a"), .signature("(ii)"),
        .array(elementSignature: "u", [.uint32(1), .uint32(2)]), .array(elementSignature: "a{sv}", []),
        .stringVariantDictionary([("command", .stringArray(["sh", "-c", "echo hi"])), ("n", .uint32(5))]),
        .dictionary(keySignature: "t", valueSignature: "ay", []),
        .structure([.int64(1), .structure([.double(2)])]), .variant(.variant(.string("deep"))),
        .array(elementSignature: "v", [.variant(.int32(1)), .variant(.string("a"))]),
    ])
    func printsTextThatParsesBack(value: Value) throws {
        #expect(try Value.parse(gvariantText: value.gvariantText) == value)
    }

    @Test func printsLikeGLib() {
        #expect(Value.stringVariantDictionary([("a", .uint32(5))]).gvariantText == "{'a': <uint32 5>}")
        #expect(Value.stringArray(["x", "y"]).gvariantText == "['x', 'y']")
        #expect(Value.array(elementSignature: "s", []).gvariantText == "@as []")
        #expect(Value.structure([.string("a")]).gvariantText == "('a',)")
        #expect(Value.double(2).gvariantText == "2.0")
    }

    @Test func parsesForAKnownType() throws {
        #expect(try Value.parse(gvariantText: "5", as: "u") == .uint32(5))
        #expect(try Value.parse(gvariantText: "[]", as: "as") == .array(elementSignature: "s", []))
        #expect(try Value.parse(gvariantText: "'/x'", as: "o") == .objectPath("/x"))
        #expect(throws: ValueError.self) { try Value.parse(gvariantText: "'x'", as: "u") }
    }
}

@Suite("GVariant text of option values")
struct PrintingTests {
    @Test("matches g_variant_print with type annotations")
    func printing() {
        #expect(Value.string("a\nb\\c").gvariantText == #"'a\nb\\c'"#)
        #expect(Value.string("x'y\"z").gvariantText == #""x'y\"z""#)
        #expect(Value.byte(5).gvariantText == "byte 0x05")
        #expect(Value.array(elementSignature: "u", [.uint32(1), .uint32(2)]).gvariantText == "[uint32 1, 2]")
        #expect(Value.array(elementSignature: "y", [.byte(0x68), .byte(0x69), .byte(0)]).gvariantText == "b'hi'")
        #expect(Value.dictionary(keySignature: "s", valueSignature: "s", []).gvariantText == "@a{ss} {}")
        #expect(Value.structure([.string("a")]).gvariantText == "('a',)")
        #expect(Value.structure([]).gvariantText == "()")
        #expect(Value.objectPath("/a").gvariantText == "objectpath '/a'")
        #expect(Value.variant(.array(elementSignature: "i", [])).gvariantText == "<@ai []>")
        #expect(Value.double(-0.5).gvariantText == "-0.5")
        #expect(Value.string("\u{1}").gvariantText == #"'\u0001'"#)
    }
}
