/// GVariant text format, as `g_variant_print(value, TRUE)` and `gdbus` write it, so that a
/// handler's `option_text` reads like what a developer saw on the bus, and `g_variant_parse`
/// reads it back with the same type.
///
/// Two deliberate differences from GLib: doubles are printed in their shortest round-trip form
/// (`0.1`, where GLib prints `0.10000000000000001`), and non-printable characters are found with
/// Swift's Unicode tables rather than GLib's (they agree except on very new code points).
extension OptionValue {
    /// The value in GVariant text format, with GLib's type annotations where the text alone
    /// would be ambiguous (`uint32 7`, `@as []`, `<int64 3>`).
    public var gvariantText: String {
        var text = ""
        appendGVariantText(to: &text, annotate: true)
        return text
    }

    private func appendGVariantText(to text: inout String, annotate: Bool) {
        switch self {
        case .bool(let v): text += v ? "true" : "false"
        case .byte(let v): text += (annotate ? "byte " : "") + "0x" + Self.hex(UInt64(v), digits: 2)
        case .int16(let v): text += (annotate ? "int16 " : "") + String(v)
        case .uint16(let v): text += (annotate ? "uint16 " : "") + String(v)
        case .int32(let v): text += String(v)  // GVariant's default integer type: never annotated
        case .uint32(let v): text += (annotate ? "uint32 " : "") + String(v)
        case .int64(let v): text += (annotate ? "int64 " : "") + String(v)
        case .uint64(let v): text += (annotate ? "uint64 " : "") + String(v)
        case .double(let v): text += Self.doubleText(v)
        case .string(let s): text += Self.quoted(s)
        case .objectPath(let s): text += (annotate ? "objectpath " : "") + Self.quoted(s)
        case .signature(let s): text += (annotate ? "signature " : "") + Self.quoted(s)
        case .variant(let inner):
            // Nested variants always carry their type: it can be anything.
            text += "<"
            inner.appendGVariantText(to: &text, annotate: true)
            text += ">"
        case .tuple(let items):
            text += "("
            for (index, item) in items.enumerated() {
                if index > 0 { text += ", " }
                item.appendGVariantText(to: &text, annotate: annotate)
            }
            text += items.count == 1 ? ",)" : ")"
        case .array(let elementType, let items):
            if elementType == "y", let bytes = Self.byteString(items) {
                text += bytes
            } else if items.isEmpty {
                text += (annotate ? "@" + typeString + " " : "") + "[]"
            } else {
                // Only the first element is annotated; the rest share its type.
                text += "["
                for (index, item) in items.enumerated() {
                    if index > 0 { text += ", " }
                    item.appendGVariantText(to: &text, annotate: annotate && index == 0)
                }
                text += "]"
            }
        case .dictionary(_, _, let entries):
            if entries.isEmpty {
                text += (annotate ? "@" + typeString + " " : "") + "{}"
                return
            }
            text += "{"
            for (index, entry) in entries.enumerated() {
                if index > 0 { text += ", " }
                entry.key.appendGVariantText(to: &text, annotate: annotate && index == 0)
                text += ": "
                entry.value.appendGVariantText(to: &text, annotate: annotate && index == 0)
            }
            text += "}"
        }
    }

    /// Shortest round-trip digits, always with a '.' or an exponent so that it parses as a double.
    private static func doubleText(_ value: Double) -> String {
        let text = value.description  // "inf", "-inf" and "nan", as GLib writes them
        if text.contains(where: { $0 == "." || $0 == "e" || $0 == "n" }) { return text }
        return text + ".0"
    }

    /// A string in single quotes, or in double quotes when it contains a single quote (GLib's rule).
    private static func quoted(_ string: String) -> String {
        let quote: Unicode.Scalar = string.unicodeScalars.contains("'") ? "\"" : "'"
        var out = String(quote)
        for scalar in string.unicodeScalars {
            if scalar == quote || scalar == "\\" { out += "\\" }
            if isPrintable(scalar) {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\u{07}": out += "\\a"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0B}": out += "\\v"
            default:
                out += scalar.value < 0x10000
                    ? "\\u" + hex(UInt64(scalar.value), digits: 4) : "\\U" + hex(UInt64(scalar.value), digits: 8)
            }
        }
        out.unicodeScalars.append(quote)
        return out
    }

    /// As `g_unichar_isprint`: everything but control, format, unassigned, private-use and
    /// surrogate code points.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: false
        default: true
        }
    }

    /// GLib prints a byte array whose only NUL is its last byte as a byte string: b'text'.
    private static func byteString(_ items: [OptionValue]) -> String? {
        var bytes: [UInt8] = []
        for item in items {
            guard case .byte(let b) = item else { return nil }
            bytes.append(b)
        }
        guard let nul = bytes.firstIndex(of: 0), nul == bytes.count - 1 else { return nil }
        bytes.removeLast()
        // g_strescape: C escapes for the usual controls, octal for the other non-ASCII bytes.
        var escaped = ""
        for byte in bytes {
            switch byte {
            case 0x08: escaped += "\\b"
            case 0x0C: escaped += "\\f"
            case 0x0A: escaped += "\\n"
            case 0x0D: escaped += "\\r"
            case 0x09: escaped += "\\t"
            case 0x0B: escaped += "\\v"
            case UInt8(ascii: "\\"): escaped += "\\\\"
            case UInt8(ascii: "\""): escaped += "\\\""
            case 0x20..<0x7F: escaped.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                escaped += "\\" + String(byte >> 6) + String((byte >> 3) & 7) + String(byte & 7)
            }
        }
        return bytes.contains(UInt8(ascii: "'")) ? "b\"" + escaped + "\"" : "b'" + escaped + "'"
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
