/// One D-Bus value, with enough type information to be sent as-is: containers carry the
/// signature of their elements so that empty arrays and dictionaries are still typed.
public enum DBusValue: Hashable, Sendable {
    case byte(UInt8), bool(Bool), int16(Int16), uint16(UInt16), int32(Int32), uint32(UInt32),
         int64(Int64), uint64(UInt64), double(Double), string(String), objectPath(String), signature(String)
    /// An array of values that all have `elementSignature` (`ay`, `as`, `av`, `a(si)`, ...).
    case array(elementSignature: String, [DBusValue])
    /// A dictionary `a{kv}`; the key signature must be a basic type.
    case dictionary(keySignature: String, valueSignature: String, [DBusDictEntry])
    case structure([DBusValue])
    indirect case variant(DBusValue)

    /// The D-Bus type signature of this value, e.g. "a{sv}".
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
        case .array(let element, _): "a" + element
        case .dictionary(let key, let value, _): "a{" + key + value + "}"
        case .structure(let fields): "(" + fields.map(\.signature).joined() + ")"
        case .variant: "v"
        }
    }
}

/// One entry of a `DBusValue.dictionary`.
public struct DBusDictEntry: Hashable, Sendable {
    public var key: DBusValue
    public var value: DBusValue
    public init(key: DBusValue, value: DBusValue) {
        self.key = key
        self.value = value
    }
}

// Conveniences for reading replies and building arguments.
extension DBusValue {
    /// An `a{sv}` dictionary built from string keys; values are wrapped in variants.
    public static func stringVariantDictionary(_ entries: [(String, DBusValue)]) -> DBusValue {
        .dictionary(keySignature: "s", valueSignature: "v",
                    entries.map { DBusDictEntry(key: .string($0.0), value: .variant($0.1)) })
    }

    /// An `as` array.
    public static func stringArray(_ strings: [String]) -> DBusValue {
        .array(elementSignature: "s", strings.map { .string($0) })
    }

    /// The value inside any number of variant wrappers.
    public var unwrappingVariants: DBusValue {
        var value = self
        while case .variant(let inner) = value { value = inner }
        return value
    }

    /// The text of a string, object path or signature.
    public var stringValue: String? {
        switch unwrappingVariants {
        case .string(let s), .objectPath(let s), .signature(let s): s
        default: nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = unwrappingVariants { return b }
        return nil
    }

    /// Any integer type, when it fits in an Int64.
    public var int64Value: Int64? {
        switch unwrappingVariants {
        case .byte(let v): Int64(v)
        case .int16(let v): Int64(v)
        case .uint16(let v): Int64(v)
        case .int32(let v): Int64(v)
        case .uint32(let v): Int64(v)
        case .int64(let v): v
        case .uint64(let v): Int64(exactly: v)
        default: nil
        }
    }

    /// Any unsigned or non-negative integer, when it fits in a UInt64.
    public var uint64Value: UInt64? {
        if case .uint64(let v) = unwrappingVariants { return v }
        return int64Value.flatMap { UInt64(exactly: $0) }
    }

    public var doubleValue: Double? {
        if case .double(let v) = unwrappingVariants { return v }
        return nil
    }

    /// The elements of an array (nil for anything else).
    public var arrayValue: [DBusValue]? {
        if case .array(_, let elements) = unwrappingVariants { return elements }
        return nil
    }

    /// A dictionary with string keys (e.g. `a{sv}`), values as sent (variants are kept).
    public var stringKeyedDictionary: [String: DBusValue]? {
        guard case .dictionary(_, _, let entries) = unwrappingVariants else { return nil }
        var result: [String: DBusValue] = [:]
        for entry in entries {
            guard let key = entry.key.stringValue else { return nil }
            result[key] = entry.value
        }
        return result
    }
}
