/// Text bound for a log line. Whatever a caller sent (tags, app ids, handler details) and
/// whatever a handler wrote passes through `escaped` first, so no control character can end a
/// line early and forge the next one (in the journal, with a `<N>` priority of its choosing).
public enum LogText {
    /// `text` with C0 and C1 control characters, DEL and the Unicode line and paragraph
    /// separators written as `\n`, `\t`, `\r` or `\u{…}`, and `\` as `\\`, so an escape in the
    /// log always means an escaped character.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                out.append(scalar)
                continue
            }
            let escape: String =
                switch scalar {
                case "\n": "\\n"
                case "\t": "\\t"
                case "\r": "\\r"
                case "\\": "\\\\"
                default: "\\u{" + String(scalar.value, radix: 16) + "}"
                }
            out.append(contentsOf: escape.unicodeScalars)
        }
        return String(out)
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
            || scalar == "\\"
    }

}
