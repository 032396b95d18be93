// SPDX-License-Identifier: Apache-2.0
// Reading GVariant text (`g_variant_parse`'s grammar, for the types D-Bus carries) into an
// untyped tree; GVariantResolver settles the types.

extension Value {
    /// Parses GVariant text as `g_variant_parse(NULL, text)` does: 'strings' and "strings",
    /// numbers (int32 by default, double with a dot or exponent; `uint32 5`, `int64 -3`,
    /// `byte 0x10`... annotate), true/false, arrays `['a', 'b']`, dictionaries `{'k': <1>}`,
    /// variants `<...>`, tuples `(1, 'a')`, typed values `@as []`, `objectpath '/a'`,
    /// `signature 'as'`, byte strings `b'abc'` (with GLib's trailing NUL).
    public static func parse(gvariantText text: String) throws(ValueError) -> Value {
        try parse(text, expected: nil)
    }

    /// Parses GVariant text for a value of a known type (so `5` can be a uint32, `[]` an `as`),
    /// as `g_variant_parse(type, text)` does.
    public static func parse(gvariantText text: String, as signature: String) throws(ValueError) -> Value {
        guard TypeSignature.isSingleCompleteType(signature) else {
            throw ValueError(.type, "'\(signature)' is not a single D-Bus type")
        }
        return try parse(text, expected: signature)
    }

    private static func parse(_ text: String, expected: String?) throws(ValueError) -> Value {
        var parser = GVariantParser(text)
        let node = try parser.parseValue(depth: 0)
        parser.skipSpaces()
        guard parser.atEnd else { throw parser.error("unexpected text after the value") }
        let value = try GVariantResolver.resolve(node, expected: expected)
        guard TypeSignature.isSingleCompleteType(value.signature) else {
            throw ValueError(.type, "a value of type '\(value.signature)' cannot travel on D-Bus (nested too deeply)")
        }
        return value
    }
}

/// What the text says, before types are settled (a bare `5` may become any number type).
indirect enum GVariantNode {
    case string(String)
    case bytes([UInt8])
    case number(String)
    case boolean(Bool)
    case array([GVariantNode])
    case dictionary([(GVariantNode, GVariantNode)])
    case tuple([GVariantNode])
    case variant(GVariantNode)
    case typed(String, GVariantNode)  // @as [...], uint32 5 (keywords become signatures)

    var isBareNumber: Bool {
        if case .number = self { return true }
        return false
    }
}

struct GVariantParser {
    private let chars: [Unicode.Scalar]
    private var index = 0
    static let maximumDepth = 64

    static let keywords: [String: String] = [
        "boolean": "b", "byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
        "int64": "x", "uint64": "t", "double": "d", "string": "s", "objectpath": "o", "signature": "g",
    ]

    init(_ text: String) { chars = Array(text.unicodeScalars) }

    var atEnd: Bool { index >= chars.count }

    func error(_ message: String) -> ValueError {
        ValueError(.syntax, "GVariant text, at character \(index + 1): \(message)")
    }

    mutating func skipSpaces() {
        while index < chars.count, chars[index].properties.isWhitespace { index += 1 }
    }

    private mutating func expect(_ c: Unicode.Scalar) throws(ValueError) {
        skipSpaces()
        guard index < chars.count, chars[index] == c else { throw error("expected '\(c)'") }
        index += 1
    }

    private mutating func consume(_ c: Unicode.Scalar) -> Bool {
        skipSpaces()
        guard index < chars.count, chars[index] == c else { return false }
        index += 1
        return true
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }
    private static func isLetter(_ c: Unicode.Scalar) -> Bool {
        (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x61 && c.value <= 0x7A)
    }

