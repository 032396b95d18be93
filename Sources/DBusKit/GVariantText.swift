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
