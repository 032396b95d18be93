// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CDBus

#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing message bodies. Everything is checked before it reaches libdbus, whose
/// own argument checks abort the process.
enum MessageCoding {
    /// Containers nested deeper than this are refused (the D-Bus limit is 32 arrays plus 32 structs).
    static let maximumDepth = 64

    // MARK: Writing

    static func append(_ values: [Value], to message: OpaquePointer) throws(DBusError) {
        for value in values { try validate(value, depth: 0) }
        var iter = DBusMessageIter()
        dbus_message_iter_init_append(message, &iter)
        for value in values {
            guard append(value, to: &iter) else { throw .noMemory("out of memory while writing a D-Bus message") }
        }
    }

    /// Checks what libdbus would otherwise abort on: element types, strings, paths, signatures, depth.
    static func validate(_ value: Value, depth: Int) throws(DBusError) {
        guard depth <= maximumDepth else {
            throw .invalidArgs("value nested deeper than \(maximumDepth) containers; D-Bus cannot carry it")
        }
        switch value {
        case .string(let s):
            try validateString(s)
        case .objectPath(let path):
            guard isValidObjectPath(path) else { throw .invalidArgs("'\(path)' is not a valid object path") }
        case .signature(let sig):
            guard !sig.utf8.contains(0), DBusSignature.isValid(sig) else {
                throw .invalidSignature("'\(sig)' is not a valid D-Bus signature")
            }
        case .array(let element, let items):
            guard DBusSignature.isSingleCompleteType(element), element.first != "{" else {
                throw .invalidSignature("'\(element)' is not a valid array element type")
            }
            guard DBusSignature.isSingleCompleteType("a" + element) else {
                throw .invalidArgs("array of '\(element)' is nested too deeply for D-Bus")
            }
            for item in items {
                guard item.signature == element else {
                    throw .invalidArgs("array of '\(element)' holds a '\(item.signature)' element")
                }
                try validate(item, depth: depth + 1)
            }
        case .dictionary(let key, let valueSig, let entries):
            let sig = "a{" + key + valueSig + "}"
            guard key.count == 1, DBusSignature.basicTypes.contains(key.first!), DBusSignature.isSingleCompleteType(sig)
            else {
                throw .invalidSignature("'\(sig)' is not a valid dictionary type")
            }
            for entry in entries {
                guard entry.key.signature == key, entry.value.signature == valueSig else {
                    throw .invalidArgs(
                        "dictionary '\(sig)' holds an entry of '{\(entry.key.signature)\(entry.value.signature)}'")
                }
                try validate(entry.key, depth: depth + 2)
                try validate(entry.value, depth: depth + 2)
            }
        case .structure(let fields):
            guard !fields.isEmpty else { throw .invalidArgs("D-Bus has no empty structures") }
            for field in fields { try validate(field, depth: depth + 1) }
        case .variant(let inner):
            guard inner.signature.utf8.count <= 255 else {
                throw .invalidSignature("a variant's content type is longer than 255 characters")
            }
            try validate(inner, depth: depth + 1)
        default:
            break
        }
    }

    static func validateString(_ s: String) throws(DBusError) {
        guard !s.utf8.contains(0) else { throw .invalidArgs("strings on D-Bus cannot contain NUL characters") }
    }

    static func isValidObjectPath(_ path: String) -> Bool {
        !path.utf8.contains(0) && path.withCString { dbus_validate_path($0, nil) } != 0
    }

    private static func appendBasic<T>(_ iter: inout DBusMessageIter, _ type: Int32, _ value: T) -> Bool {
        var copy = value
        return withUnsafePointer(to: &copy) { dbus_message_iter_append_basic(&iter, type, $0) } != 0
    }

    private static func appendString(_ iter: inout DBusMessageIter, _ type: Int32, _ s: String) -> Bool {
        s.withCString { cString in
            var pointer: UnsafePointer<CChar>? = cString
            return dbus_message_iter_append_basic(&iter, type, &pointer) != 0
        }
    }

