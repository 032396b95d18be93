// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import TestKit

/// Generated values of every D-Bus type, nested containers included, with the awkward cases
/// (empty arrays, quotes, backslashes, control and non-ASCII characters, byte strings, doubles,
/// integer extremes). Deterministic: a seed gives the same values on every run.
struct ValueGenerator {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { random.next() }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    static let pieces: [String] = [
        "a", "Z", " ", "'", "\"", "\\", "\n", "\t", "\r", "\u{07}", "\u{08}", "\u{0B}", "\u{0C}", "\u{01}", "\u{1F}",
        "\u{7F}", "é", "ß", "日本", "😀", "\u{200B}", "\u{E000}", "\u{85}", "\u{A0}", "\u{2028}", "x\\ny", "@as",
        "<>",
        "{}", "[]", "b'", "%s", "0x10",
    ]
    // No subnormals: GLib prints 5e-324 as 4.9406564584124654e-324 and then refuses to read
    // that back ("number too big for any type", GLib 2.74); BGSyncValue reads it.
    static let doubles: [Double] = [
        0, -0.0, 1, -1, 0.1, 1.0 / 3, 100, 1e22, 1e300, -1e-300, .greatestFiniteMagnitude,
        .leastNormalMagnitude, .infinity, -.infinity, 123456789.125, 2.5e-5,
    ]
    static let signatures = ["", "s", "a{sv}", "(ii)", "aay", "v", "a(sa{sv})", "g", "o"]
    static let basicTypes = ["y", "b", "n", "q", "i", "u", "x", "t", "d", "s", "o", "g"]

    mutating func string() -> String {
        (0..<below(6)).map { _ in pick(Self.pieces) }.joined()
    }

    mutating func objectPath() -> String {
        let parts = below(4)
        return parts == 0 ? "/" : (0..<parts).map { _ in "/" + pick(["a", "org", "x_1", "B9"]) }.joined()
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
        switch below(4) {
        case 0: T.min
        case 1: T.max
        case 2: 0
        default: T(truncatingIfNeeded: next())
        }
    }

    /// A random type: basic at depth 3, else sometimes a container.
    mutating func type(depth: Int) -> String {
        if depth >= 3 || below(3) == 0 { return pick(Self.basicTypes) }
        switch below(6) {
        case 0: return "ay"
        case 1: return "v"
        case 2: return "a{" + pick(Self.basicTypes) + type(depth: depth + 1) + "}"
        case 3: return "(" + (0..<(1 + below(3))).map { _ in type(depth: depth + 1) }.joined() + ")"
        default: return "a" + type(depth: depth + 1)
        }
    }

    mutating func value(of type: String, depth: Int = 0) -> Value {
        let chars = Array(type)
        switch chars[0] {
        case "y": return .byte(integer(UInt8.self))
        case "b": return .bool(below(2) == 0)
        case "n": return .int16(integer(Int16.self))
        case "q": return .uint16(integer(UInt16.self))
        case "i": return .int32(integer(Int32.self))
        case "u": return .uint32(integer(UInt32.self))
        case "x": return .int64(integer(Int64.self))
        case "t": return .uint64(integer(UInt64.self))
        case "d":
            if below(2) == 0 { return .double(pick(Self.doubles)) }
            // Random sign and mantissa, an exponent of a normal finite double.
            return .double(Double(bitPattern: next() & ~(0x7FF << 52) | (UInt64(1 + below(2045)) << 52)))
        case "s": return .string(string())
        case "o": return .objectPath(objectPath())
        case "g": return .signature(pick(Self.signatures))
        case "v": return .variant(value(of: self.type(depth: depth + 1), depth: depth + 1))
        case "(":
            let fields = TypeSignature.completeTypes(String(chars.dropFirst().dropLast()))!
            return .structure(fields.map { value(of: $0, depth: depth + 1) })
        default:  // "a…"
            let count = below(4)
            if type == "ay" {
                // Byte strings (a trailing NUL only), and arrays GLib prints byte by byte.
                var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
                if below(2) == 0 { bytes = Array(string().utf8).filter { $0 != 0 } + [0] }
                return .bytes(bytes)
            }
            if chars[1] == "{" {
                let inner = TypeSignature.completeTypes(String(chars.dropFirst(2).dropLast()))!
                return .dictionary(
                    keySignature: inner[0], valueSignature: inner[1],
                    (0..<count).map { _ in
                        let key = value(of: inner[0], depth: depth + 1)
                        return Value.DictEntry(key: key, value: value(of: inner[1], depth: depth + 1))
                    })
            }
            let element = String(chars.dropFirst())
            return .array(elementSignature: element, (0..<count).map { _ in value(of: element, depth: depth + 1) })
        }
    }
}
