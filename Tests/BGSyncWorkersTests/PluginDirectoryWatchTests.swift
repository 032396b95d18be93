// SPDX-License-Identifier: Apache-2.0
import BGSyncWorkers
import Foundation
import MainLoop
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Plugin directories watched with inotify")
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
}

@Suite("A plugin directory that does not exist yet")
struct MissingPluginDirectoryTests {
    @Test("its creation is a change; other files beside it are not")
    func creationIsAChange() throws {
        let base = NSTemporaryDirectory() + "bgsync-watch-missing-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let loop = MainLoop()
        let plugins = base + "/share/bgsync/plugins"
        let watch = PluginDirectoryWatch(loop: loop, directories: [plugins], settle: 0.05)
        #expect(watch.watched.isEmpty)
        var changes = 0
        watch.onChange = { changes += 1 }
        try Data().write(to: URL(fileURLWithPath: base + "/unrelated"))
        let quiet = Date().addingTimeInterval(0.3)
        while Date() < quiet { _ = loop.iterate(timeout: 0.05) }
        #expect(changes == 0)
        try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
        let deadline = Date().addingTimeInterval(5)
        while changes == 0 && Date() < deadline { _ = loop.iterate(timeout: 0.1) }
        #expect(changes == 1)
        watch.stop()
        #expect(PluginDirectoryWatch(loop: loop, directories: [plugins]).watched == [plugins])
    }
}
