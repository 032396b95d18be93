// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import CBGSyncPlugin
import Foundation
import TestKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The host's file functions on real files, with openat2 and with the O_NOFOLLOW walk (what a
/// kernel before 5.6 gets): the same answers either way.
@Suite("Opening app-named paths beneath the root")
final class ConfinedFilesTests {
    let root: String
    let outside: String

    init() throws {
        root = try makeTemporaryDirectory(prefix: "bgsync-root")
        outside = try makeTemporaryDirectory(prefix: "bgsync-outside")
        try FileManager.default.createDirectory(atPath: root + "/dir/sub", withIntermediateDirectories: true)
        try Data("inside".utf8).write(to: URL(fileURLWithPath: root + "/dir/file"))
        try Data("SECRET".utf8).write(to: URL(fileURLWithPath: outside + "/key"))
        try FileManager.default.createSymbolicLink(atPath: root + "/link-dir", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(
            atPath: root + "/dir/link-file", withDestinationPath: outside + "/key")
        try FileManager.default.createSymbolicLink(
            atPath: root + "/dir/link-self", withDestinationPath: "/proc/self/root")
        #expect(mkfifo(root + "/dir/fifo", 0o600) == 0)
    }

    deinit {
        for path in [root, outside] { try? FileManager.default.removeItem(atPath: path) }
    }

    static let strategies: [Bool] = ConfinedFiles.kernelHasOpenat2 ? [true, false] : [false]

    /// The content read through `fd`, closing it; or the negated errno.
    func read(_ fd: Int32) -> String {
        guard fd >= 0 else { return "errno \(-fd)" }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        return String(decoding: buffer[..<max(0, count)], as: UTF8.self)
    }

    @Test("confined: inside opens; links, escapes and non-files are refused", arguments: strategies)
    func confined(openat2: Bool) {
        let files = ConfinedFiles(root: root, useOpenat2: openat2)
        #expect(read(files.open(path: root + "/dir/file", how: BGSYNC_OPEN_READ)) == "inside")
        #expect(read(files.open(path: root + "//dir/./file", how: BGSYNC_OPEN_READ)) == "errno \(EXDEV)")
        #expect(read(files.open(path: root + "/dir/../dir/file", how: BGSYNC_OPEN_READ)) == "errno \(EXDEV)")
        #expect(read(files.open(path: root + "/link-dir/key", how: BGSYNC_OPEN_READ)) == "errno \(ELOOP)")
        #expect(read(files.open(path: root + "/dir/link-file", how: BGSYNC_OPEN_READ)) == "errno \(ELOOP)")
        #expect(read(files.open(path: root + "/dir/link-self", how: BGSYNC_OPEN_READ)) == "errno \(ELOOP)")
        #expect(read(files.open(path: outside + "/key", how: BGSYNC_OPEN_READ)) == "errno \(EXDEV)")
        #expect(read(files.open(path: root + "/dir", how: BGSYNC_OPEN_READ)) == "errno \(EISDIR)")
        // A FIFO with no writer would block a plain open: refused at once instead.
        #expect(read(files.open(path: root + "/dir/fifo", how: BGSYNC_OPEN_READ)) == "errno \(EINVAL)")
        #expect(read(files.open(path: root + "/dir/file", how: BGSYNC_OPEN_DIRECTORY)) == "errno \(ENOTDIR)")
        #expect(read(files.open(path: root, how: BGSYNC_OPEN_PARENT)) == "errno \(EXDEV)")
        #expect(read(files.open(path: "dir/file", how: BGSYNC_OPEN_READ)) == "errno \(EINVAL)")
        #expect(
            read(files.open(path: root + "/dir/file", how: BGSYNC_OPEN_READ | BGSYNC_OPEN_CREATE)) == "errno \(EINVAL)")
        #expect(outsideUntouched())
    }

    @Test("confined: entries of an open directory, created, renamed without replacing, removed", arguments: strategies)
    func entries(openat2: Bool) throws {
        let files = ConfinedFiles(root: root, useOpenat2: openat2)
        let directory = files.open(path: root + "/dir/sub", how: BGSYNC_OPEN_DIRECTORY | BGSYNC_OPEN_CREATE)
        try #require(directory >= 0)
        defer { close(directory) }
        let created = files.openAt(
            directory, "new", how: BGSYNC_OPEN_WRITE | BGSYNC_OPEN_CREATE | BGSYNC_OPEN_EXCLUSIVE)
        #expect(created >= 0 && write(created, "x", 1) == 1)
        close(created)
        #expect(
            files.openAt(directory, "new", how: BGSYNC_OPEN_WRITE | BGSYNC_OPEN_CREATE | BGSYNC_OPEN_EXCLUSIVE)
                == -EEXIST)
        #expect(files.openAt(directory, "../file", how: BGSYNC_OPEN_READ) == -EINVAL)
        #expect(files.openAt(directory, "..", how: BGSYNC_OPEN_READ) == -EINVAL)
        #expect(files.rename(directory, "new", directory, "renamed", flags: 0) == 0)
        try Data("y".utf8).write(to: URL(fileURLWithPath: root + "/dir/sub/other"))
        #expect(files.rename(directory, "other", directory, "renamed", flags: BGSYNC_RENAME_NOREPLACE) == -EEXIST)
        #expect(read(files.openAt(directory, "renamed", how: BGSYNC_OPEN_READ)) == "x")
        #expect(files.unlink(directory, "renamed", flags: 0) == 0)
        #expect(files.unlink(directory, "renamed", flags: 0) == -ENOENT)
        // The directory was opened before it was swapped for a link: entries stay in it.
        try FileManager.default.moveItem(atPath: root + "/dir/sub", toPath: root + "/moved")
        try FileManager.default.createSymbolicLink(atPath: root + "/dir/sub", withDestinationPath: outside)
        #expect(files.unlink(directory, "other", flags: 0) == 0)
        #expect(files.openAt(directory, "key", how: BGSYNC_OPEN_READ) == -ENOENT)
        #expect(outsideUntouched())
    }

    @Test("unconfined: links are followed as open(2) follows them; magic links refused where openat2 exists")
    func unconfined() {
        let files = ConfinedFiles(root: nil)
        #expect(read(files.open(path: root + "/link-dir/key", how: BGSYNC_OPEN_READ)) == "SECRET")
        #expect(read(files.open(path: outside + "/key", how: BGSYNC_OPEN_READ)) == "SECRET")
        if ConfinedFiles.kernelHasOpenat2 {
            #expect(read(files.open(path: "/proc/self/fd/0", how: BGSYNC_OPEN_READ)) == "errno \(ELOOP)")
        }
    }

    func outsideUntouched() -> Bool {
        (try? FileManager.default.contentsOfDirectory(atPath: outside)) == ["key"]
            && FileManager.default.contents(atPath: outside + "/key") == Data("SECRET".utf8)
    }
}
