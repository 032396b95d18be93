// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

// GVariant text, exactly as GLib's `g_variant_print(value, TRUE)` writes it (and so as `gdbus`
// and `gsettings` print values): type annotations only where the text alone would be
// ambiguous (`uint32 7`, `@as []`, `<int64 3>`), so that `g_variant_parse` reads it back with
// the same type. BGSyncValueTests checks this against GLib itself.
//
// One known difference: printable characters are found with Swift's Unicode tables rather than
// GLib's, which agree except on code points newer than the GLib at hand.
extension Value {
    /// The value in GVariant text format, annotated as `g_variant_print(value, TRUE)`.
    public var gvariantText: String {
        var text = ""
        appendGVariantText(to: &text, annotate: true)
        return text
    }

    /// `g_variant_print(value, FALSE)`: no type annotations (not always readable back).
    public var gvariantTextWithoutTypes: String {
        var text = ""
        appendGVariantText(to: &text, annotate: false)
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
            // A variant's content always carries its type: it can be anything.
            text += "<"
            inner.appendGVariantText(to: &text, annotate: true)
            text += ">"
        case .structure(let items):
            text += "("
            for (index, item) in items.enumerated() {
                if index > 0 { text += ", " }
                item.appendGVariantText(to: &text, annotate: annotate)
            }
            text += items.count == 1 ? ",)" : ")"
        case .bytes, .array("y", _):
            let bytes = byteArrayContent ?? []
            if let string = Self.byteString(bytes) {
                text += string
            } else {
                Self.appendList(bytes.map { Value.byte($0) }, type: "ay", to: &text, annotate: annotate)
            }
        case .array(_, let items):
            Self.appendList(items, type: signature, to: &text, annotate: annotate)
        case .dictionary(_, _, let entries):
            if entries.isEmpty {
                text += (annotate ? "@" + signature + " " : "") + "{}"
                return
            }
            // Only the first entry is annotated; the rest share its types.
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

    private static func appendList(_ items: [Value], type: String, to text: inout String, annotate: Bool) {
        if items.isEmpty {
            text += (annotate ? "@" + type + " " : "") + "[]"
            return
        }
        // Only the first element is annotated; the rest share its type.
        text += "["
        for (index, item) in items.enumerated() {
            if index > 0 { text += ", " }
            item.appendGVariantText(to: &text, annotate: annotate && index == 0)
        }
        text += "]"
    }

    /// `g_ascii_dtostr` (17 significant digits, enough to read back the same double), with ".0"
    /// added when that has no '.', exponent, "inf" or "nan", as GLib does.
    static func doubleText(_ value: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.17g", $0) }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.contains(where: { $0 == "." || $0 == "e" || $0 == "n" || $0 == "N" }) { return text }
        return text + ".0"
    }

    /// A string in single quotes, or in double quotes when it contains a single quote (GLib's rule).
    static func quoted(_ string: String) -> String {
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
                out +=
                    scalar.value < 0x10000
                    ? "\\u" + hex(UInt64(scalar.value), digits: 4) : "\\U" + hex(UInt64(scalar.value), digits: 8)
            }
        }
        out.unicodeScalars.append(quote)
        return out
    }

    /// As `g_unichar_isprint`: everything but control, format, unassigned and surrogate code
    /// points (private-use characters are printable).
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .surrogate: false
        default: true
        }
    }

    /// GLib prints a byte array whose only NUL is its last byte as a byte string: b'text'.
    private static func byteString(_ bytes: [UInt8]) -> String? {
        guard let nul = bytes.firstIndex(of: 0), nul == bytes.count - 1 else { return nil }
        // g_strescape: C escapes for the usual controls, octal for the other bytes outside
        // printable ASCII.
        var escaped = ""
        for byte in bytes.dropLast() {
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

    static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
