// GVariant text format, as `gsettings set` and `gdbus call` read and print it, for the subset of
// types D-Bus carries (no maybe types, no handles).

extension DBusValue {
    /// Parses GVariant text: 'strings' and "strings", numbers (int32 by default, double with a
    /// dot or exponent; `uint32 5`, `int64 -3`, `byte 0x10`... annotate), true/false,
    /// arrays `['a', 'b']`, dictionaries `{'k': <1>}`, variants `<...>`, tuples `(1, 'a')`,
    /// typed values `@as []`, `objectpath '/a'`, `signature 'as'`, byte strings `b'abc'`.
    public static func parse(gvariantText text: String) throws(DBusError) -> DBusValue {
        var parser = GVariantParser(text)
        let node = try parser.parseValue(depth: 0)
        parser.skipSpaces()
        guard parser.atEnd else { throw parser.error("unexpected text after the value") }
        return try GVariantResolver.resolve(node, expected: nil)
    }

    /// Parses GVariant text for a value of a known D-Bus type (so `5` can be a uint32).
    public static func parse(gvariantText text: String, as signature: String) throws(DBusError) -> DBusValue {
        guard DBusSignature.isSingleCompleteType(signature) else {
            throw .invalidSignature("'\(signature)' is not a single D-Bus type")
        }
        var parser = GVariantParser(text)
        let node = try parser.parseValue(depth: 0)
        parser.skipSpaces()
        guard parser.atEnd else { throw parser.error("unexpected text after the value") }
        return try GVariantResolver.resolve(node, expected: signature)
    }

    /// This value as GVariant text, annotated so that `parse(gvariantText:)` gives it back.
    public var gvariantText: String {
        switch self {
        case .bool(let b): b ? "true" : "false"
        case .byte(let v): "byte 0x" + (v < 16 ? "0" : "") + String(v, radix: 16)
        case .int16(let v): "int16 \(v)"
        case .uint16(let v): "uint16 \(v)"
        case .int32(let v): "\(v)"
        case .uint32(let v): "uint32 \(v)"
        case .int64(let v): "int64 \(v)"
        case .uint64(let v): "uint64 \(v)"
        case .double(let d): Self.doubleText(d)
        case .string(let s): Self.quoted(s)
        case .objectPath(let s): "objectpath " + Self.quoted(s)
        case .signature(let s): "signature " + Self.quoted(s)
        case .array(let element, let items):
            items.isEmpty ? "@a\(element) []" : "[" + items.map(\.gvariantText).joined(separator: ", ") + "]"
        case .dictionary(let key, let value, let entries):
            entries.isEmpty
                ? "@a{\(key)\(value)} {}"
                : "{" + entries.map { "\($0.key.gvariantText): \($0.value.gvariantText)" }.joined(separator: ", ") + "}"
        case .structure(let fields):
            fields.count == 1 ? "(\(fields[0].gvariantText),)" : "(" + fields.map(\.gvariantText).joined(separator: ", ") + ")"
        case .variant(let inner): "<" + inner.gvariantText + ">"
        }
    }

    private static func doubleText(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        let text = "\(d)"
        return text.contains(where: { $0 == "." || $0 == "e" }) ? text : text + ".0"
    }

