// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Log lines on stderr, which is the agent's (inherited): in the agent's voice. Under systemd
/// (stderr is the journal) each line starts with a syslog `<N>` priority prefix, which journald
/// reads; elsewhere it reads `bgsync-worker[PID]: level: …`, as the agent's own lines do.
enum HostLog {
    /// Set once the plugin is known, to tag lines written outside an event. Read by the plugin
    /// output thread too (`PluginOutput`), hence the lock.
    static var handlerName: String {
        get { name.withLock { $0 } }
        set { name.withLock { $0 = newValue } }
    }
    private static let name = Mutex("")
    /// Where the worker's own lines go: the real stderr (the agent's, or the journal), kept
    /// aside by `PluginOutput`, whose pipe takes fd 2 for the plugin's output.
    nonisolated(unsafe) static var fd: Int32 = 2
    /// Decided once, on the real stderr (`PluginOutput.capture` asks before it takes fd 2).
    static let journal = JournalStream.isStderr()

    static func line(priority: Int32, prefix: String, _ message: String) {
        let level = min(max(priority, 0), 7)
        let start = journal ? "<\(level)>" : "bgsync-worker[\(getpid())]: \(JournalStream.levelName(priority: level)): "
        var text = ""
        // One prefixed line per line of the message, so that none loses its priority; the
        // prefix (it names the app's tag) and each line are escaped, so neither adds a line.
        let prefix = JournalStream.escape(prefix)
        for line in message.split(separator: "\n", omittingEmptySubsequences: false) {
            text += "\(start)\(prefix): \(JournalStream.escape(line))\n"
        }
        writeRaw(text)
    }

    static func writeRaw(_ text: String) {
        _ = FD.writeAll(fd, Array(text.utf8))
    }

    /// The prefix for lines about an event: handler, then app id and tag.
    static func prefix(app: String?, tag: String?) -> String {
        let handler = handlerName.isEmpty ? "bgsync-worker" : "handler \(handlerName)"
        guard let app, let tag else { return handler }
        return "\(handler): \(app)/\(tag)"
    }
}

/// Blocking I/O on file descriptors: the worker does one thing at a time.
enum FD {
    /// Writes all of `bytes`, retrying on EINTR. False when the peer is gone. Uses send() on
    /// sockets so that a closed peer is EPIPE, not a SIGPIPE.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { buffer -> Int in
                let sent = send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
                if sent < 0 && errno == ENOTSOCK { return write(fd, buffer.baseAddress, buffer.count) }
                return sent
            }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }

    /// Reads up to `count` bytes, retrying on EINTR: nil on end of file or error.
    static func readSome(_ fd: Int32, count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { return nil }
            return Array(buffer[..<got])
        }
    }
}
