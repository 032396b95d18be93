// Reading GVariant text into an untyped tree; GVariantResolver settles the types.

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
    case typed(String, GVariantNode)   // @as [...], uint32 5 (keywords become signatures)

    var isBareNumber: Bool {
        if case .number = self { return true }
        return false
    }
}

struct GVariantParser {
    private let chars: [Character]
    private var index = 0
    static let maximumDepth = 64

    static let keywords: [String: String] = [
        "boolean": "b", "byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
        "int64": "x", "uint64": "t", "double": "d", "string": "s", "objectpath": "o", "signature": "g",
    ]

    init(_ text: String) { chars = Array(text) }

    var atEnd: Bool { index >= chars.count }

    func error(_ message: String) -> DBusError {
        .invalidArgs("GVariant text, at character \(index + 1): \(message)")
    }

    mutating func skipSpaces() {
        while index < chars.count, chars[index].isWhitespace { index += 1 }
    }

    private mutating func expect(_ c: Character) throws(DBusError) {
        skipSpaces()
        guard index < chars.count, chars[index] == c else { throw error("expected '\(c)'") }
        index += 1
    }

    private mutating func consume(_ c: Character) -> Bool {
        skipSpaces()
        guard index < chars.count, chars[index] == c else { return false }
        index += 1
        return true
    }

    mutating func parseValue(depth: Int) throws(DBusError) -> GVariantNode {
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
            var items: [GVariantNode] = []
            if consume(")") { return .tuple([]) }
            repeat {
                if consume(")") { return .tuple(items) }  // trailing comma: (1,)
                items.append(try parseValue(depth: depth + 1))
            } while consume(",")
            try expect(")")
            return .tuple(items)
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
            let signature = parseTypeString()
            guard !signature.isEmpty else { throw error("expected a type after '@'") }
            return .typed(signature, try parseValue(depth: depth + 1))
        case "b" where index + 1 < chars.count && (chars[index + 1] == "'" || chars[index + 1] == "\""):
            index += 1
            return .bytes(Array(try parseString().utf8))
        case _ where c.isNumber || c == "-" || c == "+" || c == ".":
            return .number(parseNumberText())
        case _ where c.isLetter:
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

    private mutating func parseList(until close: Character, depth: Int) throws(DBusError) -> [GVariantNode] {
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
        while index < chars.count, chars[index].isLetter || chars[index].isNumber || chars[index] == "_" { index += 1 }
        return String(chars[start..<index])
    }

    private mutating func parseNumberText() -> String {
        let start = index
        while index < chars.count {
            let c = chars[index]
            let previous = index > start ? chars[index - 1] : " "
            let ok = c.isHexDigit || c == "." || c == "x" || c == "X"
                || ((c == "-" || c == "+") && (index == start || previous == "e" || previous == "E"))
                || (index > start && c.isLetter && "infa".contains(c))
            guard ok else { break }
            index += 1
        }
        return String(chars[start..<index])
    }

    /// The single complete type that starts here (`@a{sv} {}`: the type ends before the space).
    private mutating func parseTypeString() -> String {
        let alphabet = Set("ybnqiuxtdsogvha(){}")
        var end = index
        while end < chars.count, alphabet.contains(chars[end]) { end += 1 }
        let candidate = String(chars[index..<end])
        for length in stride(from: candidate.count, through: 1, by: -1) {
            let prefix = String(candidate.prefix(length))
            if DBusSignature.isSingleCompleteType(prefix) {
                index += length
                return prefix
            }
        }
        return ""
    }

    private mutating func parseString() throws(DBusError) -> String {
        let quote = chars[index]
        index += 1
        var out = String.UnicodeScalarView()
        while index < chars.count {
            let c = chars[index]
            index += 1
            if c == quote { return String(out) }
            guard c == "\\" else { out.append(contentsOf: c.unicodeScalars); continue }
            guard index < chars.count else { break }
            let e = chars[index]
            index += 1
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "u", "U":
                let count = e == "u" ? 4 : 8
                guard index + count <= chars.count,
                      let value = UInt32(String(chars[index..<(index + count)]), radix: 16),
                      let scalar = Unicode.Scalar(value) else { throw error("bad \\\(e) escape") }
                index += count
                out.append(scalar)
            default: out.append(contentsOf: e.unicodeScalars)
            }
        }
        throw error("unterminated string")
    }
}