    static func quoted(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\u{07}": out += "\\a"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{0B}": out += "\\v"
            case _ where Character(scalar) == quote: out += "\\" + String(quote)
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out.append(quote)
        return out
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

enum GVariantResolver {
    static func resolve(_ node: GVariantNode, expected: String?) throws(DBusError) -> DBusValue {
        if expected == "v" {
            if case .variant(let inner) = node { return .variant(try resolve(inner, expected: nil)) }
            if case .typed("v", let inner) = node { return try resolve(inner, expected: "v") }
            return .variant(try resolve(node, expected: nil))  // lenient: a bare value where a variant goes
        }
        switch node {
        case .typed(let signature, let inner):
            guard DBusSignature.isSingleCompleteType(signature) else {
                throw .invalidSignature("'\(signature)' is not a D-Bus type")
            }
            if let expected, expected != signature {
                throw .invalidArgs("a value of type '\(signature)' where '\(expected)' is expected")
            }
            return try resolve(inner, expected: signature)
        case .variant(let inner):
            try check(expected, "v")
            return .variant(try resolve(inner, expected: nil))
        case .boolean(let b):
            try check(expected, "b")
            return .bool(b)
        case .string(let s):
            try MessageCoding.validateString(s)
            switch expected ?? "s" {
            case "s": return .string(s)
            case "o":
                guard MessageCoding.isValidObjectPath(s) else { throw .invalidArgs("'\(s)' is not a valid object path") }
                return .objectPath(s)
            case "g":
                guard DBusSignature.isValid(s) else { throw .invalidSignature("'\(s)' is not a valid D-Bus signature") }
                return .signature(s)
            case "ay": return .array(elementSignature: "y", s.utf8.map { .byte($0) })
            default: throw .invalidArgs("a string where '\(expected!)' is expected")
            }
        case .bytes(let bytes):
            try check(expected, "ay")
            return .array(elementSignature: "y", bytes.map { .byte($0) })
        case .number(let text):
            return try number(text, as: expected ?? (looksFloating(text) ? "d" : "i"))
        case .array(let items):
            if let expected, expected.hasPrefix("a{") {
                guard items.isEmpty else { throw .invalidArgs("a list where the dictionary '\(expected)' is expected") }
                return try resolve(.dictionary([]), expected: expected)
            }
            if let expected, !expected.hasPrefix("a") { throw .invalidArgs("an array where '\(expected)' is expected") }
            let element: String?
            if let expected { element = String(expected.dropFirst()) } else { element = try inferCommonType(items) }
            guard let element else {
                throw .invalidArgs("cannot tell the type of an empty array; write it like @as []")
            }
            var values: [DBusValue] = []
            for item in items { values.append(try resolve(item, expected: element)) }
            return .array(elementSignature: element, values)
        case .dictionary(let entries):
            var key: String?, value: String?
            if let expected {
                guard expected.hasPrefix("a{"), let types = DBusSignature.completeTypes(String(expected.dropFirst(2).dropLast())),
                      types.count == 2 else { throw .invalidArgs("a dictionary where '\(expected)' is expected") }
                key = types[0]
                value = types[1]
            } else {
                key = try inferCommonType(entries.map(\.0))
                value = try inferCommonType(entries.map(\.1))
            }
            guard let key, let value else {
                throw .invalidArgs("cannot tell the type of an empty dictionary; write it like @a{sv} {}")
            }
            guard key.count == 1, DBusSignature.basicTypes.contains(key.first!) else {
                throw .invalidArgs("dictionary keys must be a basic type, not '\(key)'")
            }
            var result: [DBusDictEntry] = []
            for (k, v) in entries {
                result.append(DBusDictEntry(key: try resolve(k, expected: key), value: try resolve(v, expected: value)))
            }
            return .dictionary(keySignature: key, valueSignature: value, result)
        case .tuple(let items):
            guard !items.isEmpty else { throw .invalidArgs("D-Bus has no empty tuples") }
            var fieldTypes: [String?] = Array(repeating: nil, count: items.count)
            if let expected {
                guard expected.hasPrefix("("), let types = DBusSignature.completeTypes(String(expected.dropFirst().dropLast())),
                      types.count == items.count else { throw .invalidArgs("a tuple of \(items.count) where '\(expected)' is expected") }
                fieldTypes = types
            }
            var fields: [DBusValue] = []
            for (item, type) in zip(items, fieldTypes) { fields.append(try resolve(item, expected: type)) }
            return .structure(fields)
        }
    }

    private static func check(_ expected: String?, _ actual: String) throws(DBusError) {
        if let expected, expected != actual {
            throw .invalidArgs("a value of type '\(actual)' where '\(expected)' is expected")
        }
    }

    /// The type all `items` share: the first one whose type the text settles, else int32 or double
    /// for bare numbers. Nil for no items.
    private static func inferCommonType(_ items: [GVariantNode]) throws(DBusError) -> String? {
        guard !items.isEmpty else { return nil }
        var firstError: DBusError?
        for item in items where !item.isBareNumber {
            do throws(DBusError) {
                return try resolve(item, expected: nil).signature
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        let anyFloating = items.contains { if case .number(let t) = $0 { looksFloating(t) } else { false } }
        return anyFloating ? "d" : "i"
    }

    private static func looksFloating(_ text: String) -> Bool {
        let body = text.drop { $0 == "-" || $0 == "+" }
        if body.hasPrefix("0x") || body.hasPrefix("0X") { return false }
        return body.contains { $0 == "." || $0 == "e" || $0 == "E" } || body == "inf" || body == "nan"
    }

    private static func integer(_ text: String) -> (negative: Bool, magnitude: UInt64)? {
        var body = Substring(text)
        var negative = false
        if body.first == "-" || body.first == "+" { negative = body.first == "-"; body = body.dropFirst() }
        let magnitude: UInt64?
        if body.hasPrefix("0x") || body.hasPrefix("0X") {
            magnitude = UInt64(body.dropFirst(2), radix: 16)
        } else if body.count > 1, body.first == "0" {
            magnitude = UInt64(body.dropFirst(), radix: 8)
        } else {
            magnitude = UInt64(body, radix: 10)
        }
        return magnitude.map { (negative, $0) }
    }

    private static func number(_ text: String, as type: String) throws(DBusError) -> DBusValue {
        if type == "d" {
            if let (negative, magnitude) = integer(text) { return .double(negative ? -Double(magnitude) : Double(magnitude)) }
            guard let value = Double(text) else { throw .invalidArgs("'\(text)' is not a number") }
            return .double(value)
        }
        guard let (negative, magnitude) = integer(text) else {
            throw .invalidArgs("'\(text)' is not an integer (type '\(type)')")
        }
        func fit<T: FixedWidthInteger>(_: T.Type) throws(DBusError) -> T {
            let value: T?
            if negative {
                value = magnitude == 0 ? 0 : Int64(exactly: magnitude).flatMap { T(exactly: -$0) }
                    ?? (magnitude == UInt64(Int64.max) + 1 ? T(exactly: Int64.min) : nil)
            } else {
                value = T(exactly: magnitude)
            }
            guard let value else { throw .invalidArgs("\(text) is out of range for \(T.self)") }
            return value
        }
        switch type {
        case "y": return .byte(try fit(UInt8.self))
        case "n": return .int16(try fit(Int16.self))
        case "q": return .uint16(try fit(UInt16.self))
        case "i": return .int32(try fit(Int32.self))
        case "u": return .uint32(try fit(UInt32.self))
        case "x": return .int64(try fit(Int64.self))
        case "t": return .uint64(try fit(UInt64.self))
        default: throw .invalidArgs("a number where '\(type)' is expected")
        }
    }
}
