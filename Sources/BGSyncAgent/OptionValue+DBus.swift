import BGSyncCore
import DBusKit

// The core's typed option values and the bus's values are the same type system; these map one
// onto the other, so the core never sees DBusKit.

extension OptionValue {
    init(_ value: DBusValue) {
        switch value {
        case .byte(let v): self = .byte(v)
        case .bool(let v): self = .bool(v)
        case .int16(let v): self = .int16(v)
        case .uint16(let v): self = .uint16(v)
        case .int32(let v): self = .int32(v)
        case .uint32(let v): self = .uint32(v)
        case .int64(let v): self = .int64(v)
        case .uint64(let v): self = .uint64(v)
        case .double(let v): self = .double(v)
        case .string(let v): self = .string(v)
        case .objectPath(let v): self = .objectPath(v)
        case .signature(let v): self = .signature(v)
        case .array(let element, let items): self = .array(elementType: element, items.map(OptionValue.init))
        case .dictionary(let key, let value, let entries):
            self = .dictionary(
                keyType: key, valueType: value,
                entries.map { DictionaryEntry(key: OptionValue($0.key), value: OptionValue($0.value)) })
        case .structure(let items): self = .tuple(items.map(OptionValue.init))
        case .variant(let inner): self = .variant(OptionValue(inner))
        }
    }

    var dbusValue: DBusValue {
        switch self {
        case .byte(let v): .byte(v)
        case .bool(let v): .bool(v)
        case .int16(let v): .int16(v)
        case .uint16(let v): .uint16(v)
        case .int32(let v): .int32(v)
        case .uint32(let v): .uint32(v)
        case .int64(let v): .int64(v)
        case .uint64(let v): .uint64(v)
        case .double(let v): .double(v)
        case .string(let v): .string(v)
        case .objectPath(let v): .objectPath(v)
        case .signature(let v): .signature(v)
        case .array(let element, let items): .array(elementSignature: element, items.map(\.dbusValue))
        case .dictionary(let key, let value, let entries):
            .dictionary(
                keySignature: key, valueSignature: value,
                entries.map { DBusDictEntry(key: $0.key.dbusValue, value: $0.value.dbusValue) })
        case .tuple(let items): .structure(items.map(\.dbusValue))
        case .variant(let inner): .variant(inner.dbusValue)
        }
    }
}

extension DBusValue {
    /// An `a{sv}` built from string keys, in key order (stable output for scripts and tests).
    static func vardict(_ entries: [String: DBusValue]) -> DBusValue {
        .dictionary(
            keySignature: "s", valueSignature: "v",
            entries.sorted { $0.key < $1.key }.map { DBusDictEntry(key: .string($0.key), value: .variant($0.value)) })
    }
}
