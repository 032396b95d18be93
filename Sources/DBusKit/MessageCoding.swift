import CDBus

/// Reading and writing message bodies. Everything is checked before it reaches libdbus, whose
/// own argument checks abort the process.
enum MessageCoding {
    /// Containers nested deeper than this are refused (the D-Bus limit is 32 arrays plus 32 structs).
    static let maximumDepth = 64

    // MARK: Writing

    static func append(_ values: [DBusValue], to message: OpaquePointer) throws(DBusError) {
        for value in values { try validate(value, depth: 0) }
        var iter = DBusMessageIter()
        dbus_message_iter_init_append(message, &iter)
        for value in values {
            guard append(value, to: &iter) else { throw .noMemory("out of memory while writing a D-Bus message") }
        }
    }

    /// Checks what libdbus would otherwise abort on: element types, strings, paths, signatures, depth.
    static func validate(_ value: DBusValue, depth: Int) throws(DBusError) {
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
            guard key.count == 1, DBusSignature.basicTypes.contains(key.first!), DBusSignature.isSingleCompleteType(sig) else {
                throw .invalidSignature("'\(sig)' is not a valid dictionary type")
            }
            for entry in entries {
                guard entry.key.signature == key, entry.value.signature == valueSig else {
                    throw .invalidArgs("dictionary '\(sig)' holds an entry of '{\(entry.key.signature)\(entry.value.signature)}'")
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

    private static func append(_ value: DBusValue, to iter: inout DBusMessageIter) -> Bool {
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
        case .array(let element, let items):
            if element == "y" {
                let bytes: [UInt8] = items.map { item -> UInt8 in
                    if case .byte(let b) = item { return b }
                    return 0
                }
                return appendContainer(&iter, DBUS_TYPE_ARRAY, element) { sub in
                    bytes.withUnsafeBufferPointer { buffer in
                        var base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
                        return withUnsafePointer(to: &base) {
                            dbus_message_iter_append_fixed_array(&sub, DBUS_TYPE_BYTE, $0, Int32(buffer.count)) != 0
                        }
                    }
                }
            }
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

    /// All arguments of `message`; a message with no arguments gives [].
    static func arguments(of message: OpaquePointer) throws(DBusError) -> [DBusValue] {
        var iter = DBusMessageIter()
        guard dbus_message_iter_init(message, &iter) != 0 else { return [] }
        return try readAll(&iter)
    }

    private static func readAll(_ iter: inout DBusMessageIter) throws(DBusError) -> [DBusValue] {
        var values: [DBusValue] = []
        while dbus_message_iter_get_arg_type(&iter) != DBUS_TYPE_INVALID {
            values.append(try read(&iter))
            dbus_message_iter_next(&iter)
        }
        return values
    }

    static func basic<T>(_ iter: inout DBusMessageIter, _ zero: T) -> T {
        var value = zero
        withUnsafeMutablePointer(to: &value) { dbus_message_iter_get_basic(&iter, $0) }
        return value
    }

    /// Strings are borrowed from the message: copy them out now.
    static func string(_ iter: inout DBusMessageIter) -> String {
        let pointer: UnsafePointer<CChar>? = basic(&iter, nil)
        guard let pointer else { return "" }
        return String(cString: pointer)  // libdbus has validated it as UTF-8
    }

    private static func currentSignature(_ iter: inout DBusMessageIter) -> String {
        guard let raw = dbus_message_iter_get_signature(&iter) else { return "" }
        defer { dbus_free(raw) }
        return String(cString: raw)
    }

    static func read(_ iter: inout DBusMessageIter) throws(DBusError) -> DBusValue {
        let type = dbus_message_iter_get_arg_type(&iter)
        switch type {
        case DBUS_TYPE_BYTE: return .byte(basic(&iter, UInt8(0)))
        case DBUS_TYPE_BOOLEAN: return .bool(basic(&iter, dbus_bool_t(0)) != 0)
        case DBUS_TYPE_INT16: return .int16(basic(&iter, Int16(0)))
        case DBUS_TYPE_UINT16: return .uint16(basic(&iter, UInt16(0)))
        case DBUS_TYPE_INT32: return .int32(basic(&iter, Int32(0)))
        case DBUS_TYPE_UINT32: return .uint32(basic(&iter, UInt32(0)))
        case DBUS_TYPE_INT64: return .int64(basic(&iter, Int64(0)))
        case DBUS_TYPE_UINT64: return .uint64(basic(&iter, UInt64(0)))
        case DBUS_TYPE_DOUBLE: return .double(basic(&iter, Double(0)))
        case DBUS_TYPE_STRING: return .string(string(&iter))
        case DBUS_TYPE_OBJECT_PATH: return .objectPath(string(&iter))
        case DBUS_TYPE_SIGNATURE: return .signature(string(&iter))
        case DBUS_TYPE_VARIANT:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            return .variant(try read(&sub))
        case DBUS_TYPE_STRUCT:
            var sub = DBusMessageIter()
            dbus_message_iter_recurse(&iter, &sub)
            return .structure(try readAll(&sub))
        case DBUS_TYPE_ARRAY:
            return try readArray(&iter)
        case DBUS_TYPE_UNIX_FD:
            // Not supported; not reading it leaves the descriptor to be closed with the message.
            throw .notSupported("unix file descriptors are not supported")
        default:
            throw .invalidArgs("unsupported D-Bus type code \(type)")
        }
    }

    private static func readArray(_ iter: inout DBusMessageIter) throws(DBusError) -> DBusValue {
        let signature = currentSignature(&iter)  // e.g. "ay", "a{sv}"
        let element = String(signature.dropFirst())
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(&iter, &sub)
        if dbus_message_iter_get_element_type(&iter) == DBUS_TYPE_BYTE {
            var pointer: UnsafePointer<UInt8>? = nil
            var count: Int32 = 0
            withUnsafeMutablePointer(to: &pointer) { dbus_message_iter_get_fixed_array(&sub, $0, &count) }
            let bytes = pointer.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? []
            return .array(elementSignature: "y", bytes.map { .byte($0) })
        }
        if element.first == "{" {
            let inner = Array(element.dropFirst().dropLast())
            let key = String(inner.prefix(1))
            let value = String(inner.dropFirst())
            var entries: [DBusDictEntry] = []
            while dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_DICT_ENTRY {
                var pair = DBusMessageIter()
                dbus_message_iter_recurse(&sub, &pair)
                let k = try read(&pair)
                dbus_message_iter_next(&pair)
                let v = try read(&pair)
                entries.append(DBusDictEntry(key: k, value: v))
                dbus_message_iter_next(&sub)
            }
            return .dictionary(keySignature: key, valueSignature: value, entries)
        }
        return .array(elementSignature: element, try readAll(&sub))
    }
}
