// SPDX-License-Identifier: Apache-2.0
/// D-Bus type signatures, checked without libdbus (the same rules: at most 255 bytes, 32
/// nested arrays and 32 nested structures, dictionary entries only as array elements, with a
/// basic key type, no empty structures).
public enum TypeSignature {
    public static let basicTypes: Set<Character> = ["y", "b", "n", "q", "i", "u", "x", "t", "d", "s", "o", "g", "h"]
    public static let maximumLength = 255
    static let maximumArrayDepth = 32
    static let maximumStructDepth = 32

    /// Splits a signature into its complete types ("sa{sv}i" → ["s", "a{sv}", "i"]), or nil
    /// when it is not a well-formed signature.
    public static func completeTypes(_ signature: String) -> [String]? {
        guard signature.utf8.count <= maximumLength else { return nil }
        let chars = Array(signature)
        var index = 0
        var types: [String] = []
        while index < chars.count {
            guard let end = endOfCompleteType(chars, from: index, arrays: 0, structs: 0) else { return nil }
            types.append(String(chars[index..<end]))
            index = end
        }
        return types
    }

    /// True when `signature` is exactly one complete type.
    public static func isSingleCompleteType(_ signature: String) -> Bool {
        guard let types = completeTypes(signature) else { return false }
        return types.count == 1
    }

    /// True when `signature` is a (possibly empty) list of complete types.
    public static func isValid(_ signature: String) -> Bool {
        completeTypes(signature) != nil
    }

    /// The length of the single complete type at the start of `text`, or nil.
    static func prefixLength(of text: ArraySlice<Character>) -> Int? {
        let chars = Array(text.prefix(maximumLength))
        return endOfCompleteType(chars, from: 0, arrays: 0, structs: 0)
    }

    /// A D-Bus object path: "/", or "/" followed by non-empty elements of [A-Za-z0-9_] joined by
    /// single slashes, with no trailing slash.
    public static func isValidObjectPath(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return false }
        if bytes.count == 1 { return true }
        guard bytes.last != UInt8(ascii: "/") else { return false }
        var previousSlash = false
        for byte in bytes.dropFirst() {
            if byte == UInt8(ascii: "/") {
                if previousSlash { return false }
                previousSlash = true
                continue
            }
            previousSlash = false
            let ok =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_")
            guard ok else { return false }
        }
        return true
    }

    private static func endOfCompleteType(_ chars: [Character], from start: Int, arrays: Int, structs: Int) -> Int? {
        guard start < chars.count else { return nil }
        switch chars[start] {
        case let c where basicTypes.contains(c) || c == "v":
            return start + 1
        case "a":
            guard arrays < maximumArrayDepth else { return nil }
            if start + 1 < chars.count, chars[start + 1] == "{" {
                guard start + 2 < chars.count, basicTypes.contains(chars[start + 2]),
                    let valueEnd = endOfCompleteType(chars, from: start + 3, arrays: arrays + 1, structs: structs),
                    valueEnd < chars.count, chars[valueEnd] == "}"
                else { return nil }
                return valueEnd + 1
            }
            return endOfCompleteType(chars, from: start + 1, arrays: arrays + 1, structs: structs)
        case "(":
            guard structs < maximumStructDepth else { return nil }
            var index = start + 1
            while index < chars.count, chars[index] != ")" {
                guard let end = endOfCompleteType(chars, from: index, arrays: arrays, structs: structs + 1) else {
                    return nil
                }
                index = end
            }
            guard index < chars.count, index > start + 1 else { return nil }
            return index + 1
        default:
            return nil
        }
    }
}
