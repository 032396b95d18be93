// SPDX-License-Identifier: Apache-2.0
import Foundation
import TestKit

/// The `store-crash-child` process, with its stdout read line by line.
final class CrashChild {
    private let child: ChildProcess

    /// The binary SwiftPM builds next to the test bundle (`swift build --build-tests`).
    static var binary: String? {
        if let path = ProcessInfo.processInfo.environment["BGSYNC_STORE_CRASH_CHILD"] { return path }
        var bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // Linux: debug/bgsyncPackageTests.xctest is the executable; elsewhere a bundle directory.
        while bundle.pathComponents.count > 1 {
            bundle.deleteLastPathComponent()
            let candidate = bundle.appendingPathComponent("store-crash-child").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            if bundle.lastPathComponent == ".build" { break }
        }
        return nil
    }

    init(binary: String, arguments: [String]) throws {
        child = try ChildProcess([binary] + arguments)
    }

    /// The next line, or nil once the child's stdout is closed. Waits at most `timeout` for data.
    func readLine(timeout: Double = 10) throws -> String? { try child.readLine(timeout: timeout) }

    /// SIGKILL and reap; the exit code is 128 + 9 if the kill ended it.
    func kill() { child.kill() }

    /// Whether SIGKILL (and not an exit of its own) ended the child.
    var wasKilled: Bool { child.wait() == 128 + SIGKILL }

    var standardError: String {
        String(decoding: child.readToEnd(idle: 5).stderr, as: UTF8.self)
    }
}
