#if canImport(Glibc)
import Glibc
#endif
import MainLoop

/// Tells when plugin files appear in, change in or leave the plugin directories (inotify), so
/// the agent can look again without a restart. Changes come in bursts (dpkg unpacks a file as
/// `NAME.dpkg-new`, renames it, sets its mode; a package brings several), so `onChange` runs
/// once, `settle` seconds after the last event of a burst. Directories that do not exist when
/// the watch starts are not watched (logged by the caller's discovery as unreadable).
public final class PluginDirectoryWatch {
    /// Called on the loop's thread after a burst of changes.
    public var onChange: (() -> Void)?
    /// The directories that are being watched.
    public private(set) var watched: [String] = []

    private let loop: MainLoop
    private let settle: Double
    private var fd: Int32 = -1
    private var watch: MainLoop.Watch?
    private var pending: MainLoop.Timer?

    private static let mask = UInt32(
        IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF
            | IN_MOVE_SELF)

    public init(loop: MainLoop, directories: [String], settle: Double = 0.25) {
        self.loop = loop
        self.settle = settle
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return }
        for directory in directories where inotify_add_watch(fd, directory, Self.mask) >= 0 {
            watched.append(directory)
        }
        watch = loop.addWatch(fd: fd, events: .readable) { [unowned self] _ in self.drain() }
    }

    deinit { stop() }

    public func stop() {
        if let watch { loop.removeWatch(watch) }
        if let pending { loop.cancelTimer(pending) }
        watch = nil
        pending = nil
        if fd >= 0 { close(fd) }
        fd = -1
    }

    /// Reads every queued event (the fd is non-blocking) and (re)arms the settle timer. The
    /// events' names are not looked at: a rescan is cheap next to guessing what dpkg did.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var any = false
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            any = true
        }
        guard any else { return }
        if let pending { loop.cancelTimer(pending) }
        pending = loop.addTimer(after: settle) { [unowned self] in
            self.pending = nil
            self.onChange?()
        }
    }
}
