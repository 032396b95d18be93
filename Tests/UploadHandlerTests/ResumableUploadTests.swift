// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import Foundation
import HandlerTestKit
import Testing

@testable import UploadHandler

/// The option `resumable` against the programmable server: which requests go out, in which
/// order, with which headers, and what is kept between events. (The faults with real servers,
/// tuspyserver and the draft's, are in Tests/integration/test_resumable_upload.py.)
@Suite final class ResumableUploadTests {
    let server: TestHTTPServer
    let outbox: TemporaryDirectory
    let state: TemporaryDirectory

    init() throws {
        server = try TestHTTPServer()
        outbox = try TemporaryDirectory()
        state = try TemporaryDirectory()
    }

    deinit {
        outbox.remove()
        state.remove()
    }

    func upload(_ extra: [String: Value] = ["resumable": "tus"], withState: Bool = true) -> HandlerResult {
        var options: [String: Value] = ["outbox": .string(outbox.path), "url": .string(server.url("/files"))]
        options.merge(extra) { $1 }
        var event = event(options)
        if withState { event.state = HandlerStateAccess(path: state.path + "/upload") }
        return UploadHandler().handle(event, log: .discard)
    }

    func records() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state.path + "/upload")) ?? []).sorted()
    }

    @Test func tusCreatesThenPatchesWithTheProtocolsHeadersAndForgetsTheUpload() throws {
        _ = try outbox.write("clip.mp4", "0123456789")
        try server.program(responses: [
            ["status": 201, "headers": ["Location": "/files/abc", "Tus-Resumable": "1.0.0"]],
            ["status": 204, "headers": ["Upload-Offset": "10", "Tus-Resumable": "1.0.0"]],
        ])
        #expect(upload() == .success("sent 1 file"))
        let received = try server.received()
        #expect(received.map { "\($0.method) \($0.path)" } == ["POST /files", "PATCH /files/abc"])
        #expect(received.allSatisfy { $0.headers["tus-resumable"] == "1.0.0" })
        #expect(received[0].headers["upload-length"] == "10")
        // filename clip.mp4, filetype application/octet-stream, base64.
        #expect(
            received[0].headers["upload-metadata"] == "filename Y2xpcC5tcDQ=,filetype YXBwbGljYXRpb24vb2N0ZXQtc3RyZWFt")
        #expect(received[1].headers["upload-offset"] == "0")
        #expect(received[1].headers["content-type"] == "application/offset+octet-stream")
        #expect(received[1].body == "0123456789")
        #expect(outbox.names().isEmpty)
        #expect(records().isEmpty, "nothing kept once the server has it all")
    }

    @Test func aCutUploadGoesOnFromTheServersOffsetAtTheNextEvent() throws {
        _ = try outbox.write("clip.mp4", "0123456789")
        try server.program(responses: [
            ["status": 201, "headers": ["Location": "/files/abc"]],
            ["drop": true],  // the PATCH is cut: no answer
            ["status": 200, "headers": ["Upload-Offset": "4"]],  // the HEAD right after: 4 arrived
        ])
        guard case .retry(nil, _, let advanced) = upload() else {
            Issue.record("a cut upload should be retried")
            return
        }
        #expect(advanced, "the server confirmed 4 bytes it had not before: the attempt is not spent")
        #expect(records().count == 1)
        #expect(outbox.names() == ["clip.mp4"])

        try server.program(responses: [
            ["status": 200, "headers": ["Upload-Offset": "4"]],
            ["status": 204, "headers": ["Upload-Offset": "10"]],
        ])
        #expect(upload() == .success("sent 1 file"))
        let second = try server.received().suffix(2)
        #expect(second.map { "\($0.method) \($0.path)" } == ["HEAD /files/abc", "PATCH /files/abc"])
        #expect(second.last?.headers["upload-offset"] == "4")
        #expect(second.last?.body == "456789", "only the rest, never byte 0 again")
        #expect(records().isEmpty)
    }

    @Test func anUploadTheServerFinishedBeforeItsAnswerWasLostIsNotSentAgain() throws {
        _ = try outbox.write("clip.mp4", "0123456789")
        try server.program(responses: [
            ["status": 201, "headers": ["Location": "/files/abc"]], ["drop": true],
            ["status": 200, "headers": ["Upload-Offset": "4"]],
        ])
        _ = upload()
        try server.program(responses: [["status": 200, "headers": ["Upload-Offset": "10"]]])
        #expect(upload() == .success("sent 1 file"))
        #expect(try server.received().last.map { "\($0.method) \($0.path)" } == "HEAD /files/abc")
        #expect(outbox.names().isEmpty)
        #expect(records().isEmpty)
    }

    @Test func anOffsetTheClientNeverSentStartsTheUploadOver() throws {
        _ = try outbox.write("clip.mp4", "0123456789")
        try server.program(responses: [
            ["status": 201, "headers": ["Location": "/files/abc"]], ["drop": true],
            ["status": 200, "headers": ["Upload-Offset": "2"]],
        ])
        _ = upload()
        try server.program(responses: [
            ["status": 200, "headers": ["Upload-Offset": "11"]],  // more than the file holds
            ["status": 201, "headers": ["Location": "/files/new"]],
            ["status": 204, "headers": ["Upload-Offset": "10"]],
        ])
        #expect(upload() == .success("sent 1 file"))
        let second = try server.received().suffix(3)
        #expect(second.map { "\($0.method) \($0.path)" } == ["HEAD /files/abc", "POST /files", "PATCH /files/new"])
        #expect(second.last?.body == "0123456789")
    }

    @Test func aFileReplacedSinceIsANewUploadFromByteZero() throws {
        _ = try outbox.write("clip.mp4", "0123456789")
        try server.program(responses: [
            ["status": 201, "headers": ["Location": "/files/abc"]], ["drop": true],
            ["status": 200, "headers": ["Upload-Offset": "4"]],
        ])
        _ = upload()
        _ = try outbox.write(".clip.part", "abcdefghij")
        try FileManager.default.moveItem(atPath: outbox.path + "/.clip.part", toPath: outbox.path + "/clip.mp4.new")
        try FileManager.default.removeItem(atPath: outbox.path + "/clip.mp4")
        try FileManager.default.moveItem(atPath: outbox.path + "/clip.mp4.new", toPath: outbox.path + "/clip.mp4")
        try server.program(responses: [
            ["status": 201, "headers": ["Location": "/files/new"]],
            ["status": 204, "headers": ["Upload-Offset": "10"]],
        ])
        #expect(upload() == .success("sent 1 file"))
        let second = try server.received().suffix(2)
        #expect(second.map { "\($0.method) \($0.path)" } == ["POST /files", "PATCH /files/new"])
        #expect(second.last?.body == "abcdefghij")
    }

    @Test func ietfSendsTheWholeBodyOnceWithTheDraftsHeaders() throws {
        _ = try outbox.write("clip.mp4", "0123456789")
        try server.program(responses: [["status": 201]])
        #expect(upload(["resumable": "ietf"]) == .success("sent 1 file"))
        let received = try server.received()
        #expect(received.map { "\($0.method) \($0.path)" } == ["POST /files"])
        #expect(received[0].headers["upload-complete"] == "?1")
        #expect(received[0].headers["upload-draft-interop-version"] == ResumableUpload.ietfInteropVersion)
        #expect(received[0].body == "0123456789")
    }

    @Test func badCombinationsFailWithoutSending() throws {
        _ = try outbox.write("clip.mp4", "0123456789")
        #expect(upload(["resumable": "rsync"]) == .failure("option 'resumable' must be 'tus' or 'ietf', not 'rsync'"))
        #expect(
            upload(["resumable": "tus", "method": "PUT"])
                == .failure("option 'method' cannot be used with 'resumable' (the protocol chooses the methods)"))
        guard case .failure(let message) = upload(withState: false) else {
            Issue.record("without a state directory a resumable upload cannot be kept")
            return
        }
        #expect(message.hasPrefix("cannot keep resumable uploads' state"))
        #expect(try server.received().isEmpty)
        #expect(outbox.names() == ["clip.mp4"])
    }

    @Test func whatAServerSaysIsCheckedBeforeItIsBelieved() {
        #expect(ResumableUpload.offset("12") == 12)
        #expect(ResumableUpload.offset(" 7 ") == 7)
        for bad in ["", "-1", "1e3", "0x10", "1234567890123456", "12 34", "+5"] {
            #expect(ResumableUpload.offset(bad) == nil, "Upload-Offset '\(bad)'")
        }
        let base = "http://127.0.0.1:8080/files"
        #expect(ResumableUpload.location("/files/abc", against: base) == "http://127.0.0.1:8080/files/abc")
        #expect(ResumableUpload.location("https://up.example.org/u/1", against: base) == "https://up.example.org/u/1")
        #expect(ResumableUpload.location("/files/a\r\nX-Evil: 1", against: base) == nil)
        #expect(ResumableUpload.location("ftp://example.org/x", against: base) == nil)
        #expect(ResumableUpload.location("", against: base) == nil)
        #expect(
            ["", "f", "fo", "foo", "foob", "fooba", "foobar"].map { ResumableUpload.base64(Array($0.utf8)) } == [
                "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
            ])
    }

    @Test func aRecordReadsBackAndAnyOtherTextIsNone() {
        let record = ResumeRecord(
            app: "org.example.Photos", tag: "photos",
            file: FileIdentity(device: 1, inode: 2, size: 3, modifiedSeconds: 4, modifiedNanoseconds: 5),
            resumable: .ietf,
            endpoint: "https://example.org/up", location: "https://example.org/up/1", sent: 3, confirmed: 1)
        #expect(ResumeRecord(text: record.text) == record)
        let text = record.text
        for cut in [0, 10, text.count / 2, text.count - 3] {
            #expect(ResumeRecord(text: String(text.prefix(cut))) == nil)
        }
        #expect(ResumeRecord(text: text.replacingOccurrences(of: "version=1", with: "version=2")) == nil)
        // A tag is the app's, and may hold a newline: it cannot write a line of the record.
        var hostile = record
        hostile.tag = "photos\nlocation=http://evil.example/\nconfirmed=999"
        #expect(!hostile.text.contains("evil"))
        #expect(ResumeRecord(text: hostile.text) == hostile)
    }
}