    mutating func parseValue(depth: Int) throws(ValueError) -> GVariantNode {
        guard depth < Self.maximumDepth else { throw error("nested deeper than \(Self.maximumDepth) levels") }
        skipSpaces()
        guard index < chars.count else { throw error("expected a value") }
        let c = chars[index]
        switch c {
        case "'", "\"":
            return .string(try parseString())
        case "[":
            index += 1
            return .array(try parseList(until: "]", depth: depth))
        case "(":
            index += 1
            return .tuple(try parseList(until: ")", depth: depth))
        case "{":
            index += 1
            var entries: [(GVariantNode, GVariantNode)] = []
            if consume("}") { return .dictionary([]) }
            repeat {
                if consume("}") { return .dictionary(entries) }
                let key = try parseValue(depth: depth + 1)
                try expect(":")
                entries.append((key, try parseValue(depth: depth + 1)))
            } while consume(",")
            try expect("}")
            return .dictionary(entries)
        case "<":
            index += 1
            let inner = try parseValue(depth: depth + 1)
            try expect(">")
            return .variant(inner)
        case "@":
            index += 1
            let candidate = ArraySlice(chars[index...].prefix(TypeSignature.maximumLength).map(Character.init))
            guard let length = TypeSignature.prefixLength(of: candidate) else {
                throw error("expected a D-Bus type after '@'")
            }
            let signature = String(String.UnicodeScalarView(chars[index..<(index + length)]))
            index += length
            return .typed(signature, try parseValue(depth: depth + 1))
        case "b" where index + 1 < chars.count && (chars[index + 1] == "'" || chars[index + 1] == "\""):
            index += 1
            return .bytes(try parseByteString())
        case _ where Self.isDigit(c) || c == "-" || c == "+" || c == ".":
            return .number(parseNumberText())
        case _ where Self.isLetter(c):
            let word = parseWord()
            switch word {
            case "true": return .boolean(true)
            case "false": return .boolean(false)
            case "inf", "nan": return .number(word)
            default:
                guard let signature = Self.keywords[word] else { throw error("unknown word '\(word)'") }
                return .typed(signature, try parseValue(depth: depth + 1))
            }
        default:
            throw error("unexpected '\(c)'")
        }
    }

    /// Items up to `close`, separated by commas; a trailing comma is allowed, as in `(1,)`.
    private mutating func parseList(until close: Unicode.Scalar, depth: Int) throws(ValueError) -> [GVariantNode] {
        var items: [GVariantNode] = []
        if consume(close) { return items }
        repeat {
            if consume(close) { return items }
            items.append(try parseValue(depth: depth + 1))
        } while consume(",")
        try expect(close)
        return items
    }

    private mutating func parseWord() -> String {
        let start = index
        while index < chars.count, Self.isLetter(chars[index]) || Self.isDigit(chars[index]) || chars[index] == "_" {
            index += 1
        }
        return String(String.UnicodeScalarView(chars[start..<index]))
    }

    private mutating func parseNumberText() -> String {
        let start = index
        while index < chars.count {
            let c = chars[index]
            let previous: Unicode.Scalar = index > start ? chars[index - 1] : " "
            let ok =
                Self.isDigit(c) || Self.isLetter(c) || c == "."
                || ((c == "-" || c == "+") && (index == start || previous == "e" || previous == "E"))
            guard ok else { break }
            index += 1
        }
        return String(String.UnicodeScalarView(chars[start..<index]))
    }

    private mutating func parseString() throws(ValueError) -> String {
        let quote = chars[index]
        index += 1
        var out = String.UnicodeScalarView()
        while index < chars.count {
            let c = chars[index]
            index += 1
            if c == quote { return String(out) }
            guard c == "\\" else {
                out.append(c)
                continue
            }
            guard index < chars.count else { break }
            let e = chars[index]
            index += 1
            switch e {
            case "u", "U":
                let count = e == "u" ? 4 : 8
                guard index + count <= chars.count,
                    let value = UInt32(String(String.UnicodeScalarView(chars[index..<(index + count)])), radix: 16),
                    let scalar = Unicode.Scalar(value)
                else { throw error("bad \\\(e) escape") }
                index += count
                out.append(scalar)
            default:
                out.append(Self.controlEscape(e) ?? e)  // GLib: any other escaped character is itself
            }
        }
        throw error("unterminated string")
    }

    private static func controlEscape(_ e: Unicode.Scalar) -> Unicode.Scalar? {
        switch e {
        case "a": "\u{07}"
        case "b": "\u{08}"
        case "f": "\u{0C}"
        case "n": "\n"
        case "r": "\r"
        case "t": "\t"
        case "v": "\u{0B}"
        default: nil
        }
    }

    /// b'…': UTF-8 bytes, C and octal escapes, and a NUL at the end (as GLib's bytestrings).
    private mutating func parseByteString() throws(ValueError) -> [UInt8] {
        let quote = chars[index]
        index += 1
        var out: [UInt8] = []
        while index < chars.count {
            let c = chars[index]
            index += 1
            if c == quote {
                out.append(0)
                return out
            }
            guard c == "\\" else {
                out.append(contentsOf: Array(String(c).utf8))
                continue
            }
            guard index < chars.count else { break }
            let e = chars[index]
            index += 1
            if e.value >= 0x30 && e.value <= 0x37 {
                var value = e.value - 0x30
                var digits = 1
                while digits < 3, index < chars.count, chars[index].value >= 0x30, chars[index].value <= 0x37 {
                    value = value * 8 + chars[index].value - 0x30
                    index += 1
                    digits += 1
                }
                out.append(UInt8(truncatingIfNeeded: value))
            } else if let control = Self.controlEscape(e) {
                out.append(UInt8(control.value))
            } else {
                out.append(contentsOf: Array(String(e).utf8))
            }
        }
        throw error("unterminated byte string")
    }
}
