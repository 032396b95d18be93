// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWire
import BGSyncWorkers
import CBGSyncPlugin
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The ABI's growth rule with real worker processes: a plugin built against the frozen header of
/// the first form (Tests/plugins/abi-v1) loads and runs in this host, whose structs have grown;
/// a growth-1 plugin gets its plugin data back, its deinit at exit, and its declarations probed.
@Suite("Plugin ABI growth through a real worker")
struct ABIGrowthTests {
    @Test("a plugin built against the first-form header loads and runs after fields were added")
    func firstFormPluginRuns() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let catalog = PluginCatalog.discover(
            directories: [plugins.directory + "/abi-v1"], workerExecutable: worker, logger: TestEnvironment.logger)
        let handler = try #require(catalog.handlers["v1-echo"], "refused: \(catalog.refused)")
        #expect(handler.info.pathOptions.isEmpty && handler.info.urlOptions.isEmpty && handler.info.sandboxSafe)

        let harness = PoolHarness(worker: worker, catalog: catalog, maxWorkers: 1)
        let outcome = harness.run(
            makeEvent(handler: "v1-echo", options: ["greeting": .string("hi"), "count": .int32(5)]))
        let host = MemoryLayout<bgsync_host>.stride
        let result = MemoryLayout<bgsync_result>.stride
        #expect(
            outcome
                == .success(
                    detail: "v1 init=1 plugin_size=\(bgsync_plugin_size_v1()) host_size=\(host) result_size=\(result) "
                        + "org.example.Chat/outbox attempt=1 periodic=0 greeting=hi count=5 options=2"))
        // The header did grow: the frozen plugin's struct is smaller than today's.
        #expect(bgsync_plugin_size_v1() < MemoryLayout<bgsync_plugin>.stride)
        #expect(bgsync_host_size_v1() < host)
    }

    @Test("plugin data across events, declared options in the probe, deinit when the agent closes the worker")
    func growthOnePlugin() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let appData = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-appdata")
        let outside = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-outside")
        let marker = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-deinit")
        defer { for path in [appData, outside, marker] { try? FileManager.default.removeItem(atPath: path) } }
        try Data("hello".utf8).write(to: URL(fileURLWithPath: appData + "/file"))
        try Data("SECRET".utf8).write(to: URL(fileURLWithPath: outside + "/key"))

        let probeDirectory = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-growth1")
        defer { try? FileManager.default.removeItem(atPath: probeDirectory) }
        try FileManager.default.copyItem(atPath: plugins.path("growth1"), toPath: probeDirectory + "/growth1.so")
        let catalog = PluginCatalog.discover(
            directories: [probeDirectory], workerExecutable: worker, logger: TestEnvironment.logger)
        let info = try #require(catalog.handlers["growth1"]?.info, "refused: \(catalog.refused)")
        #expect(info.pathOptions == ["file"] && info.urlOptions == ["url"])

        let sandbox = Confinement.sandboxed(kind: .flatpak, appID: "org.example.Chat", root: appData)
        func event(_ id: UInt64) -> SyncEvent {
            var event = makeEvent(
                id: id, handler: "growth1", options: ["file": .string(appData + "/file"), "marker": .string(marker)])
            event.confinement = sandbox
            return event
        }
        var harness: PoolHarness? = PoolHarness(worker: worker, catalog: catalog, maxWorkers: 1)
        #expect(harness?.run(event(1)) == .success(detail: "event 1 read 'hello'"))
        // The app swaps its file for a link to one of the user's: refused beneath the root.
        try FileManager.default.removeItem(atPath: appData + "/file")
        try FileManager.default.createSymbolicLink(atPath: appData + "/file", withDestinationPath: outside + "/key")
        #expect(harness?.run(event(2)) == .success(detail: "event 2 errno \(ELOOP)"))
        harness = nil  // shutdown: the idle worker reads end of file, runs deinit, exits

        let written = try FileManager.default.contentsOfDirectory(atPath: marker)
        #expect(written.count == 1 && written.first?.hasPrefix("growth1.") == true, "\(written)")
        let text = written.first.flatMap { FileManager.default.contents(atPath: marker + "/" + $0) }
        #expect(text.map { String(decoding: $0, as: UTF8.self) } == "2 events\n")
    }

    @Test("a handler's state directory outlives its worker; a retry flagged advanced reaches the agent as such")
    func stateDirectoryAndAdvancedRetry() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let state = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-handlers")
        defer { try? FileManager.default.removeItem(atPath: state) }
        let handlers = state + "/handlers"  // made by the worker, as the agent's is
        for round in 1...2 {
            // A new pool each round: a new worker process, as after a crash or an agent restart.
            let harness = PoolHarness(
                worker: worker, plugins: plugins, handlers: ["statedir"], maxWorkers: 1, handlerStateDirectory: handlers
            )
            #expect(
                harness.run(makeEvent(id: UInt64(round), handler: "statedir"))
                    == .retry(after: nil, detail: "count \(round) mode 700", advanced: true))
        }
        #expect(FileManager.default.fileExists(atPath: handlers + "/statedir/count"))
        // Without a state directory from the agent: ENOENT, and the flag still travels.
        let bare = PoolHarness(worker: worker, plugins: plugins, handlers: ["statedir"], maxWorkers: 1)
        #expect(
            bare.run(makeEvent(id: 9, handler: "statedir"))
                == .retry(after: nil, detail: "errno \(ENOENT)", advanced: true))
    }

    @Test("an idle worker stopped to make room for another handler runs its plugin's deinit")
    func deinitWhenMakingRoom() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let marker = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-deinit")
        defer { try? FileManager.default.removeItem(atPath: marker) }
        var catalog = PluginCatalog()
        for name in ["growth1", "ok"] {
            catalog.handlers[name] = LoadedHandler(
                info: HandlerInfo(name: name, description: name, sandboxSafe: true), path: plugins.path(name))
        }
        let harness = PoolHarness(worker: worker, catalog: catalog, maxWorkers: 1)
        let first = harness.run(makeEvent(id: 1, handler: "growth1", options: ["marker": .string(marker)]))
        #expect(first == .success(detail: "event 1 errno \(EINVAL)"))  // no "file" option
        #expect(harness.run(makeEvent(id: 2, handler: "ok")) != nil)
        // The growth1 worker was closed for "ok"; its deinit writes the marker before it exits.
        let start = Date()
        var written: [String] = []
        while written.isEmpty, Date().timeIntervalSince(start) < 10 {
            harness.loop.iterate(timeout: 0.1)
            written = (try? FileManager.default.contentsOfDirectory(atPath: marker)) ?? []
        }
        #expect(written.count == 1, "deinit did not run within 10 s")
    }

    @Test("a probe report without declarations (from a worker before growth 1) reads as declaring none")
    func oldProbeReport() throws {
        let old = #"{"description":"Says hi","name":"hi","sandbox_safe":true}"#
        let report = try ProbeReport(jsonLine: Array(old.utf8))
        #expect(try report.handler() == HandlerInfo(name: "hi", description: "Says hi", sandboxSafe: true))
        let new = HandlerInfo(
            name: "up", description: "d", sandboxSafe: true, pathOptions: ["outbox"], urlOptions: ["url"])
        #expect(try ProbeReport(jsonLine: ProbeReport(handler: new).jsonLine).handler() == new)
    }
}
