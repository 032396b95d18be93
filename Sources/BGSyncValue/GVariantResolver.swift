// SPDX-License-Identifier: Apache-2.0
// Settling the types of parsed GVariant text, as g_variant_parse does: annotations first, then
// what the elements of a container agree on, then int32/double for bare numbers.

enum GVariantResolver {
    static func resolve(_ node: GVariantNode, expected: String?) throws(ValueError) -> Value {
        switch node {
        case .typed(let signature, let inner):
            guard TypeSignature.isSingleCompleteType(signature) else {
                throw ValueError(.type, "'\(signature)' is not a D-Bus type")
            }
            try check(expected, signature)
            return try resolve(inner, expected: signature)
        case .variant(let inner):
            try check(expected, "v")
            return .variant(try resolve(inner, expected: nil))
        case .boolean(let b):
            try check(expected, "b")
            return .bool(b)
        case .string(let s):
            guard !s.unicodeScalars.contains("\0") else {
                throw ValueError(.range, "strings cannot contain NUL characters")
            }
            switch expected ?? "s" {
            case "s": return .string(s)
            case "o":
                guard TypeSignature.isValidObjectPath(s) else {
                    throw ValueError(.range, "'\(s)' is not a valid object path")
                }
                return .objectPath(s)
            case "g":
                guard TypeSignature.isValid(s) else {
                    throw ValueError(.range, "'\(s)' is not a valid D-Bus signature")
                }
                return .signature(s)
            default: throw ValueError(.type, "a string where '\(expected!)' is expected")
            }
        case .bytes(let bytes):
            try check(expected, "ay")
            return .bytes(bytes)
        case .number(let text):
            return try number(text, as: expected ?? (looksFloating(text) ? "d" : "i"))
        case .array(let items):
            if let expected, expected.hasPrefix("a{") {
                guard items.isEmpty else {
                    throw ValueError(.type, "a list where the dictionary '\(expected)' is expected")
                }
                return try resolve(.dictionary([]), expected: expected)
            }
            if let expected, !expected.hasPrefix("a") {
                throw ValueError(.type, "an array where '\(expected)' is expected")
            }
            let element: String?
            if let expected { element = String(expected.dropFirst()) } else { element = try inferCommonType(items) }
            guard let element else {
                throw ValueError(.type, "cannot tell the type of an empty array; write it like @as []")
            }
            var values: [Value] = []
            values.reserveCapacity(items.count)
            for item in items { values.append(try resolve(item, expected: element)) }
            if element == "y" {
                return .bytes(values.map { if case .byte(let b) = $0 { b } else { 0 } })
            }
            return .array(elementSignature: element, values)
        case .dictionary(let entries):
            return try dictionary(entries, expected: expected)
        case .tuple(let items):
            guard !items.isEmpty else { throw ValueError(.type, "D-Bus has no empty tuples") }
            var fieldTypes: [String?] = Array(repeating: nil, count: items.count)
            if let expected {
                guard expected.hasPrefix("("),
                    let types = TypeSignature.completeTypes(String(expected.dropFirst().dropLast())),
                    types.count == items.count
                else { throw ValueError(.type, "a tuple of \(items.count) where '\(expected)' is expected") }
                fieldTypes = types
            }
            var fields: [Value] = []
            for (item, type) in zip(items, fieldTypes) { fields.append(try resolve(item, expected: type)) }
            return .structure(fields)
        }
    }

    private static func dictionary(
        _ entries: [(GVariantNode, GVariantNode)], expected: String?
    ) throws(ValueError) -> Value {
        var key: String?
        var value: String?
        if let expected {
            guard expected.hasPrefix("a{"),
                let types = TypeSignature.completeTypes(String(expected.dropFirst(2).dropLast())), types.count == 2
            else { throw ValueError(.type, "a dictionary where '\(expected)' is expected") }
            key = types[0]
            value = types[1]
        } else {
            key = try inferCommonType(entries.map(\.0))
            value = try inferCommonType(entries.map(\.1))
        }
        guard let key, let value else {
            throw ValueError(.type, "cannot tell the type of an empty dictionary; write it like @a{sv} {}")
        }
        guard key.count == 1, TypeSignature.basicTypes.contains(key.first!) else {
            throw ValueError(.type, "dictionary keys must be a basic type, not '\(key)'")
        }
        var result: [Value.DictEntry] = []
        result.reserveCapacity(entries.count)
        for (k, v) in entries {
            result.append(Value.DictEntry(key: try resolve(k, expected: key), value: try resolve(v, expected: value)))
        }
        return .dictionary(keySignature: key, valueSignature: value, result)
    }

    private static func check(_ expected: String?, _ actual: String) throws(ValueError) {
        if let expected, expected != actual {
            throw ValueError(.type, "a value of type '\(actual)' where '\(expected)' is expected")
        }
    }

    /// The type all `items` share: the first one whose type the text settles, else int32 or
    /// double for bare numbers (double when any of them is floating). Nil for no items.
    private static func inferCommonType(_ items: [GVariantNode]) throws(ValueError) -> String? {
        guard !items.isEmpty else { return nil }
        var firstError: ValueError?
        for item in items where !item.isBareNumber {
            do throws(ValueError) {
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
        if body.first == "-" || body.first == "+" {
            negative = body.first == "-"
            body = body.dropFirst()
        }
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

    private static func number(_ text: String, as type: String) throws(ValueError) -> Value {
        if type == "d" {
            if let (negative, magnitude) = integer(text) {
                return .double(negative ? -Double(magnitude) : Double(magnitude))
            }
            guard let value = Double(text) else { throw ValueError(.syntax, "'\(text)' is not a number") }
            return .double(value)
        }
        guard let (negative, magnitude) = integer(text) else {
            throw ValueError(.type, "'\(text)' is not an integer (type '\(type)')")
        }
        func fit<T: FixedWidthInteger>(_: T.Type) throws(ValueError) -> T {
            let value: T?
            if negative {
                value =
                    magnitude == 0
                    ? 0
                    : Int64(exactly: magnitude).flatMap { T(exactly: -$0) }
                        ?? (magnitude == UInt64(Int64.max) + 1 ? T(exactly: Int64.min) : nil)
            } else {
                value = T(exactly: magnitude)
            }
            guard let value else { throw ValueError(.range, "\(text) is out of range for \(T.self)") }
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
        default: throw ValueError(.type, "a number where '\(type)' is expected")
        }
    }
}
