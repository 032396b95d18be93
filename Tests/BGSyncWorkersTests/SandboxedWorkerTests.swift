// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import BGSyncWorkers
import Foundation
import TestKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The shipped upload and settings plugins in a real bgsync-worker, handed an event whose
/// event is a sandboxed app's (root = a temporary "app data" directory), against the real
/// loopback HTTP server of the handler tests. The app swaps its outbox, or its settings file's
/// directory, for a symbolic link to the user's files after Register.
@Suite("Sandboxed events through a real worker", .serialized)
final class SandboxedWorkerTests {
    static let secret = "SECRET-KEY-MATERIAL"
    let appData: String
    let outside: String
    let server: LoopbackServer

    init() throws {
        appData = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-appdata")
        outside = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-outside")
        try Data(Self.secret.utf8).write(to: URL(fileURLWithPath: outside + "/id_rsa"))
        server = try LoopbackServer()
    }

    deinit {
        for path in [appData, outside] { try? FileManager.default.removeItem(atPath: path) }
    }

    /// The built handler plugin `name` (libbgsync-handler-NAME.so beside bgsync-worker).
    func run(_ handler: String, options: [String: Value], confinement: Confinement) -> HandlerOutcome? {
        guard let (worker, _) = TestEnvironment.require() else { return nil }
        let library = URL(fileURLWithPath: worker).deletingLastPathComponent().path + "/libbgsync-handler-\(handler).so"
        var catalog = PluginCatalog()
        catalog.handlers[handler] = LoadedHandler(
            info: HandlerInfo(name: handler, description: handler, sandboxSafe: true), path: library)
        let harness = PoolHarness(worker: worker, catalog: catalog, maxWorkers: 1)
        var event = makeEvent(handler: handler, options: options)
        event.confinement = confinement
        return harness.run(event)
    }

    var sandbox: Confinement { .sandboxed(kind: .flatpak, appID: "org.example.Chat", root: appData) }

    func write(_ path: String, _ text: String, age: Double = 10) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -age)], ofItemAtPath: path)
    }

    func outsideIsUntouched() -> Bool {
        (try? FileManager.default.contentsOfDirectory(atPath: outside)) == ["id_rsa"]
            && FileManager.default.contents(atPath: outside + "/id_rsa") == Data(Self.secret.utf8)
    }

    @Test("upload: an outbox swapped for a link sends nothing, deletes nothing, and fails saying why")
    func uploadOutboxSwap() throws {
        let outbox = appData + "/outbox"
        try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: false)
        try write(outbox + "/message", "hello")
        let options: [String: Value] = ["outbox": .string(outbox), "url": .string(server.url("/inbox"))]
        // First as the app registered it: the message goes out (the server and plugin work).
        let first = run("upload", options: options, confinement: sandbox)
        #expect(first?.kind == .success(detail: "sent 1 file"))
        #expect(first?.bytesSent == 5)  // the 5 bytes of the one file, counted with the outcome
        #expect(try server.bodies() == ["hello"])

        try FileManager.default.removeItem(atPath: outbox)
        try FileManager.default.createSymbolicLink(atPath: outbox, withDestinationPath: outside)
        let outcome = run("upload", options: options, confinement: sandbox)
        guard case .failure(let detail) = outcome?.kind else {
            Issue.record("expected a failure, got \(String(describing: outcome))")
            return
        }
        #expect(detail.contains("symbolic link"), "\(detail)")
        #expect(try server.bodies() == ["hello"])
        #expect(outsideIsUntouched())
    }

    @Test("upload: the same link for an unconfined app is followed, as before")
    func uploadUnconfinedLink() throws {
        try FileManager.default.createDirectory(atPath: outside + "/real", withIntermediateDirectories: false)
        try write(outside + "/real/message", "hello")
        try FileManager.default.createSymbolicLink(atPath: appData + "/outbox", withDestinationPath: outside + "/real")
        let options: [String: Value] = [
            "outbox": .string(appData + "/outbox"), "url": .string(server.url("/inbox")),
        ]
        #expect(run("upload", options: options, confinement: .unconfined)?.kind == .success(detail: "sent 1 file"))
        #expect(try server.bodies() == ["hello"])
    }

    @Test("settings: a parent directory swapped for a link sends and writes nothing")
    func settingsParentSwap() throws {
        try FileManager.default.createDirectory(atPath: appData + "/config", withIntermediateDirectories: false)
        try write(outside + "/settings.json", Self.secret)
        try FileManager.default.removeItem(atPath: appData + "/config")
        try FileManager.default.createSymbolicLink(atPath: appData + "/config", withDestinationPath: outside)
        let options: [String: Value] = [
            "file": .string(appData + "/config/settings.json"), "url": .string(server.url("/settings")),
        ]
        let outcome = run("settings", options: options, confinement: sandbox)
        guard case .failure(let detail) = outcome?.kind else {
            Issue.record("expected a failure, got \(String(describing: outcome))")
            return
        }
        #expect(detail.contains("symbolic link"), "\(detail)")
        #expect(try server.bodies().isEmpty)
        #expect(
            (try? FileManager.default.contentsOfDirectory(atPath: outside))?.sorted() == ["id_rsa", "settings.json"])
    }
}

/// Tests/HandlerTestKit/http_server.py on a loopback port, in its own process (TestKit's).
final class LoopbackServer {
    private let child: TestKit.ChildProcess
    let port: Int

    init() throws {
        child = try TestKit.ChildProcess(
            ["/usr/bin/python3", TestEnvironment.repositoryRoot + "/Tests/HandlerTestKit/http_server.py"], input: true,
            errors: .inherit)
        guard let line = try child.readLine(timeout: 10), let port = Int(line) else {
            throw TestSetupError("http_server.py printed no port")
        }
        self.port = port
    }

    deinit {
        child.closeInput()  // its cue to exit
        if child.wait(seconds: 10) == nil { child.kill() }
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// The bodies of the requests received so far, in order.
    func bodies() throws -> [String] {
        let json = try TestEnvironment.run(
            "/usr/bin/python3",
            [
                "-c",
                "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())",
                url("/_control/requests"),
            ])
        let list = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
        return list.map { $0["body"] as? String ?? "" }
    }
}
