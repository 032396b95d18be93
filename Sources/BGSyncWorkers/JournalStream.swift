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
}
