// SPDX-License-Identifier: Apache-2.0
/// The lines of a key file in the format of systemd and NetworkManager: `[section]` headers,
/// `key=value` assignments, and `#` or `;` comment lines; surrounding whitespace is ignored.
/// There are no trailing comments: everything after `=` is the value.
struct KeyFileLine: Equatable {
    enum Content: Equatable {
        case section(String)
        case assignment(key: String, value: String)
        case malformed(String)
    }

    /// 1-based.
    var number: Int
    var content: Content

    /// The meaningful lines; blank and comment lines are skipped.
    static func parse(_ text: String) -> [KeyFileLine] {
        var body = Substring(text)
        if body.first == "\u{FEFF}" { body = body.dropFirst() }
        // `isNewline` also splits at "\r\n" (one Character) and lone "\r".
        let lines = body.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        var result: [KeyFileLine] = []
        for (index, raw) in lines.enumerated() {
            let line = trimmed(raw)
            guard let first = line.first, first != "#", first != ";" else { continue }
            let content: Content
            if first == "[" {
                if line.last == "]", line.count >= 2 {
                    content = .section(String(trimmed(line.dropFirst().dropLast())))
                } else {
                    content = .malformed(String(line))
                }
            } else if let equals = line.firstIndex(of: "=") {
                let key = trimmed(line[..<equals])
                content =
                    key.isEmpty
                    ? .malformed(String(line))
                    : .assignment(key: String(key), value: String(trimmed(line[line.index(after: equals)...])))
            } else {
                content = .malformed(String(line))
            }
            result.append(KeyFileLine(number: index + 1, content: content))
        }
        return result
    }

    static func malformedMessage(_ text: String) -> String {
        let shown = text.count > 60 ? text.prefix(60) + "…" : text[...]
        if text.first == "[" {
            return "malformed section header '\(shown)'; write it as [sync], [limits], [power] or [paths]"
        }
        if text.first == "=" {
            return "'\(shown)' has no key before '='"
        }
        return "expected 'key=value', a [section] header or a comment (# or ;), got '\(shown)'"
    }

    static func trimmed(_ text: Substring) -> Substring {
        guard let start = text.firstIndex(where: { !$0.isWhitespace }),
            let end = text.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return text[start...end]
    }
}
