// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit

#if canImport(Glibc)
import Glibc
#endif

enum FileHandleOutput {
    static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// One line to stdout, flushed at once (monitor output is read live by pipes).
    static func line(_ text: String) {
        print(text)
        fflush(nil)
    }
}

/// JSON text for D-Bus values: variants are unwrapped, string-keyed dictionaries become objects,
/// other dictionaries arrays of [key, value] pairs, structures arrays.
enum JSON {
    static func text(_ value: Value) -> String {
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
    static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    static func string(_ s: String) -> String {
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

/// Text for people.
enum Human {
    static func value(_ value: Value) -> String {
        switch value.unwrappingVariants {
        case .string(let s): s
        case .bool(let b): b ? "yes" : "no"
        case .double(let d): "\(d)"
        case let other: other.int64Value.map { "\($0)" } ?? other.uint64Value.map { "\($0)" } ?? other.gvariantText
        }
    }

    /// "2026-11-24 19:30:00 CET (in 5m)" for a Unix time; "-" for 0.
    static func time(_ unixSeconds: Int64) -> String {
        guard unixSeconds > 0 else { return "-" }
        var seconds = time_t(unixSeconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S %Z", &parts)
        let text = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let delta = unixSeconds - Int64(Glibc.time(nil))
        return delta >= 0
            ? "\(text) (in \(DurationText.describe(delta, approximate: true)))"
            : "\(text) (\(DurationText.describe(-delta, approximate: true)) ago)"
    }
}
