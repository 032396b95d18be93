// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import BGSyncWorkers
import Foundation
import Logging
import MainLoop
import TestKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the worker tests need from the build: the bgsync-worker binary and the C test plugins,
/// compiled once per test run into a temporary directory.
enum TestEnvironment {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// bgsync-worker sits in the build products directory, next to the test bundle.
    static let workerExecutable: String? = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        }
        // On Linux the test runner is …/debug/bgsyncPackageTests.xctest; elsewhere a bundle.
        for candidate in [directory, directory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("bgsync-worker").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    /// The compiled test plugins (Tests/plugins/*.c), by name, in a private directory.
    static let plugins: Result<CompiledPlugins, TestSetupError> = {
        do { return .success(try compilePlugins()) } catch { return .failure(TestSetupError("\(error)")) }
    }()

    struct CompiledPlugins: Sendable {
        let directory: String
        func path(_ name: String) -> String { directory + "/" + name + ".so" }
    }

    /// The worker and plugins, or a recorded issue saying what is missing.
    static func require(sourceLocation: SourceLocation = #_sourceLocation) -> (
        worker: String, plugins: CompiledPlugins
    )? {
        guard let worker = workerExecutable else {
            Issue.record(
                "bgsync-worker is not built next to the tests; run `swift build --build-tests` (it builds all products) first.",
                sourceLocation: sourceLocation)
            return nil
        }
        switch plugins {
        case .success(let compiled): return (worker, compiled)
        case .failure(let error):
            Issue.record("The C test plugins did not compile: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// Compiled into the build products directory (not /tmp, which nothing would clean),
    /// afresh on every run.
    private static func compilePlugins() throws -> CompiledPlugins {
        guard let worker = workerExecutable else { throw TestSetupError("no build products directory") }
        let directory = URL(fileURLWithPath: worker).deletingLastPathComponent().path + "/bgsync-test-plugins"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        // Tests/plugins/*.c, and Tests/plugins/isolated/*.c into a subdirectory of their own;
        // Tests/plugins/abi-v1/*.c include the frozen first-form header beside them (a quoted
        // #include looks in the source's own directory before any -I).
        for subdirectory in ["", "/isolated", "/abi-v1"] {
            let sources = repositoryRoot + "/Tests/plugins" + subdirectory
            try FileManager.default.createDirectory(atPath: directory + subdirectory, withIntermediateDirectories: true)
            let names = try FileManager.default.contentsOfDirectory(atPath: sources).filter { $0.hasSuffix(".c") }
            for name in names {
                let output = directory + subdirectory + "/" + name.dropLast(2) + ".so"
                let include = repositoryRoot + "/Sources/CBGSyncPlugin/include"
                try run(
                    "/usr/bin/cc",
                    ["-shared", "-fPIC", "-Wall", "-Werror", "-I", include, "-o", output, sources + "/" + name])
            }
        }
        return CompiledPlugins(directory: directory)
    }

    static func makeTemporaryDirectory(prefix: String) throws -> String {
        try TestKit.makeTemporaryDirectory(prefix: prefix)
    }

    /// Runs a command to completion; throws with its output if it fails.
    @discardableResult
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil
    ) throws -> String {
        let merged = environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } }
        return try runChecked([executable] + arguments, environment: merged, directory: directory)
    }

    static let logger: Logger = {
        var logger = Logger(label: "bgsync.workers.test")
        logger.logLevel = .debug
        return logger
    }()
}

/// A WorkerPool on a real MainLoop, driven from the test's thread until the completions arrive.
final class PoolHarness {
    let loop = MainLoop()
    let pool: WorkerPool
    let maxWorkers: Int
    /// The most worker processes seen alive at once.
    private(set) var peakWorkers = 0

    init(worker: String, catalog: PluginCatalog, maxWorkers: Int = 2, handlerStateDirectory: String? = nil) {
        self.maxWorkers = maxWorkers
        pool = WorkerPool(
            loop: loop, workerExecutable: worker, catalog: catalog, maxWorkers: maxWorkers,
            logger: TestEnvironment.logger, handlerStateDirectory: handlerStateDirectory)
    }

    /// A pool for some of the test plugins, without probing them.
    convenience init(
        worker: String, plugins: TestEnvironment.CompiledPlugins, handlers: [String], maxWorkers: Int = 2,
        handlerStateDirectory: String? = nil
    ) {
        var catalog = PluginCatalog()
        for name in handlers {
            catalog.handlers[name] = LoadedHandler(
                info: HandlerInfo(name: name, description: name, sandboxSafe: false), path: plugins.path(name))
        }
        self.init(
            worker: worker, catalog: catalog, maxWorkers: maxWorkers, handlerStateDirectory: handlerStateDirectory)
    }

    deinit { pool.shutdown() }

    /// Dispatches `events` and runs the loop until every completion has come, or `timeout`
    /// seconds pass (a missing completion is then nil). Records an issue for a completion
    /// called twice or synchronously inside dispatch.
    func run(_ events: [SyncEvent], timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation)
        -> [HandlerOutcome?]
    {
        var outcomes = [HandlerOutcome?](repeating: nil, count: events.count)
        var calls = [Int](repeating: 0, count: events.count)
        var remaining = events.count
        for (index, event) in events.enumerated() {
            var insideDispatch = true
            pool.dispatch(event) { outcome in
                if insideDispatch {
                    Issue.record(
                        "The completion of event \(event.id) was called inside dispatch.",
                        sourceLocation: sourceLocation)
                }
                calls[index] += 1
                if calls[index] == 1 { remaining -= 1 }
                outcomes[index] = outcome
            }
            insideDispatch = false
        }
        let start = MainLoop.monotonicNow()
        while remaining > 0, Double(MainLoop.monotonicNow() - start) / 1e9 < timeout {
            loop.iterate(timeout: 0.5)
            peakWorkers = max(peakWorkers, pool.workerCount)
        }
        // Let anything stray (a second completion) show up.
        while loop.iterate(timeout: 0) {}
        for (index, count) in calls.enumerated() where count != 1 {
            Issue.record("Event \(events[index].id) was completed \(count) times.", sourceLocation: sourceLocation)
        }
        return outcomes
    }

    func run(_ event: SyncEvent, timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation)
        -> HandlerOutcome?
    {
        run([event], timeout: timeout, sourceLocation: sourceLocation)[0]
    }
}

/// An event for `handler`, due to finish within `deadline` seconds.
func makeEvent(
    id: UInt64 = 1, handler: String, options: [String: Value] = [:], attempt: UInt32 = 1,
    lastChance: Bool = false, deadline: Double = 30
) -> SyncEvent {
    SyncEvent(
        id: id, key: RegistrationKey(appID: "org.example.Chat", tag: "outbox", kind: .oneOff), handler: handler,
        options: options, attempt: attempt, lastChance: lastChance, deadline: Date().addingTimeInterval(deadline))
}
