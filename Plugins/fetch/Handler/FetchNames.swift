// SPDX-License-Identifier: Apache-2.0

/// The names downloaded files get in the app's directory. A name comes from the app (`names`),
/// the server (Content-Disposition) or the URL: the last two are hostile input, and none of the
/// three is bent into shape. A name that is not usable as it stands is refused with the reason,
/// since a guessed name could overwrite a file the app keeps under it.
public enum FetchNames {
    /// Bytes a name may have at most (NAME_MAX, less room for the temporary name's additions).
    public static let maxLength = 200

    /// Why `name` cannot be a file name in the download directory, or nil when it can.
    public static func problem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "it is empty" }
        if bytes.count > maxLength { return "it is longer than \(maxLength) bytes" }
        if bytes.contains(UInt8(ascii: "/")) || bytes.contains(UInt8(ascii: "\\")) {
            return "it holds a path separator"
        }
        if bytes.first == UInt8(ascii: ".") { return "it starts with a dot (hidden, or . or ..)" }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "it holds a control character" }
        if name.unicodeScalars.contains(where: { (0x80...0x9F).contains($0.value) || $0.value == 0xFFFD }) {
            return "it holds a control character or bytes that are not UTF-8"
        }
        return nil
    }

    /// The last path segment of `url` (query and fragment left out), percent-decoded; nil when
    /// the path ends in `/` or is empty.
    public static func lastSegment(of url: String) -> String? {
        var rest = Substring(url)
        if let scheme = rest.firstRange(of: "://") { rest = rest[scheme.upperBound...] }
        if let end = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let path = rest[slash...]
        guard let last = path.split(separator: "/", omittingEmptySubsequences: false).last, !last.isEmpty else {
            return nil
        }
        return percentDecoded(last)
    }

    /// The filename of a Content-Disposition header (RFC 6266): `filename*` (RFC 8187,
    /// UTF-8 only) before `filename`; nil when it names none.
    public static func contentDispositionName(_ header: String) -> String? {
        var plain: String?
        var extended: String?
        for (key, value) in parameters(header) {
            switch key {
            case "filename*":
                // charset'language'percent-encoded; only UTF-8 (the one charset RFC 8187 requires).
                let parts = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                if parts.count == 3, parts[0].lowercased() == "utf-8" { extended = percentDecoded(parts[2]) }
            case "filename":
                plain = value
            default:
                continue
            }
        }
        return extended ?? plain
    }

    /// `; key=value` parameters after the disposition type, keys lower-cased, quoted strings
    /// unescaped.
    static func parameters(_ header: String) -> [(String, String)] {
        var result: [(String, String)] = []
        let scalars = Array(header.unicodeScalars)
        var index = 0
        // Skip the disposition type.
        while index < scalars.count, scalars[index] != ";" { index += 1 }
        while index < scalars.count {
            index += 1  // the ';'
            while index < scalars.count, scalars[index] == " " || scalars[index] == "\t" { index += 1 }
            var key = ""
            while index < scalars.count, scalars[index] != "=", scalars[index] != ";" {
                key.unicodeScalars.append(scalars[index])
                index += 1
            }
            guard index < scalars.count, scalars[index] == "=" else { continue }
            index += 1
            var value = ""
            if index < scalars.count, scalars[index] == "\"" {
                index += 1
                while index < scalars.count, scalars[index] != "\"" {
                    if scalars[index] == "\\", index + 1 < scalars.count { index += 1 }
                    value.unicodeScalars.append(scalars[index])
                    index += 1
                }
                while index < scalars.count, scalars[index] != ";" { index += 1 }
            } else {
                while index < scalars.count, scalars[index] != ";" {
                    value.unicodeScalars.append(scalars[index])
                    index += 1
                }
                value = value.trimmingSpaces
            }
            result.append((key.trimmingSpaces.lowercased(), value))
        }
        return result
    }

    /// `%XX` sequences as bytes, the whole read as UTF-8 (invalid sequences become U+FFFD, which
    /// `problem` refuses).
    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        let source = Array(text.utf8)
        var index = 0
        while index < source.count {
            if source[index] == UInt8(ascii: "%"), index + 2 < source.count,
                let high = hexValue(source[index + 1]), let low = hexValue(source[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(source[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Text for a message: control characters and non-ASCII escaped, at most 80 characters.
    static func shown(_ name: String) -> String {
        var out = ""
        for scalar in name.unicodeScalars.prefix(80) {
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value) {
                out += "\\x" + String(scalar.value, radix: 16)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return name.unicodeScalars.count > 80 ? out + "…" : out
    }
}

extension String {
    var trimmingSpaces: String {
        let scalars = Array(unicodeScalars)
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        var out = ""
        out.unicodeScalars.append(contentsOf: scalars[first...last])
        return out
    }
}
