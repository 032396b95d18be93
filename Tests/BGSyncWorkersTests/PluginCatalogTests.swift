// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWorkers
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Discovering handler plugins")
struct PluginCatalogTests {
    @Test(
        "usable plugins are found; wrong ABI, missing entry point, bad name and a crash on load are refused with reasons"
    )
    func discover() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let catalog = PluginCatalog.discover(
            directories: [plugins.directory], workerExecutable: worker, logger: TestEnvironment.logger)
        #expect(
            Set(catalog.handlers.keys) == [
                "ok", "retry", "fail", "segfault", "hang", "noop", "options", "init-fails", "growth1", "stoppable",
                // noisy prints while loading: the probe's report is not disturbed
                "progress", "bytes", "statedir", "noisy",
            ])
        #expect(
            catalog.handlers["ok"]
                == LoadedHandler(
                    info: HandlerInfo(name: "ok", description: "Always succeeds", sandboxSafe: true),
                    path: plugins.path("ok")))
        #expect(catalog.handlers["hang"]?.info.sandboxSafe == false)

        let reasons = Dictionary(uniqueKeysWithValues: catalog.refused.map { ($0.path, $0.reason) })
        #expect(reasons.count == 5)
        #expect(reasons[plugins.path("too-small")]?.contains("declares a bgsync_plugin of 16 bytes") == true)
        #expect(reasons[plugins.path("bad-name")]?.contains("The handler name 'bad name!' is not valid") == true)
        #expect(
            reasons[plugins.path("wrong-abi")]?.contains(
                "built for plugin ABI version 999, but this bgsync speaks version 1") == true)
        #expect(reasons[plugins.path("no-symbol")]?.contains("does not export 'bgsync_plugin_entry'") == true)
        #expect(reasons[plugins.path("load-crash")]?.contains("Loading it crashed") == true)
    }

    @Test("a plugin that hangs while loading is given up on after the probe timeout")
    func probeTimeout() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let start = Date()
        let catalog = PluginCatalog.discover(
            directories: [plugins.directory + "/isolated"], workerExecutable: worker, logger: TestEnvironment.logger,
            probeTimeout: 0.5)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(catalog.handlers.isEmpty)
        #expect(
            catalog.refused.map(\.reason) == [
                "Loading it did not finish within 0.5 s (a library constructor may hang); it was stopped."
            ])
    }

    @Test("files other users could write, non-files and duplicate names are refused; the first directory wins")
    func unsafeFilesAndDuplicates() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let first = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-first")
        let second = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-second")
        defer {
            try? FileManager.default.removeItem(atPath: first)
            try? FileManager.default.removeItem(atPath: second)
        }
        try FileManager.default.copyItem(atPath: plugins.path("ok"), toPath: first + "/ok.so")
        try FileManager.default.copyItem(atPath: plugins.path("ok"), toPath: second + "/ok-again.so")
        try FileManager.default.copyItem(atPath: plugins.path("noop"), toPath: second + "/group-writable.so")
        #expect(chmod(second + "/group-writable.so", 0o664) == 0)
        try FileManager.default.createDirectory(atPath: second + "/directory.so", withIntermediateDirectories: false)
        try Data("not a plugin".utf8).write(to: URL(fileURLWithPath: second + "/README"))

        let catalog = PluginCatalog.discover(
            directories: [first, "/nonexistent/bgsync", second], workerExecutable: worker,
            logger: TestEnvironment.logger)
        #expect(Set(catalog.handlers.keys) == ["ok"])
        #expect(catalog.handlers["ok"]?.path == first + "/ok.so")
        let reasons = Dictionary(uniqueKeysWithValues: catalog.refused.map { ($0.path, $0.reason) })
        #expect(reasons.count == 3)
        #expect(reasons[second + "/ok-again.so"]?.contains("already provided by \(first)/ok.so") == true)
        #expect(reasons[second + "/group-writable.so"]?.contains("writable by other users (mode 664)") == true)
        #expect(reasons[second + "/directory.so"]?.contains("not a regular file") == true)
    }

    // Giving a file to another user needs root; as an ordinary user this case cannot be set up.
    @Test(
        "a plugin owned by another user is refused",
        .enabled(if: geteuid() == 0, "needs root to chown a file to another user"))
    func foreignOwner() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let directory = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-owner")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: plugins.path("ok"), toPath: directory + "/ok.so")
        #expect(chown(directory + "/ok.so", 65534, 65534) == 0)
        let catalog = PluginCatalog.discover(
            directories: [directory], workerExecutable: worker, logger: TestEnvironment.logger)
        #expect(catalog.handlers.isEmpty)
        #expect(catalog.refused.first?.reason.contains("owned by user 65534") == true)
    }

    @Test("the example C plugin builds with its Makefile and the pkg-config template, and runs")
    func exampleBuildsAndRuns() throws {
        guard let (worker, _) = TestEnvironment.require() else { return }
        let root = TestEnvironment.repositoryRoot
        // Install the header and a .pc made from the template into a scratch prefix, as packaging would.
        let prefix = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-prefix")
        defer { try? FileManager.default.removeItem(atPath: prefix) }
        let files = FileManager.default
        try files.createDirectory(atPath: prefix + "/include/bgsync", withIntermediateDirectories: true)
        try files.createDirectory(atPath: prefix + "/lib/pkgconfig", withIntermediateDirectories: true)
        try files.createDirectory(atPath: prefix + "/src", withIntermediateDirectories: true)
        try files.copyItem(
            atPath: root + "/Sources/CBGSyncPlugin/include/bgsync-plugin.h",
            toPath: prefix + "/include/bgsync/bgsync-plugin.h")
        let template = try String(contentsOfFile: root + "/packaging/bgsync-plugin.pc.in", encoding: .utf8)
        let pc = template.replacingOccurrences(of: "@prefix@", with: prefix)
            .replacingOccurrences(of: "@libdir@", with: prefix + "/lib")
            .replacingOccurrences(of: "@version@", with: "0.0-test")
        try pc.write(toFile: prefix + "/lib/pkgconfig/bgsync-plugin.pc", atomically: true, encoding: .utf8)
        for name in ["example.c", "Makefile"] {
            try files.copyItem(atPath: root + "/Plugins/example-c/" + name, toPath: prefix + "/src/" + name)
        }
        try TestEnvironment.run(
            "/usr/bin/make", ["-s", "-C", prefix + "/src"], environment: ["PKG_CONFIG_PATH": prefix + "/lib/pkgconfig"])
        try TestEnvironment.run(
            "/usr/bin/make", ["-s", "-C", prefix + "/src", "install", "HANDLERDIR=" + prefix + "/handlers"])

        let catalog = PluginCatalog.discover(
            directories: [prefix + "/handlers"], workerExecutable: worker, logger: TestEnvironment.logger)
        #expect(
            catalog.handlers["example"]?.info
                == HandlerInfo(
                    name: "example", description: "Logs the event and echoes its 'message' option", sandboxSafe: true))
        guard catalog.handlers["example"] != nil else { return }

        let harness = PoolHarness(worker: worker, catalog: catalog, maxWorkers: 1)
        let outcomes = harness.run([
            makeEvent(id: 1, handler: "example", options: ["message": .string("hi")]),
            makeEvent(id: 2, handler: "example"),
        ])
        #expect(outcomes == [.success(detail: "said: hi"), .failure(detail: "option 'message' (a string) is missing")])
    }
}
