// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Log lines straight to the journal (sd_journal_sendv), used when stderr is the journal stream:
/// each entry has MESSAGE, PRIORITY and SYSLOG_IDENTIFIER, and a line about a registration
/// (metadata `app` and `tag`) has the fields BGSYNC_APP and BGSYNC_TAG, so that
/// `journalctl --user BGSYNC_APP=org.example.Chat` is that app's story. An entry the journal
/// refuses goes to stderr as the `<N>`-prefixed line it would have been before. See `isAvailable`.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    /// The journal's native socket, where sd_journal_sendv sends.
    static let socketPath = "/run/systemd/journal/socket"

    /// Whether to log through this handler: stderr is the journal stream (JOURNAL_STREAM) and the
    /// journal's native socket is there. Without the socket sd_journal_sendv drops entries and
    /// reports success (systemd's choice), so stderr, with `<N>` prefixes, is used instead.
    public static func isAvailable() -> Bool {
        guard JournalStream.isStderr() else { return false }
        var info = stat()
        return stat(socketPath, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = JournalFields.entry(
            identifier: label, level: event.level, message: "\(event.message)", metadata: all)
        if Self.send(fields) { return }
        let line = "<\(StderrLogHandler.priority(event.level))>\(JournalFields.messageText("\(event.message)", all))\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// One entry, each field `NAME=value` in an iovec of its own (values may hold any byte).
    private static func send(_ fields: [[UInt8]]) -> Bool {
        let bytes = fields.flatMap { $0 }
        return bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return false }
            var offset = 0
            var vectors: [iovec] = []
            for field in fields {
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: base + offset), iov_len: field.count))
                offset += field.count
            }
            return sd_journal_sendv(vectors, Int32(vectors.count)) >= 0
        }
    }
}

/// What one log line becomes in the journal, as a pure function (tested without a journal).
public enum JournalFields {
    /// Metadata keys that become fields of their own, and their field names.
    public static let fieldNames: [String: String] = ["app": "BGSYNC_APP", "tag": "BGSYNC_TAG"]

    /// The entry's fields: MESSAGE (escaped as the stderr lines are: one event, one line),
    /// PRIORITY, SYSLOG_IDENTIFIER, then BGSYNC_APP and BGSYNC_TAG with their values as they are
    /// (the native protocol carries any byte; a newline in a tag cannot start an entry).
    public static func entry(
        identifier: String, level: Logger.Level, message: String, metadata: Logger.Metadata
    ) -> [[UInt8]] {
        var fields = [
            "MESSAGE=\(messageText(message, metadata))", "PRIORITY=\(StderrLogHandler.priority(level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
        ].map { Array($0.utf8) }
        for key in fieldNames.keys.sorted() {
            guard let name = fieldNames[key], let value = metadata[key] else { continue }
            fields.append(Array("\(name)=".utf8) + Array("\(value)".utf8))
        }
        return fields
    }

    /// The message as one escaped line, with the metadata that has no field of its own after it.
    public static func messageText(_ message: String, _ metadata: Logger.Metadata) -> String {
        let rest = metadata.filter { fieldNames[$0.key] == nil }
        return JournalStream.escape(message + (rest.isEmpty ? "" : " \(rest)"))
    }
}
