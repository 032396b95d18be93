// SPDX-License-Identifier: Apache-2.0
/// JSON text (RFC 8259) for values, as `bgsyncctl --json` prints them and `bgsync-worker --probe`
/// reports: variants are unwrapped, string-keyed dictionaries become objects,
/// other dictionaries arrays of [key, value] pairs, structures arrays.
public enum JSONText {
    public static func text(_ value: Value) -> String {
        switch value {
        case .bool(let b): b ? "true" : "false"
        case .byte(let v): "\(v)"
        case .int16(let v): "\(v)"
        case .uint16(let v): "\(v)"
        case .int32(let v): "\(v)"
        case .uint32(let v): "\(v)"
        case .int64(let v): "\(v)"
        case .uint64(let v): "\(v)"
        case .double(let d): d.isFinite ? "\(d)" : "null"
        case .string(let s), .objectPath(let s), .signature(let s): string(s)
        case .bytes(let bytes): "[" + bytes.map { "\($0)" }.joined(separator: ",") + "]"
        case .array(_, let items): "[" + items.map(text).joined(separator: ",") + "]"
        case .structure(let fields): "[" + fields.map(text).joined(separator: ",") + "]"
        case .variant(let inner): text(inner)
        case .dictionary(let key, _, let entries):
            if key == "s" || key == "o" {
                object(entries.map { ($0.key.stringValue ?? "", text($0.value)) })
            } else {
                "[" + entries.map { "[\(text($0.key)),\(text($0.value))]" }.joined(separator: ",") + "]"
            }
        }
    }

    /// An object from already-encoded member values, in the given order.
    public static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    public static func string(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
