// Settling the D-Bus types of parsed GVariant text: annotations first, then what the
// elements of a container agree on, then int32/double for bare numbers.

enum GVariantResolver {
    static func resolve(_ node: GVariantNode, expected: String?) throws(DBusError) -> DBusValue {
        if expected == "v" {
            if case .variant(let inner) = node { return .variant(try resolve(inner, expected: nil)) }
            if case .typed("v", let inner) = node { return try resolve(inner, expected: "v") }
            return .variant(try resolve(node, expected: nil))  // lenient: a bare value where a variant goes
        }
        switch node {
        case .typed(let signature, let inner):
            guard DBusSignature.isSingleCompleteType(signature) else {
                throw .invalidSignature("'\(signature)' is not a D-Bus type")
            }
            if let expected, expected != signature {
                throw .invalidArgs("a value of type '\(signature)' where '\(expected)' is expected")
            }
            return try resolve(inner, expected: signature)
        case .variant(let inner):
            try check(expected, "v")
            return .variant(try resolve(inner, expected: nil))
        case .boolean(let b):
            try check(expected, "b")
            return .bool(b)
        case .string(let s):
            try MessageCoding.validateString(s)
            switch expected ?? "s" {
            case "s": return .string(s)
            case "o":
                guard MessageCoding.isValidObjectPath(s) else { throw .invalidArgs("'\(s)' is not a valid object path") }
                return .objectPath(s)
            case "g":
                guard DBusSignature.isValid(s) else { throw .invalidSignature("'\(s)' is not a valid D-Bus signature") }
                return .signature(s)
            case "ay": return .array(elementSignature: "y", s.utf8.map { .byte($0) })
            default: throw .invalidArgs("a string where '\(expected!)' is expected")
            }
        case .bytes(let bytes):
            try check(expected, "ay")
            return .array(elementSignature: "y", bytes.map { .byte($0) })
        case .number(let text):
            return try number(text, as: expected ?? (looksFloating(text) ? "d" : "i"))
        case .array(let items):
            if let expected, expected.hasPrefix("a{") {
                guard items.isEmpty else { throw .invalidArgs("a list where the dictionary '\(expected)' is expected") }
                return try resolve(.dictionary([]), expected: expected)
            }
            if let expected, !expected.hasPrefix("a") { throw .invalidArgs("an array where '\(expected)' is expected") }
            let element: String?
            if let expected { element = String(expected.dropFirst()) } else { element = try inferCommonType(items) }
            guard let element else {
                throw .invalidArgs("cannot tell the type of an empty array; write it like @as []")
            }
            var values: [DBusValue] = []
            for item in items { values.append(try resolve(item, expected: element)) }
            return .array(elementSignature: element, values)
        case .dictionary(let entries):
            var key: String?, value: String?
            if let expected {
                guard expected.hasPrefix("a{"), let types = DBusSignature.completeTypes(String(expected.dropFirst(2).dropLast())),
                      types.count == 2 else { throw .invalidArgs("a dictionary where '\(expected)' is expected") }
                key = types[0]
                value = types[1]
            } else {
                key = try inferCommonType(entries.map(\.0))
                value = try inferCommonType(entries.map(\.1))
            }
            guard let key, let value else {
                throw .invalidArgs("cannot tell the type of an empty dictionary; write it like @a{sv} {}")
            }
            guard key.count == 1, DBusSignature.basicTypes.contains(key.first!) else {
                throw .invalidArgs("dictionary keys must be a basic type, not '\(key)'")
            }
            var result: [DBusDictEntry] = []
            for (k, v) in entries {
                result.append(DBusDictEntry(key: try resolve(k, expected: key), value: try resolve(v, expected: value)))
            }
            return .dictionary(keySignature: key, valueSignature: value, result)
        case .tuple(let items):
            guard !items.isEmpty else { throw .invalidArgs("D-Bus has no empty tuples") }
            var fieldTypes: [String?] = Array(repeating: nil, count: items.count)
            if let expected {
                guard expected.hasPrefix("("), let types = DBusSignature.completeTypes(String(expected.dropFirst().dropLast())),
                      types.count == items.count else { throw .invalidArgs("a tuple of \(items.count) where '\(expected)' is expected") }
                fieldTypes = types
            }
            var fields: [DBusValue] = []
            for (item, type) in zip(items, fieldTypes) { fields.append(try resolve(item, expected: type)) }
            return .structure(fields)
        }
    }

    private static func check(_ expected: String?, _ actual: String) throws(DBusError) {
        if let expected, expected != actual {
            throw .invalidArgs("a value of type '\(actual)' where '\(expected)' is expected")
        }
    }

    /// The type all `items` share: the first one whose type the text settles, else int32 or double
    /// for bare numbers. Nil for no items.
    private static func inferCommonType(_ items: [GVariantNode]) throws(DBusError) -> String? {
        guard !items.isEmpty else { return nil }
        var firstError: DBusError?
        for item in items where !item.isBareNumber {
            do throws(DBusError) {
                return try resolve(item, expected: nil).signature
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        let anyFloating = items.contains { if case .number(let t) = $0 { looksFloating(t) } else { false } }
        return anyFloating ? "d" : "i"
    }

    private static func looksFloating(_ text: String) -> Bool {
        let body = text.drop { $0 == "-" || $0 == "+" }
        if body.hasPrefix("0x") || body.hasPrefix("0X") { return false }
        return body.contains { $0 == "." || $0 == "e" || $0 == "E" } || body == "inf" || body == "nan"
    }

    private static func integer(_ text: String) -> (negative: Bool, magnitude: UInt64)? {
        var body = Substring(text)
        var negative = false
        if body.first == "-" || body.first == "+" { negative = body.first == "-"; body = body.dropFirst() }
        let magnitude: UInt64?
        if body.hasPrefix("0x") || body.hasPrefix("0X") {
            magnitude = UInt64(body.dropFirst(2), radix: 16)
        } else if body.count > 1, body.first == "0" {
            magnitude = UInt64(body.dropFirst(), radix: 8)
        } else {
            magnitude = UInt64(body, radix: 10)
        }
        return magnitude.map { (negative, $0) }
    }

    private static func number(_ text: String, as type: String) throws(DBusError) -> DBusValue {
        if type == "d" {
            if let (negative, magnitude) = integer(text) { return .double(negative ? -Double(magnitude) : Double(magnitude)) }
            guard let value = Double(text) else { throw .invalidArgs("'\(text)' is not a number") }
            return .double(value)
        }
        guard let (negative, magnitude) = integer(text) else {
            throw .invalidArgs("'\(text)' is not an integer (type '\(type)')")
        }
        func fit<T: FixedWidthInteger>(_: T.Type) throws(DBusError) -> T {
            let value: T?
            if negative {
                value = magnitude == 0 ? 0 : Int64(exactly: magnitude).flatMap { T(exactly: -$0) }
                    ?? (magnitude == UInt64(Int64.max) + 1 ? T(exactly: Int64.min) : nil)
            } else {
                value = T(exactly: magnitude)
            }
            guard let value else { throw .invalidArgs("\(text) is out of range for \(T.self)") }
            return value
        }
        switch type {
        case "y": return .byte(try fit(UInt8.self))
        case "n": return .int16(try fit(Int16.self))
        case "q": return .uint16(try fit(UInt16.self))
        case "i": return .int32(try fit(Int32.self))
        case "u": return .uint32(try fit(UInt32.self))
        case "x": return .int64(try fit(Int64.self))
        case "t": return .uint64(try fit(UInt64.self))
        default: throw .invalidArgs("a number where '\(type)' is expected")
        }
    }
}
