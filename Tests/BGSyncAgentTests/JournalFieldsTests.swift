// SPDX-License-Identifier: Apache-2.0
import BGSyncAgent
import Logging
import Testing

/// What a log line becomes in the journal (sd_journal_sendv's fields), without a journal: this
/// host has none; the booted Debian system test reads the real one back.
@Suite struct JournalFieldsTests {
    static func text(_ fields: [[UInt8]]) -> [String] { fields.map { String(decoding: $0, as: UTF8.self) } }

    @Test func aLineAboutARegistrationCarriesTheAppAndTheTag() {
        let fields = JournalFields.entry(
            identifier: "bgsyncd", level: .info, message: "org.example.Chat/outbox: succeeded",
            metadata: ["app": "org.example.Chat", "tag": "outbox"])
        #expect(
            Self.text(fields) == [
                "MESSAGE=org.example.Chat/outbox: succeeded", "PRIORITY=6", "SYSLOG_IDENTIFIER=bgsyncd",
                "BGSYNC_APP=org.example.Chat", "BGSYNC_TAG=outbox",
            ])
    }

    @Test func aLineAboutNothingInParticularHasNoAppField() {
        let fields = Self.text(
            JournalFields.entry(identifier: "bgsyncd", level: .warning, message: "handlers: none", metadata: [:]))
        #expect(fields == ["MESSAGE=handlers: none", "PRIORITY=4", "SYSLOG_IDENTIFIER=bgsyncd"])
    }

    @Test func aHostileTagStaysOneEntryItsMessageEscapedItsFieldExact() {
        let tag = "x\n<3>MESSAGE=forged\u{1}"
        let fields = JournalFields.entry(
            identifier: "bgsyncd", level: .info, message: "org.example.Chat/\(tag): succeeded",
            metadata: ["app": "org.example.Chat", "tag": .string(tag)])
        let text = Self.text(fields)
        #expect(text[0] == #"MESSAGE=org.example.Chat/x\n<3>MESSAGE=forged\x01: succeeded"#)
        #expect(!text[0].contains("\n"), "the message is one line")
        // sd_journal_sendv sends a field with a newline in the binary-safe form: the value is
        // stored as it is, and no line of it can become a field or an entry of its own.
        #expect(fields.last == Array("BGSYNC_TAG=".utf8) + Array(tag.utf8))
        #expect(fields.count == 5)
    }

    @Test func otherMetadataStaysInTheMessage() {
        let fields = Self.text(
            JournalFields.entry(
                identifier: "bgsyncd", level: .debug, message: "hello", metadata: ["app": "a.b", "worker": "12"]))
        #expect(fields[0] == #"MESSAGE=hello ["worker": 12]"#)
        #expect(fields[1] == "PRIORITY=7")
        #expect(fields.contains("BGSYNC_APP=a.b") && !fields.contains { $0.hasPrefix("BGSYNC_TAG=") })
    }
}
