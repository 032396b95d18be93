// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import Foundation
import HandlerTestKit
import Testing

@testable import SettingsHandler

@Suite struct SettingsHandlerTests {
    let server: TestHTTPServer
    let directory: TemporaryDirectory
    var file: String { directory.path + "/settings.json" }

    init() throws {
        server = try TestHTTPServer()
        directory = try TemporaryDirectory()
    }

    func sync() -> HandlerResult {
        SettingsHandler().handle(
            event(["file": .string(file), "url": .string(server.url("/settings"))]), log: .discard)
    }

    @Test func firstUploadCreatesThenLaterOnesCarryIfMatch() throws {
        defer { directory.remove() }
        try directory.write("settings.json", "{\"theme\":\"dark\"}")
        #expect(sync() == .success("uploaded"))
        #expect(directory.read("settings.json.etag") == "\"v1\"\n")

        try directory.write("settings.json", "{\"theme\":\"light\"}")
        #expect(sync() == .success("uploaded"))
        #expect(directory.read("settings.json.etag") == "\"v2\"\n")

        let received = try server.received()
        #expect(received.map(\.method) == ["PUT", "PUT"])
        #expect(received[0].headers["if-none-match"] == "*")
        #expect(received[0].headers["if-match"] == nil)
        #expect(received[1].headers["if-match"] == "\"v1\"")
        #expect(received[1].body == "{\"theme\":\"light\"}")
    }

    @Test func conflictKeepsBothCopiesAndFails() throws {
        defer { directory.remove() }
        try server.program(resources: ["/settings": ["body": "theirs", "etag": "\"s9\""]])
        try directory.write("settings.json", "mine")
        try directory.write("settings.json.etag", "\"v1\"\n")

        #expect(sync() == .failure("conflict"))
        #expect(directory.read("settings.json") == "mine")
        #expect(directory.read("settings.json.server") == "theirs")
        #expect(directory.read("settings.json.server.etag") == "\"s9\"\n")
        #expect(directory.read("settings.json.etag") == "\"v1\"\n")

        // Until the app resolves it, nothing more is sent.
        #expect(sync().detail.hasPrefix("conflict"))
        let received = try server.received()
        #expect(received.map(\.method) == ["PUT", "GET"])
        #expect(received[0].headers["if-match"] == "\"v1\"")
    }

    @Test func firstUploadOverAnExistingServerCopyIsAConflict() throws {
        defer { directory.remove() }
        try server.program(resources: ["/settings": ["body": "theirs", "etag": "\"s1\""]])
        try directory.write("settings.json", "mine")
        #expect(sync() == .failure("conflict"))
        #expect(directory.read("settings.json.server") == "theirs")
    }

    @Test func serverErrorRetries() throws {
        defer { directory.remove() }
        try server.program(responses: [["status": 503, "headers": ["Retry-After": "30"]]])
        try directory.write("settings.json", "mine")
        #expect(sync() == .retry(after: 30, "HTTP 503"))
        #expect(directory.read("settings.json.etag") == nil)
    }

    /// A companion file larger than the limit (planted in the app's directory) gives only the
    /// limit's bytes, from its start. (What is read beyond is not measured here: the read loop
    /// stops at the limit by construction.)
    @Test func aCompanionFileIsReadOnlyUpToTheLimit() throws {
        defer { directory.remove() }
        let big = (0..<100_000).map { Character(UnicodeScalar(UInt8(0x41 + $0 % 26))) }
        _ = try directory.write("settings.json.etag", String(big))
        let (parent, name) = try event(["file": .string(file)]).files.openParent(option: "file")
        let files = SettingsFiles(directory: parent, name: name, path: file)
        let head = try files.read("settings.json.etag")
        #expect(head.count == 8192)
        #expect(head == Array(String(big).utf8.prefix(8192)))
        #expect(try files.read("settings.json.etag", limit: 100_001).count == 100_000)
        #expect(try files.read("settings.json.etag", limit: 0) == [])
    }

    @Test func missingFileFails() throws {
        defer { directory.remove() }
        guard case .failure(let detail) = sync() else {
            Issue.record("a missing settings file must fail")
            return
        }
        #expect(detail.contains(file))
    }
}
