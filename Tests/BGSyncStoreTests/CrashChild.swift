import Foundation

/// The `store-crash-child` process, with its stdout read line by line.
final class CrashChild {
    let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private var buffer: [UInt8] = []
    private var ended = false

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
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = errors
        try process.run()
    }

    /// The next line, or nil once the child's stdout is closed. Waits at most `timeout` for data.
    func readLine(timeout: Duration = .seconds(10)) throws -> String? {
        let fd = output.fileHandleForReading.fileDescriptor
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if ended { return nil }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(timeout.components.seconds * 1000)
            let ready = poll(&poller, 1, milliseconds)
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { throw TimedOut(seconds: Int(timeout.components.seconds)) }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { ended = true } else { buffer.append(contentsOf: chunk[..<count]) }
        }
    }

    func kill() {
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var standardError: String {
        String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    struct TimedOut: Error, CustomStringConvertible {
        var seconds: Int
        var description: String { "store-crash-child printed nothing for \(seconds) s" }
    }
}
