// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import Foundation
import TestKit
import Testing

/// GVariant text checked against GLib itself (python3-gi), both ways: GLib reads what
/// BGSyncValue prints and prints it back identically, and BGSyncValue reads what GLib prints
/// back to the same value.
@Suite("GVariant text against GLib")
struct GLibComparisonTests {
    struct Answer {
        var ok: Bool
        var type: String
        var text: String
    }

    /// Runs glib_variant.py over `(type, text)` requests. Needs /usr/bin/python3 with gi
    /// (Debian python3-gi, in scripts/install-deps check): a missing one fails the test.
    static func glib(_ requests: [(type: String, text: String)]) throws -> [Answer] {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let script = directory.appendingPathComponent("glib_variant.py")
        let python = ProcessInfo.processInfo.environment["BGSYNC_PYTHON"] ?? "/usr/bin/python3"
        // The script reads all of its input before it answers: writing first cannot deadlock.
        let child = try ChildProcess([python, script.path], input: true)
        for request in requests { child.writeLine(request.type + "\t" + request.text) }
        child.closeInput()
        let (data, errors) = child.readToEnd()
        let status = child.wait()
        #expect(
            status == 0, "glib_variant.py failed (is python3-gi installed?): \(String(decoding: errors, as: UTF8.self))"
        )
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        return lines.prefix(requests.count).map { line in
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard parts.first == "OK", parts.count == 3 else {
                return Answer(ok: false, type: "", text: parts.dropFirst().joined())
            }
            return Answer(ok: true, type: parts[1], text: parts[2])
        }
    }

    static func generated(count: Int) -> [Value] {
        var generator = ValueGenerator(seed: 0x5EED_B65C)
        return (0..<count).map { _ in
            let type = generator.type(depth: 0)
            return generator.value(of: type)
        }
    }

    @Test("GLib reads what we print, prints it the same, and we read GLib's text back")
    func generatedValuesRoundTripThroughGLib() throws {
        let values = Self.generated(count: 600)
        let typed = try Self.glib(values.map { ($0.signature, $0.gvariantText) })
        let untyped = try Self.glib(values.map { ("", $0.gvariantText) })
        #expect(typed.count == values.count && untyped.count == values.count)
        var mismatches = 0
        for (index, value) in values.enumerated() where index < typed.count && index < untyped.count {
            let ours = value.gvariantText
            let answer = typed[index]
            let fine =
                answer.ok && answer.text == ours && untyped[index].ok && untyped[index].type == value.signature
                && (try? Value.parse(gvariantText: answer.text, as: value.signature)) == value
                && (try? Value.parse(gvariantText: answer.text)) == value
            if !fine {
                mismatches += 1
                if mismatches <= 5 {
                    let glib = answer.ok ? answer.text : "error " + answer.text
                    Issue.record("\(value.signature): we print \(ours); GLib: \(glib)")
                }
            }
        }
        #expect(mismatches == 0)
        // The generator covers what it should.
        let signatures = Set(values.map(\.signature))
        #expect(signatures.contains { $0.hasPrefix("a{") } && signatures.contains { $0.hasPrefix("(") })
        #expect(values.contains { $0.gvariantText.contains("@a") })
        #expect(values.contains { $0.gvariantText.contains("b'") })
    }

    /// Texts as people write them (not as a printer would): both parsers agree on the value,
    /// seen through GLib's canonical print of it.
    static let handWritten = [
        "5", "-0", "+5", "010", "0x1F", "1e3", "-5.0e-3", ".5", "inf", "-inf", "[1, 2.5]", "[int64 1, 2]",
        "[[], [1]]", "[[], ['a']]", "{1: 'a', 2: 'b'}", "{'a': <1>, 'b': <[true]>}", "[<1>, <'a'>]", "(1,)",
        "b'abc'", "b''", "b\"it's\"", "b'\\101\\n\\x'", "[byte 0x01, 0x02]", "'a\\x41'", "'\\u00e9\\U0001F600'",
        "\"it's\"", "'tab\\t'", "objectpath '/a/b'", "signature 'a{sv}'", "<@as []>", "@a{sv} {}", "uint32 4294967295",
        "int64 -9223372036854775808", "  [ 'spaced' ,'out' ]  ", "true", "(byte 0x01, int16 -2, <(1, 'x')>)",
        "4.9406564584124654e-324",
    ]

    @Test func handWrittenTextParsesAsInGLib() throws {
        let answers = try Self.glib(Self.handWritten.map { ("", $0) })
        #expect(answers.count == Self.handWritten.count)
        for (text, answer) in zip(Self.handWritten, answers) {
            guard text != "4.9406564584124654e-324" else {
                #expect(!answer.ok)  // GLib's own quirk (see ValueGenerator); we read it
                #expect(try Value.parse(gvariantText: text) == .double(.leastNonzeroMagnitude))
                continue
            }
            #expect(answer.ok, "GLib refused \(text): \(answer.text)")
            let ours = try Value.parse(gvariantText: text)
            #expect(ours.signature == answer.type, "\(text)")
            #expect(ours.gvariantText == answer.text, "\(text)")
        }
    }

    @Test(arguments: [("'abc'", "ay"), ("'a'", "y"), ("1", "v"), ("[1, 'a']", ""), ("[]", ""), ("uint32 -1", "")])
    func bothRefuse(text: String, type: String) throws {
        let answer = try #require(try Self.glib([(type, text)]).first)
        #expect(!answer.ok)
        #expect(throws: ValueError.self) {
            _ = type.isEmpty ? try Value.parse(gvariantText: text) : try Value.parse(gvariantText: text, as: type)
        }
    }
}
