// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import Foundation
import HandlerTestKit
import SettingsHandler
import Testing

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

    @Test func missingFileFails() throws {
        defer { directory.remove() }
        guard case .failure(let detail) = sync() else {
            Issue.record("a missing settings file must fail")
            return
        }
        #expect(detail.contains(file))
    }
}
