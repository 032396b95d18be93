// SPDX-License-Identifier: Apache-2.0
import Logging
import Synchronization

/// Keeps every log message a logger of its own was given ("level: message"), from any thread,
/// to check what a person reading the log would see. The one log recorder of the Swift tests.
public final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])

    public init() {}

    public var messages: [String] { lines.withLock { $0 } }
    public func contains(_ text: String) -> Bool { lines.withLock { $0.contains { $0.contains(text) } } }
    public func count(_ text: String) -> Int { lines.withLock { $0.filter { $0.contains(text) }.count } }

    /// A logger at debug level whose messages come here.
    public func logger(label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in RecordingHandler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }
}

private struct RecordingHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { recorder.append("\(event.level): \(event.message)") }
}
