// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import BGSyncHandlerKit
import BGSyncValue
import Foundation
import TestKit

/// A helper script of this directory (Tests/HandlerTestKit) run with /usr/bin/python3: its stdout
/// read line by line (with a timeout), its stdin closed to make it stop. Found through #filePath,
/// so the scripts stay in the source tree and are not copied into the build.
public final class ScriptProcess {
    private let child: ChildProcess

    public init(_ script: String, arguments: [String] = []) throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(script).path
        child = try ChildProcess(["/usr/bin/python3", path] + arguments, input: true, errors: .inherit)
    }

    deinit { stop() }

    /// The next line of stdout, waiting at most `timeout` seconds.
    public func readLine(timeout: Double = 10) throws -> String {
        guard let line = try child.readLine(timeout: timeout) else {
            throw TestFailure("python3 script ended before printing a line")
        }
        return line
    }

    /// SIGKILL, as when a worker is killed; reaps it.
    public func kill() { child.kill() }

    /// Closes stdin (the script's cue to clean up and exit); SIGKILL if it has not after 10 s.
    public func stop() {
        guard child.isRunning else { return }
        child.closeInput()
        if child.wait(seconds: 10) == nil { child.kill() }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Tests/HandlerTestKit/http_server.py on a loopback port.
public final class TestHTTPServer {
    private let script: ScriptProcess
    public let port: Int

    public init() throws {
        script = try ScriptProcess("http_server.py")
        guard let port = Int(try script.readLine()) else { throw TestFailure("http_server.py printed no port") }
        self.port = port
    }

    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Queues scripted responses and sets ETag resources (see http_server.py).
    public func program(responses: [[String: Any]] = [], resources: [String: [String: String]] = [:]) throws {
        let body = try JSONSerialization.data(withJSONObject: ["responses": responses, "resources": resources])
        let request = HTTPRequest(method: "POST", url: url("/_control/script"), body: .bytes(Array(body)), timeout: 5)
        guard case .success(let response) = HTTPClient.shared.send(request), response.status == 200 else {
            throw TestFailure("cannot program the test server")
        }
    }

    public struct Received {
        public var method: String
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var length: Int
        public var sha256: String
        /// The client's port: the same twice means one kept connection.
        public var peer: Int
    }

    /// What the server received, in order.
    public func received() throws -> [Received] {
        let request = HTTPRequest(url: url("/_control/requests"), response: .buffer(limit: 256 << 20), timeout: 5)
        guard case .success(let response) = HTTPClient.shared.send(request),
            let list = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]]
        else { throw TestFailure("cannot read the test server's requests") }
        return list.map {
            Received(
                method: $0["method"] as? String ?? "", path: $0["path"] as? String ?? "",
                headers: $0["headers"] as? [String: String] ?? [:], body: $0["body"] as? String ?? "",
                length: $0["length"] as? Int ?? -1, sha256: $0["sha256"] as? String ?? "",
                peer: $0["peer"] as? Int ?? -1)
        }
    }
}

/// A fresh directory, removed by `remove()`.
public struct TemporaryDirectory {
    public let path: String

    public init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("bgsync-handler-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `content` to `name`, last modified `age` seconds ago.
    @discardableResult
    public func write(_ name: String, _ content: String, age: Double = 10) throws -> String {
        let file = path + "/" + name
        try Data(content.utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -age)], ofItemAtPath: file)
        return file
    }

    /// Sets the modification time of `name`.
    public func touch(_ name: String, at date: Date) throws {
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: path + "/" + name)
    }

    public func read(_ name: String) -> String? {
        FileManager.default.contents(atPath: path + "/" + name).map { String(decoding: $0, as: UTF8.self) }
    }

    public func names(_ subdirectory: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/" + subdirectory)) ?? []).sorted()
    }
}

/// An event with `options`, whose files the worker's own code opens: beneath `root` when given
/// (a sandboxed app's event), as an unconfined app's otherwise. `control` stands for the agent's
/// stop and takes the progress reports.
public func event(
    _ options: [String: Value], seconds: Double = 10, attempt: UInt32 = 1, lastChance: Bool = false,
    root: String? = nil, useOpenat2: Bool = true, control: HandlerControl = HandlerControl()
) -> HandlerEvent {
    HandlerEvent(
        appID: "org.example.App", tag: "outbox", attempt: attempt, lastChance: lastChance,
        deadline: Date(timeIntervalSinceNow: seconds), options: HandlerOptions(options),
        files: FileHostEvent.files(options, root: root, useOpenat2: useOpenat2), control: control)
}

/// A flag set from one thread and read from another (the agent's stop, in handler tests).
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    public init() {}
    public var isSet: Bool { lock.withLock { value } }
    public func set() { lock.withLock { value = true } }
}
