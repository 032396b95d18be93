// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import Testing

@Suite("Log lines kept to one line")
struct JournalStreamTests {
    @Test(
        "control characters are written out; text and tabs stay",
        arguments: [
            ("plain text", "plain text"),
            ("x\n<0>forged", "x\\n<0>forged"),
            ("cr\rlf", "cr\\rlf"),
            ("tab\there", "tab\there"),
            ("bell\u{07}del\u{7F}", "bell\\x07del\\x7f"),
            ("ünïcode ✓", "ünïcode ✓"),
        ])
    func escape(input: String, expected: String) {
        #expect(JournalStream.escape(input) == expected)
    }
}
