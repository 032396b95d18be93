// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import Foundation
import HandlerTestKit
import SettingsHandler
import Testing
import UploadHandler

/// What a sandboxed app tries after Register: swapping its outbox, a parent directory or its
/// settings file for a symbolic link to a file of the user's outside its data directory. The
/// handlers open through the worker's own file functions (ConfinedFiles) beneath the app's data
/// directory, with openat2 and with the O_NOFOLLOW walk used where the kernel lacks it; the
/// server is a real HTTP server on loopback.
@Suite final class SandboxedFileTests {
    static let secret = "SECRET-KEY-MATERIAL"
    let server: TestHTTPServer
    /// The app's data directory: the registration's root.
    let appData: TemporaryDirectory
    /// The user's files the app must not reach (~/.ssh, say).
    let outside: TemporaryDirectory

    init() throws {
        server = try TestHTTPServer()
        appData = try TemporaryDirectory()
        outside = try TemporaryDirectory()
        try outside.write("id_rsa", Self.secret)
    }

    deinit {
        appData.remove()
        outside.remove()
    }

    private func make(_ relative: String) throws -> String {
        let path = appData.path + "/" + relative
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Replaces `relative` in the app's data directory by a link to `target`, as the app would.
    private func swapForLink(_ relative: String, to target: String) throws {
        let path = appData.path + "/" + relative
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    /// Nothing of the outside reached the server, and the outside is as it was.
    private func expectOutsideUntouched(_ sourceLocation: SourceLocation = #_sourceLocation) throws {
        let received = try server.received()
        #expect(received.allSatisfy { !$0.body.contains(Self.secret) }, sourceLocation: sourceLocation)
        #expect(received.isEmpty, "requests: \(received.map(\.path))", sourceLocation: sourceLocation)
        #expect(outside.names() == ["id_rsa"], sourceLocation: sourceLocation)
        #expect(outside.read("id_rsa") == Self.secret, sourceLocation: sourceLocation)
    }

    private func upload(_ outbox: String, root: String?, openat2: Bool) -> HandlerResult {
        let options: [String: Value] = ["outbox": .string(outbox), "url": .string(server.url("/inbox"))]
        return UploadHandler().handle(event(options, root: root, useOpenat2: openat2), log: .discard)
    }

    private func settings(_ file: String, root: String?, openat2: Bool) -> HandlerResult {
        let options: [String: Value] = ["file": .string(file), "url": .string(server.url("/settings"))]
        return SettingsHandler().handle(event(options, root: root, useOpenat2: openat2), log: .discard)
    }

    private func expectLinkRefusal(_ result: HandlerResult, _ sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .failure(let detail) = result else {
            Issue.record("expected a failure, got \(result)", sourceLocation: sourceLocation)
            return
        }
        #expect(detail.contains("symbolic link"), "\(detail)", sourceLocation: sourceLocation)
    }

    @Test(arguments: [true, false]) func outboxSwappedForALinkSendsAndDeletesNothing(openat2: Bool) throws {
        let outbox = try make("outbox")
        try swapForLink("outbox", to: outside.path)
        expectLinkRefusal(upload(outbox, root: appData.path, openat2: openat2))
        try expectOutsideUntouched()
    }

    @Test(arguments: [true, false]) func parentSwappedForALinkSendsAndDeletesNothing(openat2: Bool) throws {
        let outbox = try make("data/outbox")
        try FileManager.default.createDirectory(atPath: outside.path + "/outbox", withIntermediateDirectories: false)
        try outside.write("outbox/id_rsa", Self.secret)
        try swapForLink("data", to: outside.path)
        expectLinkRefusal(upload(outbox, root: appData.path, openat2: openat2))
        #expect(try server.received().isEmpty)
        #expect(outside.read("outbox/id_rsa") == Self.secret)
    }

    @Test(arguments: [true, false]) func linkInsideTheOutboxIsSkipped(openat2: Bool) throws {
        let outbox = try make("outbox")
        try appData.write("outbox/message", "hello")
        try FileManager.default.createSymbolicLink(
            atPath: outbox + "/key", withDestinationPath: outside.path + "/id_rsa")
        #expect(upload(outbox, root: appData.path, openat2: openat2) == .success("sent 1 file"))
        #expect(try server.received().map(\.body) == ["hello"])
        #expect(outside.read("id_rsa") == Self.secret)
    }

    @Test func failedDirectorySwappedForALinkMovesNothingOut() throws {
        let outbox = try make("outbox")
        try appData.write("outbox/rejected", "body")
        try FileManager.default.createSymbolicLink(atPath: outbox + "/failed", withDestinationPath: outside.path)
        try server.program(responses: [["status": 400]])
        guard case .failure(let detail) = upload(outbox, root: appData.path, openat2: true) else {
            Issue.record("a failed/ link must fail the event")
            return
        }
        #expect(detail.contains("failed/") && detail.contains("symbolic link"), "\(detail)")
        #expect(outside.names() == ["id_rsa"])
        #expect(appData.read("outbox/rejected") == "body")
    }

    @Test func pathOutsideTheRootIsRefused() throws {
        guard case .failure(let detail) = upload(outside.path, root: appData.path, openat2: true) else {
            Issue.record("an outbox outside the root must fail")
            return
        }
        #expect(detail.contains("not inside the app's data directory"), "\(detail)")
        try expectOutsideUntouched()
    }

    /// A root recorded with links resolved (/home → /var/home on Fedora Silverblue) while the app
    /// names its paths through the link: the same directory, found by device and inode.
    @Test func rootReachedThroughALinkAboveIt() throws {
        let outbox = try make("outbox")
        try appData.write("outbox/message", "hello")
        let alias = outside.path + "/home-alias"
        try FileManager.default.createSymbolicLink(atPath: alias, withDestinationPath: appData.path)
        defer { try? FileManager.default.removeItem(atPath: alias) }
        #expect(upload(alias + "/outbox", root: appData.path, openat2: true) == .success("sent 1 file"))
        #expect(try server.received().map(\.body) == ["hello"])
        _ = outbox
    }

    @Test func unconfinedOutboxLinkStillWorks() throws {
        try FileManager.default.createDirectory(atPath: outside.path + "/real", withIntermediateDirectories: false)
        try outside.write("real/message", "hello")
        let link = appData.path + "/outbox"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: outside.path + "/real")
        #expect(upload(link, root: nil, openat2: true) == .success("sent 1 file"))
        #expect(try server.received().map(\.body) == ["hello"])
    }

    @Test(arguments: [true, false]) func settingsParentSwappedForALinkSendsAndWritesNothing(openat2: Bool) throws {
        let directory = try make("config")
        try appData.write("config/settings.json", "mine")
        try outside.write("settings.json", Self.secret)
        try swapForLink("config", to: outside.path)
        try server.program(resources: ["/settings": ["body": "theirs", "etag": "\"v1\""]])
        expectLinkRefusal(settings(directory + "/settings.json", root: appData.path, openat2: openat2))
        #expect(try server.received().isEmpty)
        #expect(outside.names() == ["id_rsa", "settings.json"])
        #expect(outside.read("settings.json") == Self.secret)
    }

    @Test(arguments: [true, false]) func settingsFileSwappedForALinkSendsNothing(openat2: Bool) throws {
        let directory = try make("config")
        try FileManager.default.createSymbolicLink(
            atPath: directory + "/settings.json", withDestinationPath: outside.path + "/id_rsa")
        expectLinkRefusal(settings(directory + "/settings.json", root: appData.path, openat2: openat2))
        try expectOutsideUntouched()
    }

    @Test func settingsConflictWritesBesideTheFileInsideTheRoot() throws {
        let directory = try make("config")
        try appData.write("config/settings.json", "mine")
        try server.program(resources: ["/settings": ["body": "theirs", "etag": "\"v1\""]])
        #expect(settings(directory + "/settings.json", root: appData.path, openat2: true) == .failure("conflict"))
        #expect(appData.read("config/settings.json.server") == "theirs")
        #expect(appData.read("config/settings.json.server.etag") == "\"v1\"\n")
    }

    @Test func unconfinedSettingsFileLinkIsFollowedAsBefore() throws {
        try outside.write("real.json", "mine")
        let link = appData.path + "/settings.json"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: outside.path + "/real.json")
        #expect(settings(link, root: nil, openat2: true) == .success("uploaded"))
        #expect(try server.received().map(\.body) == ["mine"])
    }
}
