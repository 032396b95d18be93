// SPDX-License-Identifier: Apache-2.0
// Where the binaries are, a scratch directory, and the plugin directory with the no-op handler.
import Foundation

struct Setup {
    let binDirectory: String
    let rootDirectory: String
    let workDirectory: String
    let pluginDirectory: String
    /// `--only NAME[,NAME]`: run only these parts (register, network, send, cold, transfer, storm, idle, startup, fuzz, rss), e.g. to profile one.
    let only: Set<String>?

    func wants(_ part: String) -> Bool { only?.contains(part) ?? true }

    /// `--bin DIR` (default .build/release) and `--root DIR` (default the current directory).
    init(arguments: [String]) throws {
        var bin = ".build/release"
        var root = FileManager.default.currentDirectoryPath
        var only: Set<String>?
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--bin": bin = iterator.next() ?? bin
            case "--root": root = iterator.next() ?? root
            case "--only": only = Set((iterator.next() ?? "").split(separator: ",").map(String.init))
            default:
                throw BenchError(
                    "unknown argument \(argument); usage: BGSyncBench [--bin DIR] [--root DIR] [--only register,network,send,cold,transfer,storm,idle,startup,fuzz,rss]"
                )
            }
        }
        binDirectory = URL(fileURLWithPath: bin, relativeTo: URL(fileURLWithPath: root)).standardizedFileURL.path
        rootDirectory = root
        self.only = only
        for tool in ["bgsyncd", "bgsync-worker"]
        where !FileManager.default.isExecutableFile(atPath: binDirectory + "/" + tool) {
            throw BenchError("\(binDirectory)/\(tool) is missing: run `swift build -c release` first (make bench does)")
        }
        workDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("bgsync-bench-\(getpid())").path
        pluginDirectory = workDirectory + "/plugins"
        scratchDirectories.with { $0.append(workDirectory) }
        try FileManager.default.createDirectory(
            atPath: pluginDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755])
        let plugin = pluginDirectory + "/noop.so"
        let status = try run([
            "/usr/bin/cc", "-shared", "-fPIC", "-O2", "-I", root + "/Sources/CBGSyncPlugin/include",
            "-o", plugin, root + "/Tests/plugins/noop.c",
        ])
        guard status == 0 else { throw BenchError("cannot compile Tests/plugins/noop.c (cc exited with \(status))") }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: plugin)
    }

    func removeWorkDirectory() {
        try? FileManager.default.removeItem(atPath: workDirectory)
    }
}

/// Agent configuration for the benchmarks: defaults, apart from a short event cap.
let benchConfig = """
    [sync]
    event-timeout=30
    [limits]
    concurrent-events=4
    registrations-per-app=1000
    """
