// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import Synchronization
import Testing

@testable import BGSyncStore

/// The store with a `deliver` function, as the agent makes it: commits on the database queue,
/// completions handed back; background writes held until a flush or the next commit.
@Suite struct GroupCommitStoreTests {
    /// Completions the store delivers, run when the test says (the test thread plays the loop).
    final class Mailbox: Sendable {
        private let blocks = Mutex<[@Sendable () -> Void]>([])
        private let arrived = DispatchSemaphore(value: 0)

        var deliver: SQLiteRegistrationStore.Deliver {
            { [self] block in
                blocks.withLock { $0.append(block) }
                arrived.signal()
            }
        }

        /// Waits (at most 10 s) for one delivery and runs it.
        func runNext() -> Bool {
            guard arrived.wait(timeout: .now() + 10) == .success else { return false }
            let block = blocks.withLock { $0.removeFirst() }
            block()
            return true
        }
    }

    private func registration(_ tag: String, sequence: Int64) -> Registration {
        Fixtures.simple(tag, sequence: sequence)
    }

    @Test func aBatchIsOneTransactionAndItsCompletionComesBackThroughDeliver() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let mailbox = Mailbox()
        let store = try SQLiteRegistrationStore(directory: directory.path, deliver: mailbox.deliver)
        defer { store.close() }
        var result: SyncError?? = nil
        store.commit([.save(registration("a", sequence: 1)), .save(registration("b", sequence: 2))]) {
            result = .some($0)
        }
        #expect(result == nil, "the completion waits for the loop")
        #expect(mailbox.runNext())
        #expect(result == .some(nil))
        #expect(Set(try store.loadAll().map(\.key.tag)) == ["a", "b"])
    }

    @Test func backgroundWritesWaitForAFlushOrGoWithTheNextCommit() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let mailbox = Mailbox()
        let store = try SQLiteRegistrationStore(directory: directory.path, deliver: mailbox.deliver)
        defer { store.close() }
        try store.save(registration("outcome", sequence: 1), urgency: .background)
        #expect(try store.loadAll().isEmpty, "held, not yet written")
        var written = false
        store.flush { written = true }
        #expect(mailbox.runNext())
        #expect(written)
        #expect(try store.loadAll().map(\.key.tag) == ["outcome"])

        try store.delete(registration("outcome", sequence: 1).key, urgency: .background)
        store.commit([.save(registration("caller", sequence: 2))]) { _ in }
        #expect(mailbox.runNext())
        #expect(try store.loadAll().map(\.key.tag) == ["caller"], "the held delete went first, in the same transaction")
        var flushed = false
        store.flush { flushed = true }  // the commit took the held write along: nothing left
        #expect(mailbox.runNext())
        #expect(flushed)
    }

    @Test func aFullDiskFailsTheWholeBatch() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let mailbox = Mailbox()
        let store = try SQLiteRegistrationStore(directory: directory.path, deliver: mailbox.deliver)
        defer { store.close() }
        try store.limitGrowth(toPages: 0)
        var big = registration("big", sequence: 1)
        big.options = ["note": .string(String(repeating: "x", count: 64 * 1024))]
        var result: SyncError?? = nil
        store.commit([.save(registration("small", sequence: 2)), .save(big)]) { result = .some($0) }
        #expect(mailbox.runNext())
        #expect(result??.code == .storage)
        #expect(try store.loadAll().isEmpty, "neither write was made")
    }
}
