// SPDX-License-Identifier: Apache-2.0
/// One D-Bus / GVariant value, with enough type information to be sent or printed as-is:
/// containers carry the signature of their elements so that empty arrays and dictionaries are
/// still typed. The one value type of bgsync: the bus, the core's handler options, the store,
/// the worker and the handlers all use it.
public enum Value: Sendable {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// An `ay`, kept as its bytes: decoding a large byte array must not make one value per byte.
    /// `.array(elementSignature: "y", …)` is the same value (they compare equal and hash alike).
    case bytes([UInt8])
    /// An array of values that all have `elementSignature` (`as`, `av`, `a(si)`, ...).
    case array(elementSignature: String, [Value])
    /// A dictionary `a{kv}`; the key signature must be a basic type.
    case dictionary(keySignature: String, valueSignature: String, [DictEntry])
    case structure([Value])
    indirect case variant(Value)

    /// One entry of a `Value.dictionary`.
    public struct DictEntry: Hashable, Sendable {
        public var key: Value
        public var value: Value
        public init(key: Value, value: Value) {
            self.key = key
            self.value = value
        }
    }

    /// The D-Bus / GVariant type signature of this value, e.g. "a{sv}".
    public var signature: String {
        switch self {
        case .byte: "y"
        case .bool: "b"
        case .int16: "n"
        case .uint16: "q"
        case .int32: "i"
        case .uint32: "u"
        case .int64: "x"
        case .uint64: "t"
        case .double: "d"
        case .string: "s"
        case .objectPath: "o"
        case .signature: "g"
        case .bytes: "ay"
        case .array(let element, _): "a" + element
        case .dictionary(let key, let value, _): "a{" + key + value + "}"
        case .structure(let fields): "(" + fields.map(\.signature).joined() + ")"
        case .variant: "v"
        }
    }

    /// The same as `signature` (the name GLib uses).
    public var typeString: String { signature }

    /// The bytes of an `ay`, whichever way it is held.
    var byteArrayContent: [UInt8]? {
        switch self {
        case .bytes(let bytes): return bytes
        case .array("y", let items):
            var bytes: [UInt8] = []
            bytes.reserveCapacity(items.count)
            for item in items {
                guard case .byte(let b) = item else { return nil }
                bytes.append(b)
            }
            return bytes
        default: return nil
        }
    }
}

extension Value: Hashable {
    /// Structural equality, with the two forms of `ay` equal. Doubles compare by value (so NaN is
    /// not equal to itself, as in GLib's `g_variant_equal`).
    public static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.byte(let a), .byte(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.int16(let a), .int16(let b)): a == b
        case (.uint16(let a), .uint16(let b)): a == b
        case (.int32(let a), .int32(let b)): a == b
        case (.uint32(let a), .uint32(let b)): a == b
        case (.int64(let a), .int64(let b)): a == b
        case (.uint64(let a), .uint64(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)), (.objectPath(let a), .objectPath(let b)),
            (.signature(let a), .signature(let b)):
            a == b
        case (.bytes(let a), .bytes(let b)): a == b
        case (.bytes, .array("y", _)), (.array("y", _), .bytes): lhs.byteArrayContent == rhs.byteArrayContent
        case (.array(let t1, let a), .array(let t2, let b)): t1 == t2 && a == b
        case (.dictionary(let k1, let v1, let a), .dictionary(let k2, let v2, let b)): k1 == k2 && v1 == v2 && a == b
        case (.structure(let a), .structure(let b)): a == b
        case (.variant(let a), .variant(let b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(signature)
        switch self {
        case .byte(let v): hasher.combine(v)
        case .bool(let v): hasher.combine(v)
        case .int16(let v): hasher.combine(v)
        case .uint16(let v): hasher.combine(v)
        case .int32(let v): hasher.combine(v)
        case .uint32(let v): hasher.combine(v)
        case .int64(let v): hasher.combine(v)
        case .uint64(let v): hasher.combine(v)
        case .double(let v): hasher.combine(v)
        case .string(let s), .objectPath(let s), .signature(let s): hasher.combine(s)
        case .bytes, .array("y", _): hasher.combine(byteArrayContent)
        case .array(_, let items): hasher.combine(items)
        case .dictionary(_, _, let entries): hasher.combine(entries)
        case .structure(let fields): hasher.combine(fields)
        case .variant(let inner): hasher.combine(inner)
        }
    }
}
