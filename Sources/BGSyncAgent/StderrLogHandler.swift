// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import BGSyncWorkers
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Log lines on stderr: readable `bgsyncd[pid]: level: message` lines (a terminal, a file, a
/// pipe). When stderr is the journal the agent logs through JournalLogHandler instead; this one
/// then writes the `<N>` priority prefix journald reads (`journal`, kept for that case).
public struct StderrLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let journal: Bool

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
        journal = JournalStream.isStderr()
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // One event, one line: what callers sent (tags, details) cannot start a line of its own.
        // `app` and `tag` are fields in the journal (JournalLogHandler); the message names them.
        let text = JournalFields.messageText("\(event.message)", event.metadata ?? [:])
        let line =
            journal
            ? "<\(Self.priority(event.level))>\(text)\n"
            : "\(label)[\(getpid())]: \(event.level): \(text)\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
