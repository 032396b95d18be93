// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWire
import Foundation
import MainLoop
import TestKit
import Testing

@testable import BGSyncWorkers

#if canImport(Glibc)
import Glibc
#endif

/// A package upgrade caught half done (issue 21): dpkg has replaced bgsync-worker, the agent
/// still runs. The pool spawns a real process of another bgsync, which must cost the event
/// nothing: held (not `crashed`, no outcome at all), no worker spawned again and again, and run
/// once the right worker is back. The "other bgsync" workers are small shell scripts at the
/// path the pool spawns, writing what such a worker writes to fd 3; each logs its start.
@Suite("Workers of another bgsync version")
struct WorkerVersionTests {
    /// Stand-ins for a worker of another bgsync, by what they are.
    static let otherWorkers: [String: String] = [
        // A later version: its hello, with fields this version does not know appended.
        "a later version": #"printf '\000\000\000\011H\143\000\000\000MORE' >&3"#,
        // The protocol before hellos: the worker reads its first frame, finds no event in it
        // (it is our hello), writes nothing and exits 1.
        "protocol 1, before hellos": "dd bs=65536 count=1 <&3 >/dev/null 2>&1; exit 1",
        // Anything else first: no hello, whatever it is (here an outcome of protocol 1).
        "a reply before any hello": #"printf '\000\000\000\013Ro\001\000\000\000\000\000\000\000s' >&3"#,
    ]

    /// A directory with `bgsync-worker` (a script, a symlink to the real one later) and a
    /// file each start of it appends a line to.
    struct Swap {
        let directory: String
        var worker: String { directory + "/bgsync-worker" }
        var starts: String { directory + "/starts" }

        init(script body: String) throws {
            directory = try TestEnvironment.makeTemporaryDirectory(prefix: "bgsync-version")
            try install(script: body)
        }

        /// Replaces the worker as dpkg does: a new file renamed over the old.
        func install(script body: String) throws {
            let script = "#!/bin/sh\necho started >> '\(starts)'\n\(body)\n"
            try script.write(toFile: worker + ".dpkg-new", atomically: false, encoding: .utf8)
            chmod(worker + ".dpkg-new", 0o755)
            rename(worker + ".dpkg-new", worker)
        }

        func install(realWorker: String) {
            unlink(worker + ".dpkg-new")
            symlink(realWorker, worker + ".dpkg-new")
            rename(worker + ".dpkg-new", worker)
        }

        var startCount: Int {
            ((try? String(contentsOfFile: starts, encoding: .utf8)) ?? "").split(separator: "\n").count
        }