    private static func append(_ value: Value, to iter: inout DBusMessageIter) -> Bool {
        switch value {
        case .byte(let v): return appendBasic(&iter, DBUS_TYPE_BYTE, v)
        case .bool(let v): return appendBasic(&iter, DBUS_TYPE_BOOLEAN, dbus_bool_t(v ? 1 : 0))
        case .int16(let v): return appendBasic(&iter, DBUS_TYPE_INT16, v)
        case .uint16(let v): return appendBasic(&iter, DBUS_TYPE_UINT16, v)
        case .int32(let v): return appendBasic(&iter, DBUS_TYPE_INT32, v)
        case .uint32(let v): return appendBasic(&iter, DBUS_TYPE_UINT32, v)
        case .int64(let v): return appendBasic(&iter, DBUS_TYPE_INT64, v)
        case .uint64(let v): return appendBasic(&iter, DBUS_TYPE_UINT64, v)
        case .double(let v): return appendBasic(&iter, DBUS_TYPE_DOUBLE, v)
        case .string(let s): return appendString(&iter, DBUS_TYPE_STRING, s)
        case .objectPath(let s): return appendString(&iter, DBUS_TYPE_OBJECT_PATH, s)
        case .signature(let s): return appendString(&iter, DBUS_TYPE_SIGNATURE, s)
        case .bytes, .array("y", _):
            let bytes = value.bytesValue ?? []
            return appendContainer(&iter, DBUS_TYPE_ARRAY, "y") { sub in
                bytes.withUnsafeBufferPointer { buffer in
                    var base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
                    return withUnsafePointer(to: &base) {
                        dbus_message_iter_append_fixed_array(&sub, DBUS_TYPE_BYTE, $0, Int32(buffer.count)) != 0
                    }
                }
            }
        case .array(let element, let items):
            return appendContainer(&iter, DBUS_TYPE_ARRAY, element) { sub in
                items.allSatisfy { append($0, to: &sub) }
            }
        case .dictionary(let key, let valueSig, let entries):
            return appendContainer(&iter, DBUS_TYPE_ARRAY, "{" + key + valueSig + "}") { sub in
                entries.allSatisfy { entry in
                    appendContainer(&sub, DBUS_TYPE_DICT_ENTRY, nil) { pair in
                        append(entry.key, to: &pair) && append(entry.value, to: &pair)
                    }
                }
            }
        case .structure(let fields):
            return appendContainer(&iter, DBUS_TYPE_STRUCT, nil) { sub in
                fields.allSatisfy { append($0, to: &sub) }
            }
        case .variant(let inner):
            return appendContainer(&iter, DBUS_TYPE_VARIANT, inner.signature) { sub in append(inner, to: &sub) }
        }
    }

    private static func appendContainer(
        _ iter: inout DBusMessageIter, _ type: Int32, _ contained: String?,
        _ body: (inout DBusMessageIter) -> Bool
    ) -> Bool {
        var sub = DBusMessageIter()
        let opened: Bool
        if let contained {
            opened = contained.withCString { dbus_message_iter_open_container(&iter, type, $0, &sub) } != 0
        } else {
            opened = dbus_message_iter_open_container(&iter, type, nil, &sub) != 0
        }
        guard opened else { return false }
        guard body(&sub) else {
            dbus_message_iter_abandon_container(&iter, &sub)
            return false
        }
        return dbus_message_iter_close_container(&iter, &sub) != 0
    }

    // MARK: Reading

    /// What is left of a message's `DecodingLimit` while it is read.
    struct Budget {
        var left: Int
        let limit: DecodingLimit

        init(_ limit: DecodingLimit) {
            self.limit = limit
            left = limit.bytes
        }

        /// Takes `bytes` from the budget, before the value they make is built.
        mutating func spend(_ bytes: Int) throws(DBusError) {
            guard bytes <= left else { throw limit.error }
            left -= bytes
        }
    }

    /// All arguments of `message`; a message with no arguments gives []. Values are built only
    /// while they fit in `limit`.
    static func arguments(of message: OpaquePointer, limit: DecodingLimit = .none) throws(DBusError) -> [Value] {
        var iter = DBusMessageIter()
        guard dbus_message_iter_init(message, &iter) != 0 else { return [] }
        var budget = Budget(limit)
        return try readAll(&iter, &budget)
    }

    private static func readAll(_ iter: inout DBusMessageIter, _ budget: inout Budget) throws(DBusError) -> [Value] {
        var values: [Value] = []
        while dbus_message_iter_get_arg_type(&iter) != DBUS_TYPE_INVALID {
            values.append(try read(&iter, &budget))
            dbus_message_iter_next(&iter)
        }
        return values
    }

    static func basic<T>(_ iter: inout DBusMessageIter, _ zero: T) -> T {
        var value = zero
        withUnsafeMutablePointer(to: &value) { dbus_message_iter_get_basic(&iter, $0) }
        return value
    }

