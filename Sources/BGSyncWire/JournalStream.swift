// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Whether stderr goes to the journal. Then log lines start with a syslog `<N>` priority prefix
/// (journald reads it and stores the level); elsewhere (a terminal, a file, a pipe) they read
/// `NAME[PID]: level: message`. The agent and its workers (which inherit its stderr) ask this.
public enum JournalStream {
    /// systemd sets JOURNAL_STREAM to the device and inode of the journal stream it connected
    /// stderr to; it counts only if stderr is still that stream.
    public static func isStderr() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return value == "\(info.st_dev):\(info.st_ino)"
    }

    /// The swift-log level name the agent prints for a syslog priority (0...7).
    public static func levelName(priority: Int32) -> String {
        switch priority {
        case ...2: "critical"
        case 3: "error"
        case 4: "warning"
        case 5: "notice"
        case 6: "info"
        default: "debug"
        }
    }

    /// `text` with its control characters written out (`\n`, `\r`, `\xHH`; tabs stay), so that
    /// nothing in it (a caller's tag, a handler's detail) can end the line and start one of its
    /// own, with a `<N>` priority of its choosing in the journal.
    public static func escape<S: StringProtocol>(_ text: S) -> String {
        guard text.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else { return String(text) }
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: escaped += "\\n"
            case 0x0D: escaped += "\\r"
            case 0x09: escaped += "\t"
            case 0..<0x20, 0x7F:
                let hex = String(scalar.value, radix: 16)
                escaped += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
