#if canImport(Glibc)
import Glibc
#endif
import BGSyncWorkers
import Foundation
import MainLoop
import Testing

@Suite("Plugin directories watched with inotify, and log lines kept to one line")
struct PluginDirectoryWatchTests {
    /// Iterates `loop` until `done()` or `timeout` seconds (a bounded wait on the loop's own events).
    private func iterate(_ loop: MainLoop, timeout: Double, until done: () -> Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while !done() && Date() < deadline { _ = loop.iterate(timeout: 0.1) }
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "bgsync-watch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    @Test("a burst of changes (write, rename in, remove) is one onChange, after it settles")
    func burstIsOneChange() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let loop = MainLoop()
        let watch = PluginDirectoryWatch(loop: loop, directories: [directory, directory + "/missing"], settle: 0.2)
        #expect(watch.watched == [directory])
        var changes = 0
        watch.onChange = { changes += 1 }
        // As dpkg installs a plugin: a temporary name, then a rename.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: directory + "/a.so.dpkg-new"))
        #expect(rename(directory + "/a.so.dpkg-new", directory + "/a.so") == 0)
        iterate(loop, timeout: 5) { changes > 0 }
        #expect(changes == 1)
        #expect(unlink(directory + "/a.so") == 0)
        iterate(loop, timeout: 5) { changes > 1 }
        #expect(changes == 2)
        watch.stop()
    }

    @Test("nothing happens, nothing is reported")
    func quietIsQuiet() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let loop = MainLoop()
        let watch = PluginDirectoryWatch(loop: loop, directories: [directory], settle: 0.05)
        var changes = 0
        watch.onChange = { changes += 1 }
        iterate(loop, timeout: 0.5) { false }
        #expect(changes == 0)
    }

    @Test("control characters are written out; text and tabs stay", arguments: [
        ("plain text", "plain text"),
        ("x\n<0>forged", "x\\n<0>forged"),
        ("cr\rlf", "cr\\rlf"),
        ("tab\there", "tab\there"),
        ("bell\u{07}del\u{7F}", "bell\\x07del\\x7f"),
        ("ünïcode ✓", "ünïcode ✓"),
    ])
    func escape(input: String, expected: String) {
        #expect(JournalStream.escape(input) == expected)
    }
}
