// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import BGSyncWire
import BGSyncWorkers
import Foundation
import MainLoop
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Worker pool: stopping an event, and progress against the stall time")
struct WorkerPoolConditionsTests {
    /// An event whose cap is `cap` seconds; once it reports progress, `stall` seconds without
    /// progress, never past `ceiling`.
    func event(
        id: UInt64 = 1, handler: String, options: [String: Value] = [:], cap: Double, stall: Double = 60,
        ceiling: Double = 60
    ) -> SyncEvent {
        let now = Date()
        return SyncEvent(
            id: id, key: RegistrationKey(appID: "org.example.Chat", tag: "outbox", kind: .oneOff), handler: handler,
            options: options, attempt: 1, lastChance: false, deadline: now.addingTimeInterval(cap),
            stallTimeout: stall, ceiling: now.addingTimeInterval(ceiling))
    }

    @Test("a handler waiting on its cancel fd sees the stop at once and returns; its worker is kept")
    func stopSeenThroughTheFD() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["stoppable"])
        let start = Date()
        _ = harness.loop.addTimer(after: 0.3) { harness.pool.cancel(eventID: 1, grace: 10) }
        let outcome = harness.run(event(handler: "stoppable", cap: 30))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome == .retry(after: nil, detail: "stopped (cancelled=true)"))
        #expect(elapsed >= 0.3 && elapsed < 3, "stopped after \(elapsed) s")
        #expect(harness.pool.workerCount == 1, "a handler that stops in time keeps its worker")
        // The stop belonged to that event: the next one on the same worker is not stopped.
        let next = harness.run(event(id: 2, handler: "stoppable", options: ["seconds": .double(0.2)], cap: 30))
        #expect(next == .success(detail: "not stopped (cancelled=false)"))
        #expect(harness.pool.workersStarted == 1)
    }

    @Test("a stop sent while the worker is still starting waits for it, and is not lost")
    func stopBeforeTheWorkerIsReady() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["stoppable"])
        // Right after dispatch: the worker process exists but has not loaded anything yet.
        _ = harness.loop.addTimer(after: 0) { harness.pool.cancel(eventID: 1, grace: 20) }
        let start = Date()
        let outcome = harness.run(event(handler: "stoppable", cap: 30))
        #expect(outcome == .retry(after: nil, detail: "stopped (cancelled=true)"))
        #expect(Date().timeIntervalSince(start) < 10, "seen at once, not at the end of the grace period")
        #expect(harness.pool.workerCount == 1, "not killed by a signal it was not ready for")
    }

    @Test("a handler that ignores the stop is killed at the end of the grace period")
    func ignoredStopIsKilledAfterGrace() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["hang"])
        let start = Date()
        _ = harness.loop.addTimer(after: 0.2) { harness.pool.cancel(eventID: 1, grace: 0.6) }
        let outcome = harness.run(event(handler: "hang", cap: 30))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome == .retry(after: nil, detail: "interrupted (the handler did not stop in time)"))
        #expect(elapsed >= 0.75 && elapsed < 5, "killed after \(elapsed) s")
        #expect(harness.pool.workerCount == 0)
    }

    @Test("asked again with a shorter grace (sleep coming), the handler is killed at the sooner end")
    func aShorterGraceWins() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["hang"])
        let start = Date()
        _ = harness.loop.addTimer(after: 0.2) { harness.pool.cancel(eventID: 1, grace: 20) }
        _ = harness.loop.addTimer(after: 0.4) { harness.pool.cancel(eventID: 1, grace: 0.3) }
        _ = harness.loop.addTimer(after: 0.5) { harness.pool.cancel(eventID: 1, grace: 10) }  // later: ignored
        let outcome = harness.run(event(handler: "hang", cap: 30))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome == .retry(after: nil, detail: "interrupted (the handler did not stop in time)"))
        #expect(elapsed >= 0.65 && elapsed < 10, "killed after \(elapsed) s, not at the first 20 s grace")
    }

    @Test("a handler reporting progress runs past the event cap")
    func progressOutlivesTheCap() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["progress"])
        var seen: [SyncProgress] = []
        harness.pool.onProgress = { _, progress in seen.append(progress) }
        let start = Date()
        // 8 steps of 0.25 s: 2 s in all, against a cap of 0.6 s and a stall time of 1 s.
        let outcome = harness.run(
            event(handler: "progress", options: ["steps": .int64(8), "interval": .double(0.25)], cap: 0.6, stall: 1))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome == .success(detail: "done 8 steps"))
        #expect(elapsed > 1.9, "ran \(elapsed) s, past the 0.6 s cap")
        #expect(seen.map(\.done) == Array(1...8))
        #expect(seen.last == SyncProgress(done: 8, total: 8, text: "step 8"))
    }

    @Test("a flood of progress reports is thinned, and the last one always arrives")
    func progressFloodIsThinned() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["progress"])
        var seen: [SyncProgress] = []
        harness.pool.onProgress = { _, progress in seen.append(progress) }
        let outcome = harness.run(
            event(handler: "progress", options: ["steps": .int64(2000), "interval": .double(0.0001)], cap: 30))
        #expect(outcome == .success(detail: "done 2000 steps"))
        #expect(seen.count < 1000, "\(seen.count) frames for 2000 reports")
        #expect(seen.last == SyncProgress(done: 2000, total: 2000, text: "step 2000"))
    }

    @Test("a handler that stops reporting is cut at the stall time")
    func stallIsCut() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["progress"])
        let start = Date()
        // Reports at 0.2, 0.4, 0.6 s, then nothing: killed 1 s after the last report.
        let outcome = harness.run(
            event(
                handler: "progress", options: ["stall_after": .int64(3), "interval": .double(0.2)], cap: 0.5, stall: 1))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome == .retry(after: nil, detail: "timeout"))
        #expect(elapsed >= 1.5 && elapsed < 4, "cut after \(elapsed) s")
    }

    @Test("progress never carries an event past the ceiling")
    func ceilingHolds() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["progress"])
        let start = Date()
        let outcome = harness.run(
            event(
                handler: "progress", options: ["steps": .int64(1000), "interval": .double(0.1)], cap: 0.5, stall: 1,
                ceiling: 1.5))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome == .retry(after: nil, detail: "timeout"))
        #expect(elapsed >= 1.45 && elapsed < 4, "cut after \(elapsed) s")
    }

    // MARK: - Bytes (growth 3's report_bytes)

    @Test("bytes moving hold off the stall time, reach the pool, and their totals come with the outcome")
    func bytesOutliveTheCap() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["bytes"])
        var seen: [WireBytes] = []
        harness.pool.onBytes = { _, bytes in seen.append(bytes) }
        let start = Date()
        // 8 steps of 0.25 s: 2 s in all, against a cap of 0.6 s and a stall time of 1 s.
        let outcome = harness.run(
            event(handler: "bytes", options: ["steps": .int64(8), "interval": .double(0.25)], cap: 0.6, stall: 1))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome?.kind == .success(detail: "moved 8 steps"))
        #expect(elapsed > 1.9, "ran \(elapsed) s, past the 0.6 s cap")
        #expect(seen.map(\.sent) == (1...8).map { 1000 * UInt64($0) })
        #expect(seen.last == WireBytes(sent: 8000, received: 80, expected: 8080))
        #expect(outcome?.bytesSent == 8000 && outcome?.bytesReceived == 80)
    }

    @Test("a flood of byte reports is thinned to one per 100 ms, and the last one always arrives")
    func bytesFloodIsThinned() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["bytes"])
        var seen: [WireBytes] = []
        harness.pool.onBytes = { _, bytes in seen.append(bytes) }
        let start = Date()
        let outcome = harness.run(
            event(handler: "bytes", options: ["steps": .int64(3000), "interval": .double(0.0001)], cap: 30))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome?.kind == .success(detail: "moved 3000 steps"))
        // One frame at most per 100 ms, plus the first and the held last.
        #expect(seen.count <= Int(elapsed / 0.1) + 2, "\(seen.count) frames in \(elapsed) s for 3000 reports")
        #expect(seen.last == WireBytes(sent: 3_000_000, received: 30000, expected: 3_030_000))
        #expect(outcome?.bytesSent == 3_000_000 && outcome?.bytesReceived == 30000)
    }

    @Test("a handler whose bytes stop moving is cut at the stall time, with the bytes it moved")
    func stalledBytesAreCut() throws {
        guard let (worker, plugins) = TestEnvironment.require() else { return }
        let harness = PoolHarness(worker: worker, plugins: plugins, handlers: ["bytes"])
        let start = Date()
        // Bytes at 0.2, 0.4, 0.6 s, then nothing: killed 1 s after the last.
        let outcome = harness.run(
            event(handler: "bytes", options: ["stall_after": .int64(3), "interval": .double(0.2)], cap: 0.5, stall: 1))
        let elapsed = Date().timeIntervalSince(start)
        #expect(outcome?.kind == .retry(after: nil, detail: "timeout"))
        #expect(elapsed >= 1.5 && elapsed < 4, "cut after \(elapsed) s")
        #expect(outcome?.bytesSent == 3000 && outcome?.bytesReceived == 30)
    }
}
