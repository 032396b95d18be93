import CDBus

/// Small helpers over D-Bus type signatures.
enum DBusSignature {
    static let basicTypes: Set<Character> = ["y", "b", "n", "q", "i", "u", "x", "t", "d", "s", "o", "g", "h"]

    /// Splits a signature into its complete types ("sa{sv}i" → ["s", "a{sv}", "i"]),
    /// or nil when it is not a well-formed signature.
    static func completeTypes(_ signature: String) -> [String]? {
        let chars = Array(signature)
        var index = 0
        var types: [String] = []
        while index < chars.count {
            guard let end = endOfCompleteType(chars, from: index, depth: 0) else { return nil }
            types.append(String(chars[index..<end]))
            index = end
        }
        return types
    }

    /// True when `signature` is exactly one complete type that libdbus accepts.
    static func isSingleCompleteType(_ signature: String) -> Bool {
        guard !signature.isEmpty, signature.utf8.count <= 255 else { return false }
        return signature.withCString { dbus_signature_validate_single($0, nil) } != 0
    }

    /// True when libdbus accepts `signature` as a (possibly empty) list of complete types.
    static func isValid(_ signature: String) -> Bool {
        signature.utf8.count <= 255 && signature.withCString { dbus_signature_validate($0, nil) } != 0
    }

    private static func endOfCompleteType(_ chars: [Character], from start: Int, depth: Int) -> Int? {
        guard start < chars.count, depth < 64 else { return nil }
        switch chars[start] {
        case let c where basicTypes.contains(c) || c == "v":
            return start + 1
        case "a":
            if start + 1 < chars.count, chars[start + 1] == "{" {
                guard start + 2 < chars.count, basicTypes.contains(chars[start + 2]),
                      let valueEnd = endOfCompleteType(chars, from: start + 3, depth: depth + 1),
                      valueEnd < chars.count, chars[valueEnd] == "}" else { return nil }
                return valueEnd + 1
            }
            return endOfCompleteType(chars, from: start + 1, depth: depth + 1)
        case "(":
            var index = start + 1
            while index < chars.count, chars[index] != ")" {
                guard let end = endOfCompleteType(chars, from: index, depth: depth + 1) else { return nil }
                index = end
            }
            guard index < chars.count, index > start + 1 else { return nil }
            return index + 1
        default:
            return nil
        }
    }
}
