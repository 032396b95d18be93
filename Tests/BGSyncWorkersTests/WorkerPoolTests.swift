// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import MainLoop
import Testing

@testable import BGSyncWorkers

#if canImport(Glibc)
import Glibc
#endif

@Suite("Worker pool with real worker processes")
struct WorkerPoolTests {
    @Test("a handler's success reaches the completion with its detail")
    func success() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["ok"])
        let event = makeEvent(handler: "ok", options: ["greeting": .string("hello")], attempt: 2, lastChance: true)
        #expect(
            harness.run(event) == .success(detail: "ok org.example.Chat/outbox attempt 2 last-chance greeting=hello"))
    }

    @Test("retry with a hint, and failure, come back as the handler said")
    func retryAndFailure() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["retry", "fail"])
        let outcomes = harness.run([makeEvent(id: 1, handler: "retry"), makeEvent(id: 2, handler: "fail")])
        #expect(outcomes == [.retry(after: 42, detail: "HTTP 503"), .failure(detail: "HTTP 400")])
    }

    @Test("an event for a handler that is not installed fails, asynchronously")
    func unknownHandler() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["ok"])
        #expect(harness.run(makeEvent(handler: "nope")) == .failure(detail: "handler 'nope' is not installed"))
        #expect(harness.pool.workersStarted == 0)
    }

    @Test("a crash completes the event as 'crashed' and the next event gets a fresh worker")
    func crash() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["segfault"])
        #expect(harness.run(makeEvent(id: 1, handler: "segfault")) == .retry(after: nil, detail: "crashed"))
        let next = harness.run(makeEvent(id: 2, handler: "segfault", options: ["crash": .bool(false)]))
        guard case .success(let detail) = next?.kind else {
            Issue.record("The event after the crash did not succeed: \(String(describing: next))")
            return
        }
        #expect(detail.hasPrefix("survived in pid "))
        #expect(harness.pool.workersStarted == 2)
    }

    @Test("a plugin whose init refuses, or a worker that cannot start, makes the event a retry")
    func startFailures() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["init-fails"])
        let refusal = HandlerOutcome.retry(
            after: nil, detail: "handler 'init-fails' failed to start (its init returned false)")
        #expect(
            harness.run([makeEvent(id: 1, handler: "init-fails"), makeEvent(id: 2, handler: "init-fails")]) == [
                refusal, refusal,
            ])

        var catalog = PluginCatalog()
        catalog.handlers["ok"] = LoadedHandler(
            info: HandlerInfo(name: "ok", description: "", sandboxSafe: true), path: plugins.path("ok"))
        let broken = PoolHarness(worker: "/nonexistent/bgsync-worker", catalog: catalog)
        let outcome = broken.run(makeEvent(handler: "ok"))
        guard case .retry(nil, let detail, _) = outcome?.kind else {
            Issue.record("Expected a retry, got \(String(describing: outcome))")
            return
        }
        #expect(
            detail == "could not start the handler: Cannot start /nonexistent/bgsync-worker: No such file or directory."
        )
    }

    @Test("a handler still running at the deadline is killed and the event is a 'timeout'")
    func timeout() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["hang", "ok"], maxWorkers: 2)
        let start = Date()
        #expect(harness.run(makeEvent(id: 1, handler: "hang", deadline: 0.5)) == .retry(after: nil, detail: "timeout"))
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.45 && elapsed < 5, "timed out after \(elapsed) s")
        #expect(harness.pool.workerCount == 0)
        // The pool is still usable.
        #expect(
            harness.run(makeEvent(id: 2, handler: "ok"))
                == .success(detail: "ok org.example.Chat/outbox attempt 1 greeting=(none)"))
    }

    @Test("a burst of 200 events reuses at most maxWorkers processes")
    func burstReusesWorkers() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["noop"], maxWorkers: 3)
        let events = (1...200).map { makeEvent(id: UInt64($0), handler: "noop") }
        let outcomes = harness.run(events)
        var pids = Set<String>()
        for outcome in outcomes {
            guard case .success(let detail) = outcome?.kind else {
                Issue.record("An event of the burst did not succeed: \(String(describing: outcome))")
                return
            }
            pids.insert(detail)
        }
        #expect(pids.count <= 3, "served by \(pids.count) processes")
        #expect(harness.pool.workersStarted <= 3)
        #expect(harness.peakWorkers <= 3)
    }

    @Test("events of more handlers than worker slots all run, evicting idle workers")
    func eviction() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["ok", "noop", "retry"], maxWorkers: 2)
        let handlers = ["ok", "noop", "retry"]
        let events = (0..<30).map { makeEvent(id: UInt64($0), handler: handlers[$0 % 3]) }
        let outcomes = harness.run(events)
        for (event, outcome) in zip(events, outcomes) {
            switch (event.handler, outcome?.kind) {
            case ("ok", .success?), ("noop", .success?), ("retry", .retry(42, _, _)?): break
            default: Issue.record("Event \(event.id) for \(event.handler) ended as \(String(describing: outcome))")
            }
        }
        #expect(harness.peakWorkers <= 2)
    }

    @Test("shutdown kills and reaps a worker that is still running")
    func shutdownKillsWorkers() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["hang"])
        var completed = false
        harness.pool.dispatch(makeEvent(handler: "hang")) { _ in completed = true }
        // Run until the worker process exists, then stop everything.
        let start = Date()
        while harness.pool.workerCount == 0, Date().timeIntervalSince(start) < 5 { harness.loop.iterate(timeout: 0.1) }
        let pids = harness.pool.workerProcessIDs
        #expect(pids.count == 1)
        harness.pool.shutdown()
        #expect(harness.pool.workerCount == 0)
        #expect(!completed)
        // Gone, and reaped: not even a zombie holds the pid.
        for pid in pids {
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "worker \(pid) is still there")
        }
    }

    @Test("retiring workers over and over leaves no process, timer or worker object behind")
    func retirementsLeaveNothingBehind() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        struct Seen { weak var worker: WorkerConnection? }
        var seen: [Seen] = []
        var pids: [pid_t] = []
        weak var pool: WorkerPool?
        do {
            // One slot, two handlers taking turns: every event retires the other handler's idle worker.
            let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["ok", "noop"], maxWorkers: 1)
            pool = harness.pool
            let events = 20
            for n in 0..<events {
                let outcome = harness.run(makeEvent(id: UInt64(n), handler: n % 2 == 0 ? "ok" : "noop"))
                guard case .success = outcome?.kind else {
                    Issue.record("Event \(n) ended as \(String(describing: outcome))")
                    return
                }
                seen += harness.pool.workers.map { Seen(worker: $0) }
                pids += harness.pool.workerProcessIDs
            }
            #expect(harness.pool.workersStarted == events)
            // A retired idle worker exits by itself (end of file on its socket); the reaper hears it.
            let deadline = Date().addingTimeInterval(10)
            while harness.pool.reaper.count > 0, Date() < deadline { harness.loop.iterate(timeout: 0.2) }
            #expect(harness.pool.reaper.count == 0, "retired workers not reaped")
            #expect(harness.pool.graceTimers.isEmpty, "SIGKILL timers left for reaped workers")
            for pid in pids.dropLast() {
                #expect(kill(pid, 0) == -1 && errno == ESRCH, "retired worker \(pid) is still there")
            }
            let alive = seen.filter { $0.worker != nil }.count
            #expect(alive == 1, "\(alive) worker objects alive; only the last worker is in use")
        }
        #expect(pool == nil, "the pool outlived its owner")
    }
}
