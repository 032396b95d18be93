// SPDX-License-Identifier: Apache-2.0
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

/// Tells when plugin files appear in, change in or leave the plugin directories (inotify), so
/// the agent can look again without a restart. Changes come in bursts (dpkg unpacks a file as
/// `NAME.dpkg-new`, renames it, sets its mode; a package brings several), so `onChange` runs
/// once, `settle` seconds after the last event of a burst. A directory that does not exist yet
/// (a user's own plugin directory, usually) is waited for: its nearest existing ancestor is
/// watched for the creation of the next component only, so other files there wake no one. The
/// owner makes a new watch after each change, which then watches the directory itself.
public final class PluginDirectoryWatch {
    /// Called on the loop's thread after a burst of changes.
    public var onChange: (() -> Void)?
    /// The directories that exist and are being watched.
    public private(set) var watched: [String] = []

    private let loop: MainLoop
    private let settle: Double
    private var fd: Int32 = -1
    private var watch: MainLoop.Watch?
    private var pending: MainLoop.Timer?
    /// Watches on ancestors of missing directories: the names whose creation matters, by descriptor.
    private var awaited: [Int32: Set<String>] = [:]
    /// Watches on the plugin directories themselves: every event there matters.
    private var descriptors: Set<Int32> = []

    private static let mask = UInt32(
        IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF
            | IN_MOVE_SELF)
    private static let creation = UInt32(IN_CREATE | IN_MOVED_TO)

    public init(loop: MainLoop, directories: [String], settle: Double = 0.25) {
        self.loop = loop
        self.settle = settle
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return }
        // IN_MASK_ADD: a directory can be both a plugin directory and an ancestor of another.
        for directory in directories {
            let descriptor = inotify_add_watch(fd, directory, Self.mask | UInt32(IN_MASK_ADD))
            if descriptor >= 0 {
                watched.append(directory)
                descriptors.insert(descriptor)
            } else if errno == ENOENT {
                awaitCreation(of: directory)
            }
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

    /// Watches the nearest existing ancestor of `directory` for its next path component.
    private func awaitCreation(of directory: String) {
        var path = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        while let slash = path.lastIndex(of: "/") {
            let parent = slash == path.startIndex ? "/" : String(path[..<slash])
            let name = String(path[path.index(after: slash)...])
            let descriptor = inotify_add_watch(fd, parent, Self.creation | UInt32(IN_MASK_ADD))
            if descriptor >= 0 {
                awaited[descriptor, default: []].insert(name)
                return
            }
            guard errno == ENOENT, parent != "/" else { return }
            path = parent
        }
    }

    /// Reads every queued event (the fd is non-blocking) and (re)arms the settle timer when one
    /// concerns a plugin directory or the creation of one.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var relevant = false
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            let events = buffer.withUnsafeBytes { containsRelevantEvent(UnsafeRawBufferPointer(rebasing: $0[..<got])) }
            relevant = relevant || events
        }
        guard relevant else { return }
        if let pending { loop.cancelTimer(pending) }
        pending = loop.addTimer(after: settle) { [unowned self] in
            self.pending = nil
            let onChange = self.onChange
            onChange?()  // last: it may stop and release this watch (the owner makes a new one)
        }
    }

    /// Walks the `struct inotify_event` records the kernel wrote (each followed by `len` bytes
    /// of NUL-padded name).
    private func containsRelevantEvent(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let header = MemoryLayout<inotify_event>.size
        var offset = 0
        var relevant = false
        while offset + header <= bytes.count {
            let descriptor = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameBytes = bytes[(offset + header)..<min(offset + header + length, bytes.count)].prefix { $0 != 0 }
            if !descriptors.contains(descriptor), let names = awaited[descriptor] {
                relevant = relevant || names.contains(String(decoding: nameBytes, as: UTF8.self))
            } else {
                relevant = true  // an event in a plugin directory (or the queue overflowed: look again)
            }
            offset += header + length
        }
        return relevant
    }
}
