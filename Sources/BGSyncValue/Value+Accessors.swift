// SPDX-License-Identifier: Apache-2.0
// Conveniences for reading replies and options, and for building arguments.
extension Value {
    /// An `a{sv}` dictionary built from string keys, in the order given; values are wrapped in
    /// variants.
    public static func stringVariantDictionary(_ entries: [(String, Value)]) -> Value {
        .dictionary(
            keySignature: "s", valueSignature: "v",
            entries.map { DictEntry(key: .string($0.0), value: .variant($0.1)) })
    }

    /// An `a{sv}` built from string keys, in byte order of the keys (stable output for scripts,
    /// tests and the store).
    public static func vardict(_ entries: [String: Value]) -> Value {
        let sorted = entries.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return stringVariantDictionary(sorted.map { ($0.key, $0.value) })
    }

    /// An `as` array.
    public static func stringArray(_ strings: [String]) -> Value {
        .array(elementSignature: "s", strings.map { .string($0) })
    }

    /// The value inside any number of variant wrappers.
    public var unwrappingVariants: Value {
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

    /// The same as `uint64Value` (the name core code used).
    public var unsignedValue: UInt64? { uint64Value }

    /// A double (d) only; `numberValue` also converts integers.
    public var doubleValue: Double? {
        if case .double(let v) = unwrappingVariants { return v }
        return nil
    }

    /// A double, or any integer converted.
    public var numberValue: Double? {
        switch unwrappingVariants {
        case .double(let v): v
        case .uint64(let v): Double(v)
        default: int64Value.map(Double.init)
        }
    }

    /// The elements of an array (nil for anything else); an `ay` gives `.byte` elements.
    public var arrayValue: [Value]? {
        switch unwrappingVariants {
        case .array(_, let elements): elements
        case .bytes(let bytes): bytes.map { .byte($0) }
        default: nil
        }
    }

    /// The bytes of an `ay`.
    public var bytesValue: [UInt8]? { unwrappingVariants.byteArrayContent }

    /// The items of an `as` (nil for any other type).
    public var stringsValue: [String]? {
        guard case .array("s", let items) = unwrappingVariants else { return nil }
        return items.map { $0.stringValue ?? "" }
    }

    /// A dictionary with string keys (e.g. `a{sv}`), values as sent (variants are kept).
    public var stringKeyedDictionary: [String: Value]? {
        guard case .dictionary(_, _, let entries) = unwrappingVariants else { return nil }
        var result: [String: Value] = [:]
        for entry in entries {
            guard let key = entry.key.stringValue else { return nil }
            result[key] = entry.value
        }
        return result
    }

    /// The entries of a dictionary with string keys and string (or variant) values, in the order
    /// given; a value that is not a string is nil. Nil for any other type.
    public var stringPairsValue: [(key: String, value: String?)]? {
        guard case .dictionary(let keyType, let valueType, let entries) = unwrappingVariants,
            ["s", "o", "g"].contains(keyType), ["s", "o", "g", "v"].contains(valueType)
        else { return nil }
        return entries.map { (key: $0.key.stringValue ?? "", value: $0.value.stringValue) }
    }

    /// Whether every double inside is finite.
    public var isFinite: Bool {
        switch self {
        case .double(let d): d.isFinite
        case .array(_, let items), .structure(let items): items.allSatisfy(\.isFinite)
        case .dictionary(_, _, let entries): entries.allSatisfy { $0.key.isFinite && $0.value.isFinite }
        case .variant(let inner): inner.isFinite
        default: true
        }
    }

    /// The size this value takes as D-Bus marshals it, near enough (alignment padding is not
    /// counted): what size limits are about.
    public var marshalledSize: Int {
        switch self {
        case .bool, .int32, .uint32: 4
        case .byte: 1
        case .int16, .uint16: 2
        case .int64, .uint64, .double: 8
        case .string(let s), .objectPath(let s): s.utf8.count + 5
        case .signature(let s): s.utf8.count + 2
        case .bytes(let bytes): 4 + bytes.count
        case .array(_, let items): 4 + items.reduce(0) { $0 + $1.marshalledSize }
        case .dictionary(_, _, let entries):
            4 + entries.reduce(0) { $0 + $1.key.marshalledSize + $1.value.marshalledSize }
        case .structure(let items): items.reduce(0) { $0 + $1.marshalledSize }
        case .variant(let inner): inner.signature.utf8.count + 2 + inner.marshalledSize
        }
    }
}
