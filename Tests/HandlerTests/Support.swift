// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import BGSyncHandlerKit
import BGSyncValue
import Foundation
import TestKit
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A helper script of this directory run with /usr/bin/python3: its stdout read line by
/// line (with a timeout), its stdin closed to make it stop.
final class ScriptProcess {
    private let child: ChildProcess

    init(_ script: String, arguments: [String] = []) throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(script).path
        child = try ChildProcess(["/usr/bin/python3", path] + arguments, input: true, errors: .inherit)
    }

    deinit { stop() }

    /// The next line of stdout, waiting at most `timeout` seconds.
    func readLine(timeout: Double = 10) throws -> String {
        guard let line = try child.readLine(timeout: timeout) else {
            throw TestFailure("python3 script ended before printing a line")
        }
        return line
    }

    func writeLine(_ line: String) { child.writeLine(line) }

    /// SIGKILL, as when a worker is killed; reaps it.
    func kill() { child.kill() }

    /// Closes stdin (the script's cue to clean up and exit); SIGKILL if it has not after 10 s.
    func stop() {
        guard child.isRunning else { return }
        child.closeInput()
        if child.wait(seconds: 10) == nil { child.kill() }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Tests/HandlerTests/http_server.py on a loopback port.
final class TestHTTPServer {
    private let script: ScriptProcess
    let port: Int

    init() throws {
        script = try ScriptProcess("http_server.py")
        guard let port = Int(try script.readLine()) else { throw TestFailure("http_server.py printed no port") }
        self.port = port
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Queues scripted responses and sets ETag resources (see http_server.py).
    func program(responses: [[String: Any]] = [], resources: [String: [String: String]] = [:]) throws {
        var request = URLRequest(url: URL(string: url("/_control/script"))!)
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: ["responses": responses, "resources": resources])
        guard case .success(let response) = BlockingHTTP.send(request, timeout: 5), response.status == 200 else {
            throw TestFailure("cannot program the test server")
        }
    }

    struct Received {
        var method: String
        var path: String
        var headers: [String: String]
        var body: String
    }

    /// What the server received, in order.
    func received() throws -> [Received] {
        let request = URLRequest(url: URL(string: url("/_control/requests"))!)
        guard case .success(let response) = BlockingHTTP.send(request, timeout: 5),
            let list = try JSONSerialization.jsonObject(with: response.body) as? [[String: Any]]
        else { throw TestFailure("cannot read the test server's requests") }
        return list.map {
            Received(
                method: $0["method"] as? String ?? "", path: $0["path"] as? String ?? "",
                headers: $0["headers"] as? [String: String] ?? [:], body: $0["body"] as? String ?? "")
        }
    }
}

/// A fresh directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("bgsync-handler-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `content` to `name`, last modified `age` seconds ago.
    @discardableResult
    func write(_ name: String, _ content: String, age: Double = 10) throws -> String {
        let file = path + "/" + name
        try Data(content.utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -age)], ofItemAtPath: file)
        return file
    }

    /// Sets the modification time of `name`.
    func touch(_ name: String, at date: Date) throws {
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: path + "/" + name)
    }

    func read(_ name: String) -> String? {
        FileManager.default.contents(atPath: path + "/" + name).map { String(decoding: $0, as: UTF8.self) }
    }

    func names(_ subdirectory: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path + "/" + subdirectory)) ?? []).sorted()
    }
}

/// Collects a handler's log lines.
final class LogLines {
    var lines: [(HandlerLog.Priority, String)] = []
    var log: HandlerLog { HandlerLog { [self] in lines.append(($0, $1)) } }
}

/// An event with `options`, whose files the worker's own code opens: beneath `root` when given
/// (a sandboxed app's event), as an unconfined app's otherwise. `control` stands for the agent's
/// stop and takes the progress reports.
func event(
    _ options: [String: Value], seconds: Double = 10, attempt: UInt32 = 1, lastChance: Bool = false,
    root: String? = nil, useOpenat2: Bool = true, control: HandlerControl = HandlerControl()
) -> HandlerEvent {
    HandlerEvent(
        appID: "org.example.App", tag: "outbox", attempt: attempt, lastChance: lastChance,
        deadline: Date(timeIntervalSinceNow: seconds), options: HandlerOptions(options),
        files: FileHostEvent.files(options, root: root, useOpenat2: useOpenat2), control: control)
}

/// A flag set from one thread and read from another (the agent's stop, in handler tests).
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
