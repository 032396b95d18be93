#if canImport(Glibc)
import Glibc
#endif
import BGSyncCore
import Logging

/// Log lines on stderr: with a syslog `<N>` priority prefix when stderr goes to the journal
/// (journald then stores the right level), readable `bgsyncd[pid]: level: message` lines otherwise.
public struct StderrLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let journal: Bool

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
        journal = StderrLogHandler.stderrIsJournal()
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // Messages carry what callers sent (tags, app ids, handler details, worker lines): every
        // control character is escaped here, so that none can end a line and forge the next
        // one (with a `<N>` priority of its choosing) in the journal.
        let text = LogText.escaped("\(event.message)" + (event.metadata.map { $0.isEmpty ? "" : " \($0)" } ?? ""))
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

    /// systemd sets JOURNAL_STREAM to the device and inode of the journal stream it connected
    /// stderr to; it counts only if stderr is still that stream.
    private static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return value == "\(info.st_dev):\(info.st_ino)"
    }
}
