/// A typed value as callers send it (the D-Bus / GVariant type system), kept exactly as given so
/// that a handler reads back the type the app used. The core never interprets handler options,
/// apart from the reserved keys in `RegistrationRequest`.
public indirect enum OptionValue: Hashable, Sendable, Codable {
    case bool(Bool)
    case byte(UInt8)
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
    /// `elementType` is the element's type string, needed for empty arrays.
    case array(elementType: String, [OptionValue])
    case dictionary(keyType: String, valueType: String, [DictionaryEntry])
    case tuple([OptionValue])
    case variant(OptionValue)

    public struct DictionaryEntry: Hashable, Sendable, Codable {
        public var key: OptionValue
        public var value: OptionValue
        public init(key: OptionValue, value: OptionValue) {
            self.key = key
            self.value = value
        }
    }

    /// The D-Bus / GVariant type string of this value, e.g. `as` or `a{sv}`.
    public var typeString: String {
        switch self {
        case .bool: "b"
        case .byte: "y"
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
        case .array(let element, _): "a" + element
        case .dictionary(let key, let value, _): "a{" + key + value + "}"
        case .tuple(let items): "(" + items.map(\.typeString).joined() + ")"
        case .variant: "v"
        }
    }

    /// The text of a string-like value, looking through variants.
    public var stringValue: String? {
        switch self {
        case .string(let s), .objectPath(let s), .signature(let s): s
        case .variant(let inner): inner.stringValue
        default: nil
        }
    }

    /// Any integer that fits in UInt64 and is not negative, looking through variants.
    public var unsignedValue: UInt64? {
        switch self {
        case .byte(let v): UInt64(v)
        case .uint16(let v): UInt64(v)
        case .uint32(let v): UInt64(v)
        case .uint64(let v): v
        case .int16(let v): v >= 0 ? UInt64(v) : nil
        case .int32(let v): v >= 0 ? UInt64(v) : nil
        case .int64(let v): v >= 0 ? UInt64(v) : nil
        case .variant(let inner): inner.unsignedValue
        default: nil
        }
    }

    /// Whether every double inside is finite (JSON, our storage format, has no NaN or infinity).
    public var isFinite: Bool {
        switch self {
        case .double(let d): d.isFinite
        case .array(_, let items), .tuple(let items): items.allSatisfy(\.isFinite)
        case .dictionary(_, _, let entries): entries.allSatisfy { $0.key.isFinite && $0.value.isFinite }
        case .variant(let inner): inner.isFinite
        default: true
        }
    }
}