    /// Strings are borrowed from the message: their length is paid for, then they are copied out.
    static func string(_ iter: inout DBusMessageIter, _ budget: inout Budget) throws(DBusError) -> String {
        let pointer: UnsafePointer<CChar>? = basic(&iter, nil)
        guard let pointer else { return "" }
        try budget.spend(strlen(pointer) + 5)
        return String(cString: pointer)  // libdbus has validated it as UTF-8
    }

    private static func currentSignature(_ iter: inout DBusMessageIter) -> String {
        guard let raw = dbus_message_iter_get_signature(&iter) else { return "" }
        defer { dbus_free(raw) }
        return String(cString: raw)
    }

    private static func fixed<T>(
        _ iter: inout DBusMessageIter, _ budget: inout Budget, _ zero: T
    ) throws(DBusError) -> T {
        try budget.spend(MemoryLayout<T>.size)
        return basic(&iter, zero)
    }

    static func read(_ iter: inout DBusMessageIter, _ budget: inout Budget) throws(DBusError) -> Value {
        let type = dbus_message_iter_get_arg_type(&iter)
        switch type {
        case DBUS_TYPE_BYTE: return .byte(try fixed(&iter, &budget, UInt8(0)))
        case DBUS_TYPE_BOOLEAN: return .bool(try fixed(&iter, &budget, dbus_bool_t(0)) != 0)
        case DBUS_TYPE_INT16: return .int16(try fixed(&iter, &budget, Int16(0)))
        case DBUS_TYPE_UINT16: return .uint16(try fixed(&iter, &budget, UInt16(0)))
        case DBUS_TYPE_INT32: return .int32(try fixed(&iter, &budget, Int32(0)))
        case DBUS_TYPE_UINT32: return .uint32(try fixed(&iter, &budget, UInt32(0)))
        case DBUS_TYPE_INT64: return .int64(try fixed(&iter, &budget, Int64(0)))
        case DBUS_TYPE_UINT64: return .uint64(try fixed(&iter, &budget, UInt64(0)))
        case DBUS_TYPE_DOUBLE: return .double(try fixed(&iter, &budget, Double(0)))
        case DBUS_TYPE_STRING: return .string(try string(&iter, &budget))
        case DBUS_TYPE_OBJECT_PATH: return .objectPath(try string(&iter, &budget))
        case DBUS_TYPE_SIGNATURE: return .signature(try string(&iter, &budget))
        case DBUS_TYPE_VARIANT:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            try budget.spend(2 + currentSignature(&sub).utf8.count)
            return .variant(try read(&sub, &budget))
        case DBUS_TYPE_STRUCT:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            return .structure(try readAll(&sub, &budget))
        case DBUS_TYPE_ARRAY:
            return try readArray(&iter, &budget)
        case DBUS_TYPE_UNIX_FD:
            // Not supported; not reading it leaves the descriptor to be closed with the message.
            throw .notSupported("unix file descriptors are not supported")
        default:
            throw .invalidArgs("unsupported D-Bus type code \(type)")
        }
    }

    private static func readArray(_ iter: inout DBusMessageIter, _ budget: inout Budget) throws(DBusError) -> Value {
        try budget.spend(4)
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(&iter, &sub)
        if dbus_message_iter_get_element_type(&iter) == DBUS_TYPE_BYTE {
            // One copy of the bytes, and only once their count fits the budget.
            var pointer: UnsafePointer<UInt8>? = nil
            var count: Int32 = 0
            withUnsafeMutablePointer(to: &pointer) { dbus_message_iter_get_fixed_array(&sub, $0, &count) }
            try budget.spend(Int(count))
            return .bytes(pointer.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? [])
        }
        let element = String(currentSignature(&iter).dropFirst())  // "ay" → "y", "a{sv}" → "{sv}"
        if element.first == "{" {
            let inner = Array(element.dropFirst().dropLast())
            let key = String(inner.prefix(1))
            let value = String(inner.dropFirst())
            var entries: [Value.DictEntry] = []
            while dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_DICT_ENTRY {
                var pair = DBusMessageIter()
                dbus_message_iter_recurse(&sub, &pair)
                let k = try read(&pair, &budget)
                dbus_message_iter_next(&pair)
                let v = try read(&pair, &budget)
                entries.append(Value.DictEntry(key: k, value: v))
                dbus_message_iter_next(&sub)
            }
            return .dictionary(keySignature: key, valueSignature: value, entries)
        }
        return .array(elementSignature: element, try readAll(&sub, &budget))
    }
}
