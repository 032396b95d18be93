// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import Testing

/// Random text from GVariant's own tokens: the parser never crashes, what it reads prints as text
/// that reads back the same, and it accepts nothing GLib refuses.
@Suite struct ParserFuzzTests {
    static let tokens = [
        "[", "]", "(", ")", "{", "}", "<", ">", ",", ":", " ", "@", "a", "s", "v", "i", "y", "{sv}", "'x'", "\"y\"",
        "'", "\\", "\\u00e9", "\\U0001F600", "b'", "b'a\\101'", "1", "-", "0x", "ff", "1.5", "e", "+", "inf", "nan",
        "true", "false", "uint32 ", "byte ", "int64 ", "objectpath ", "signature ", "'/a'", "'(ii)'", "@as ", "@a{sv} ",
        "007", "99999999999999999999", "\u{0}", "é",
    ]

    @Test func randomTextNeverCrashesAndReadsOnlyWhatGLibReads() throws {
        var generator = ValueGenerator(seed: 0xF022)
        var accepted: [String] = []
        for _ in 0..<20_000 {
            let text = (0..<(1 + generator.below(8))).map { _ in generator.pick(Self.tokens) }.joined()
            guard let value = try? Value.parse(gvariantText: text) else { continue }
            #expect(try Value.parse(gvariantText: value.gvariantText) == value || !value.isFinite, "\(text)")
            accepted.append(text)
        }
        #expect(accepted.count > 500, "the fuzzer reaches values, not only errors")
        let answers = try GLibComparisonTests.glib(accepted.map { ("", $0) })
        let refusedByGLib = zip(accepted, answers).filter { !$0.1.ok }.map(\.0)
        #expect(refusedByGLib.isEmpty, "accepted, but GLib refuses: \(refusedByGLib.prefix(10))")
    }
}
