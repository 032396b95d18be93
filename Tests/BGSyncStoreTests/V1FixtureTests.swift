// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import Foundation
import Testing

@testable import BGSyncStore

/// The v1 fixture (Tests/fixtures/state-v1) holds org.example.Mail/backoff in back-off until a
/// fixed time, a day after the fixture was made (2026-12-03 03:41 UTC). Whether the agent shows
/// it waiting or pending depends on its clock against that time, never on the day the suite
/// runs: here the real store reads the real file and the core's scheduler runs on the test
/// clock, set relative to the registration's own next attempt.
@Suite struct V1FixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/state-v1/registrations.sqlite3").path
    static let backoff = RegistrationKey(appID: "org.example.Mail", tag: "backoff", kind: .oneOff)

    /// The back-off registration as the scheduler has it after starting on a copy of the
    /// fixture at `now(nextAttempt)`, and its next attempt as stored.
    static func started(at now: (Date) -> Date) throws -> (registration: Registration?, nextAttempt: Date) {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.copyItem(
            atPath: fixture, toPath: directory.file(SQLiteRegistrationStore.fileName))
        let store = try SQLiteRegistrationStore(directory: directory.path)
        defer { store.close() }
        var stored: Date?
        try store.forEachStored { if $0.key == backoff { stored = $0.nextAttempt } }
        let nextAttempt = try #require(stored)
        let scheduler = Scheduler(
            settings: SyncSettings(), clock: TestClock(start: now(nextAttempt)), store: store,
            dispatcher: ManualDispatcher())
        try scheduler.start()
        return (scheduler.registration(backoff), nextAttempt)
    }

    @Test func theBackOffRegistrationWaitsUntilItsNextAttempt() throws {
        let (registration, nextAttempt) = try Self.started(at: { $0.addingTimeInterval(-60) })
        #expect(registration?.state == .waiting)
        #expect(registration?.attempts == 1)
        #expect(registration?.nextAttempt == nextAttempt)
    }

    @Test func aYearAfterItsNextAttemptItIsPending() throws {
        let (registration, _) = try Self.started(at: { $0.addingTimeInterval(365 * 86400) })
        #expect(registration?.state == .pending)  // offline: due, and not started
        #expect(registration?.attempts == 1)
    }
}