        func remove() { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Runs `loop` until `condition` holds or `timeout` seconds pass; then runs what is due now.
    @discardableResult
    static func iterate(_ loop: MainLoop, timeout: Double = 20, until condition: () -> Bool) -> Bool {
        let start = MainLoop.monotonicNow()
        while !condition(), Double(MainLoop.monotonicNow() - start) / 1e9 < timeout {
            loop.iterate(timeout: 0.2)
        }
        drain(loop)
        return condition()
    }

    /// Runs what is due on `loop` now (completions come from zero-delay timers).
    static func drain(_ loop: MainLoop) {
        while loop.iterate(timeout: 0) {}
    }

    @Test(
        "a worker of another bgsync costs its event nothing; no worker is started again until a reload",
        arguments: otherWorkers.keys.sorted())
    func heldNotCrashed(kind: String) throws {
        guard let (realWorker, plugins) = TestEnvironment.require(), let script = Self.otherWorkers[kind] else {
            return
        }
        let swap = try Swap(script: script)
        defer { swap.remove() }
        let harness = PoolHarness(worker: swap.worker, plugins: plugins, handlers: ["ok"])
        var outcomes: [UInt64: [HandlerOutcome]] = [:]
        func dispatch(_ id: UInt64) {
            harness.pool.dispatch(makeEvent(id: id, handler: "ok", attempt: 3)) { outcomes[id, default: []].append($0) }
        }
        dispatch(1)
        #expect(Self.iterate(harness.loop) { harness.pool.holding != nil && harness.pool.workerCount == 0 })
        dispatch(2)  // while held: queued, no worker tried for it
        Self.drain(harness.loop)
        let expected = kind == "a later version" ? WorkerPool.OtherBgsync(workerVersion: 99) : .init(workerVersion: nil)
        #expect(harness.pool.holding == expected)
        // Nothing charged: no outcome (not `crashed`, not a retry) for either event.
        #expect(outcomes.isEmpty)
        #expect(harness.pool.queuedCount == 2)
        // One process tried, not one per event nor one per loop turn.
        #expect(harness.pool.workersStarted == 1)
        #expect(swap.startCount == 1)

        // The upgrade's own worker is in place and the agent reloads: both run, once each, with
        // the attempt they were dispatched with.
        swap.install(realWorker: realWorker)
        harness.pool.replace(catalog: Self.catalog(plugins), maxWorkers: 2)
        #expect(Self.iterate(harness.loop) { outcomes.count == 2 })
        #expect(harness.pool.holding == nil)
        #expect(outcomes[1] == [.success(detail: "ok org.example.Chat/outbox attempt 3 greeting=(none)")])
        #expect(outcomes[2] == [.success(detail: "ok org.example.Chat/outbox attempt 3 greeting=(none)")])
        #expect(swap.startCount == 1)  // the real worker does not log starts
    }

    @Test("a held event that loses a condition is interrupted, uncharged, as a queued one is")
    func heldThenCancelled() throws {
        guard let (_, plugins) = TestEnvironment.require(), let script = Self.otherWorkers["a later version"] else {
            return
        }
        let swap = try Swap(script: script)
        defer { swap.remove() }
        let harness = PoolHarness(worker: swap.worker, plugins: plugins, handlers: ["ok"])
        var outcomes: [HandlerOutcome] = []
        harness.pool.dispatch(makeEvent(id: 7, handler: "ok")) { outcomes.append($0) }
        #expect(Self.iterate(harness.loop) { harness.pool.holding != nil })
        harness.pool.cancel(eventID: 7, grace: 5)
        #expect(Self.iterate(harness.loop) { !outcomes.isEmpty })
        #expect(outcomes == [.retry(after: nil, detail: "interrupted before it started")])
    }

    static func catalog(_ plugins: TestEnvironment.CompiledPlugins) -> PluginCatalog {
        var catalog = PluginCatalog()
        catalog.handlers["ok"] = LoadedHandler(
            info: HandlerInfo(name: "ok", description: "ok", sandboxSafe: false), path: plugins.path("ok"))
        return catalog
    }
}

/// The real bgsync-worker, spoken to by hand as agents of other versions speak.
@Suite("bgsync-worker and agents of other versions")
struct WorkerHelloTests {
    /// Starts the real worker for plugin `ok`, writes `frames` to it, closes our sending side
    /// and returns the frames it wrote before it exited, and its exit status.
    static func exchange(_ frames: [[UInt8]]) throws -> (payloads: [[UInt8]], status: BGSyncWorkers.ExitStatus)? {
        guard let (worker, plugins) = TestEnvironment.require() else { return nil }
        var pair: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &pair) == 0 else { throw TestSetupError("socketpair failed") }
        defer { close(pair[0]) }
        let pid = try BGSyncWorkers.ChildProcess.spawn(
            executable: worker, arguments: ["--serve", plugins.path("ok")], fd3: pair[1])
        close(pair[1])
        // A worker that neither answers nor exits fails the test instead of hanging it (and then
        // dies with it: PR_SET_PDEATHSIG).
        var limit = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let bytes = frames.flatMap { $0 }
        #expect(bytes.withUnsafeBytes { send(pair[0], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count)
        shutdown(pair[0], Int32(SHUT_WR))  // as an agent that stops: the worker exits after its event
        var decoder = FrameDecoder()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {  // until end of file: the worker has exited
            let got = buffer.withUnsafeMutableBytes { recv(pair[0], $0.baseAddress, $0.count, 0) }
            if got < 0 && errno == EINTR { continue }
            if got < 0 && errno == EAGAIN { Issue.record("The worker neither answered nor exited within 20 s.") }
            guard got > 0 else { break }
            decoder.append(buffer[..<got])
        }
        var payloads: [[UInt8]] = []
        while let payload = try decoder.next() { payloads.append(payload) }
        return (payloads, BGSyncWorkers.ChildProcess.waitOrKill(pid, timeout: 20).status)
    }

    static let event = WireEvent(
        id: 5, appID: "org.example.Chat", tag: "outbox", periodic: false, options: [:], attempt: 1, lastChance: false,
        deadline: Date().timeIntervalSince1970 + 60, root: nil, stallTimeout: nil, ceiling: nil)

    @Test("an agent of another version gets the worker's hello, and its event is not run")
    func otherAgent() throws {
        let hello = try WireProtocol.frame(WireHello(version: WireProtocol.version + 1))
        guard let (payloads, status) = try Self.exchange([hello, WireProtocol.frame(Self.event)]) else { return }
        #expect(payloads.map { WireHello.version(of: $0) } == [WireProtocol.version])  // no outcome follows
        #expect(status.exitCode == 0)
    }

    @Test("an agent of this version gets the hello, then the outcome")
    func sameAgent() throws {
        guard let (payloads, status) = try Self.exchange([WorkerConnection.helloFrame, WireProtocol.frame(Self.event)])
        else { return }
        #expect(payloads.count == 2)
        #expect(payloads.first.flatMap(WireHello.version(of:)) == WireProtocol.version)
        #expect(
            try payloads.last.map { try WireProtocol.decode(WireReply.self, from: $0) }
                == .outcome(
                    eventID: 5, .success(detail: "ok org.example.Chat/outbox attempt 1 greeting=(none)"),
                    moved: WireBytes()))
        #expect(status.exitCode == 0)
    }

    @Test("an agent from before hellos (its first frame is the event) has it run, and gets no hello")
    func protocol1Agent() throws {
        guard let (payloads, _) = try Self.exchange([WireProtocol.frame(Self.event)]) else { return }
        // Protocol 1's outcome is today's without the 24 bytes of the bytes moved: an agent of
        // protocol 1 reads every byte of a frame and would refuse those. Once the event's form
        // changes (servesVersion1 false), such an agent gets nothing.
        let today = try WireProtocol.frame(
            WireReply.outcome(
                eventID: 5, WireOutcome.success(detail: "ok org.example.Chat/outbox attempt 1 greeting=(none)"),
                moved: WireBytes()))
        let expected =
            WireProtocol.servesVersion1 ? [Array(today.dropFirst(WireProtocol.headerBytes).dropLast(24))] : []
        #expect(payloads == expected)
    }
}
