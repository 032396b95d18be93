// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import Testing

/// Callers' writes while a commit is on its way to the disk (MemoryStore holding its commits).
@Suite("Group commit")
struct GroupCommitTests {
    private func request(_ tag: String, app: String = "org.example.Chat") throws -> RegistrationRequest {
        try RegistrationRequest(appID: app, tag: tag, handler: "upload")
    }

    @Test func callersHearOnlyOnceTheirBatchIsDurableAndLaterOnesShareTheNextCommit() throws {
        let h = try Harness()
        h.store.holdCommits = true
        var answered: [String] = []
        for tag in ["a", "b", "c"] {
            h.scheduler.register(try request(tag)) { error in
                #expect(error == nil)
                answered.append(tag)
            }
        }
        // "a" went alone (nothing was in flight); "b" and "c" wait for it.
        #expect(answered.isEmpty)
        #expect(h.store.heldCommits == 1)
        #expect(h.scheduler.tags(appID: "org.example.Chat", kind: .oneOff).isEmpty, "not durable, not listed")
        h.store.completeCommits()
        #expect(answered == ["a", "b", "c"])
        #expect(h.store.commits.map(\.count) == [1, 2], "b and c in one transaction")
        #expect(h.scheduler.tags(appID: "org.example.Chat", kind: .oneOff) == ["a", "b", "c"])
    }

    @Test func aFailedCommitTellsEveryWriterAndChangesNothing() throws {
        let h = try Harness()
        try h.register("kept")
        h.store.holdCommits = true
        var errors: [SyncError?] = []
        var removed: Result<Bool, SyncError>?
        h.scheduler.register(try request("x")) { errors.append($0) }
        h.scheduler.register(try request("y")) { errors.append($0) }
        h.scheduler.unregister(h.key("kept")) { removed = $0 }
        h.store.failure = SyncError(.storage, "disk full")
        h.store.completeCommits()
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { $0?.code == .storage })
        guard case .failure(let error)? = removed else {
            Issue.record("unregister said \(String(describing: removed))")
            return
        }
        #expect(error.code == .storage)
        #expect(h.scheduler.tags(appID: "org.example.Chat", kind: .oneOff) == ["kept"])
        #expect(h.store.rows.keys.map(\.tag) == ["kept"])
    }

    @Test func anEventDoesNotStartOrFinishForAKeyBeingCommitted() throws {
        let h = try Harness(network: .online)
        try h.register("a")
        #expect(h.events.count == 1)
        h.store.holdCommits = true
        var answered = false
        h.scheduler.register(try request("a")) { _ in answered = true }  // again, while it runs
        h.dispatcher.finishLast(.success(detail: ""))
        #expect(h.outcomes.isEmpty, "the finish waits for the commit that touches its key")
        h.store.completeCommits()
        #expect(answered)
        #expect(h.outcomes == [.succeeded])
        // Registered again while running: it runs once more.
        #expect(h.events.count == 2)
    }

    @Test func anUnregisterInTheSameBatchSeesTheRegisterBeforeIt() throws {
        let h = try Harness()
        h.store.holdCommits = true
        h.scheduler.register(try request("first")) { _ in }
        var removed: Result<Bool, SyncError>?
        h.scheduler.register(try request("a")) { _ in }
        h.scheduler.unregister(h.key("a")) { removed = $0 }
        h.store.completeCommits()
        #expect(try removed?.get() == true)
        #expect(h.scheduler.registration(h.key("a")) == nil)
        #expect(h.store.rows[h.key("a")] == nil)
    }

    @Test func quotaIsCountedAcrossTheBatchAndAnsweredAtOnceWhenNothingIsInFlight() throws {
        var settings = SyncSettings()
        settings.registrationsPerApp = 2
        let h = try Harness(settings: settings)
        h.store.holdCommits = true
        var results: [String: SyncError?] = [:]
        for tag in ["a", "b", "c"] {
            h.scheduler.register(try request(tag, app: "org.flood.App")) { results[tag] = $0 }
        }
        h.store.completeCommits()
        #expect(results["a"] == .some(nil) && results["b"] == .some(nil))
        #expect(results["c"]??.code == .quotaExceeded)
        // Now over its quota with nothing in flight: refused before it reaches the queue.
        h.scheduler.register(try request("other")) { _ in }  // another app's commit in flight
        var refused: SyncError?
        h.scheduler.register(try request("d", app: "org.flood.App")) { refused = $0 }
        #expect(refused?.code == .quotaExceeded, "no wait behind another app's commit")
        h.store.completeCommits()
    }

    @Test func oneAppTakesAtMostItsShareOfABatch() throws {
        let h = try Harness()
        h.store.holdCommits = true
        h.scheduler.register(try request("first", app: "org.other.App")) { _ in }  // in flight
        var flooded = 0
        for n in 0..<40 { h.scheduler.register(try request("f\(n)", app: "org.flood.App")) { _ in flooded += 1 } }
        var quiet = false
        h.scheduler.register(try request("q", app: "org.quiet.App")) { _ in quiet = true }
        h.store.completeCommits()
        #expect(quiet && flooded == 40)
        // The quiet app's write went with the flooder's first 8, not after all 40.
        #expect(h.store.commits.map(\.count) == [1, 9, 8, 8, 8, 8])
    }
}
