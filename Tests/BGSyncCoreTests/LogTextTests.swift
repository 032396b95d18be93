import BGSyncCore
import Testing

/// What callers send reaches the log one line per message, whatever it contains.
struct LogTextTests {
    @Test func controlCharactersAreEscaped() {
        #expect(LogText.escaped("plain tag ✉") == "plain tag ✉")
        #expect(LogText.escaped("a\n<0>forged") == "a\\n<0>forged")
        #expect(LogText.escaped("\r\t\u{1b}[31m\u{7f}\u{85}\u{2028}") == "\\r\\t\\u{1b}[31m\\u{7f}\\u{85}\\u{2028}")
        #expect(LogText.escaped("C:\\dir\\n") == "C:\\\\dir\\\\n", "a backslash is doubled, so escapes are unambiguous")
        let allControls = LogText.escaped(String(decoding: (0..<32).map { UInt8($0) }, as: UTF8.self))
        let lines = allControls.split(whereSeparator: { $0.isNewline }).count
        #expect(lines == 1)
    }
}
