// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Foundation
import GRDB
import Testing

@testable import BGSyncStore

@Suite struct SQLiteRegistrationStoreTests {
    @Test func everyFieldSurvivesASaveAndAReopen() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        #expect(store.path == directory.file("registrations.sqlite3"))
        try store.save(Fixtures.oneOff)
        try store.save(Fixtures.periodic)  // Same app and tag, other namespace: a second row.
        #expect(Fixtures.bySequence(try store.loadAll()) == [Fixtures.oneOff, Fixtures.periodic])
        store.close()

        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        #expect(Fixtures.bySequence(try reopened.loadAll()) == [Fixtures.oneOff, Fixtures.periodic])
    }

    /// The primary key compares bytes: a composed and a decomposed "café" are two rows, read back
    /// as two registrations, and deleting one leaves the other (as RegistrationKey compares them).
    @Test func aComposedAndADecomposedTagAreTwoRows() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let composed = Fixtures.simple("caf\u{E9}", sequence: 1)
        let decomposed = Fixtures.simple("cafe\u{301}", sequence: 2)
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(composed)
        try store.save(decomposed)
        store.close()
        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        let tags = { () throws -> [[UInt8]] in
            Fixtures.bySequence(try reopened.loadAll()).map { Array($0.key.tag.utf8) }
        }
        #expect(try tags() == [Array("caf\u{E9}".utf8), Array("cafe\u{301}".utf8)])
        try reopened.delete(decomposed.key)
        #expect(try tags() == [Array("caf\u{E9}".utf8)])
    }

    @Test func theFileUsesWALAndFullSyncsWithRealColumns() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        defer { store.close() }
        #expect(try store.pragma("journal_mode") == "wal")
        #expect(try store.pragma("synchronous") == "2")  // FULL
        var mode = stat()
        #expect(stat(directory.path, &mode) == 0)
        try store.save(Fixtures.oneOff)

        let raw = try DatabaseQueue(path: store.path)
        defer { try? raw.close() }
        let columns = try raw.read { db in try db.columns(in: "registrations").map(\.name) }
        #expect(
            columns == [
                "app_id", "kind", "tag", "handler", "options", "network", "max_attempts", "attempts", "state",
                "next_attempt", "last_error", "min_interval", "interval_start", "sequence",
                "power", "expires_at", "not_before", "confinement",
            ])
        let row = try raw.read { db in try Row.fetchOne(db, sql: "SELECT next_attempt, kind, state FROM registrations")
        }
        #expect(row?["next_attempt"] == 1_763_000_000.5)
        #expect(row?["kind"] == "one-off")
        #expect(row?["state"] == "waiting")
    }

    /// A file from before confinement was recorded: its rows read as unconfined (the check ran
    /// at Register only then), and new rows say who registered them, readably.
    @Test func confinementIsAddedToAnOldFileAndReadsAsText() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let old = try DatabaseQueue(path: directory.file("registrations.sqlite3"))
        var v1 = DatabaseMigrator()
        v1.registerMigration("v1: registrations") { db in
            try db.execute(
                sql: """
                    CREATE TABLE registrations (
                        app_id TEXT NOT NULL, kind TEXT NOT NULL, tag TEXT NOT NULL, handler TEXT NOT NULL,
                        options TEXT NOT NULL, network TEXT NOT NULL, max_attempts INTEGER NOT NULL,
                        attempts INTEGER NOT NULL, state TEXT NOT NULL, next_attempt REAL,
                        last_error TEXT NOT NULL DEFAULT '', min_interval REAL, interval_start REAL,
                        sequence INTEGER NOT NULL, PRIMARY KEY (app_id, kind, tag))
                    """)
            try db.execute(
                sql: """
                    INSERT INTO registrations VALUES ('org.example.Old', 'one-off', 't', 'upload', '{}', 'any', 3, 0,
                        'pending', NULL, '', NULL, NULL, 1)
                    """)
        }
        try v1.migrate(old)
        try old.close()

        let store = try SQLiteRegistrationStore(directory: directory.path)
        #expect(try store.loadAll().map(\.confinement) == [.unconfined])
        try store.save(Fixtures.periodic)
        store.close()
        let raw = try DatabaseQueue(path: directory.file("registrations.sqlite3"))
        defer { try? raw.close() }
        let texts = try raw.read { db in
            try String.fetchAll(db, sql: "SELECT confinement FROM registrations ORDER BY sequence")
        }
        #expect(texts == ["unconfined", "snap:snap.chat_x:/home/u/snap/chat_x: a root with ':'"])
    }

    @Test func aDatabaseFromBeforeTheConditionsMigrationKeepsItsRows() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        // The file as the first release wrote it: only the v1 migration, one row.
        let old = try DatabaseQueue(path: directory.file("registrations.sqlite3"))
        var migrator = StoreSchema.migrator
        try migrator.migrate(old, upTo: "v1: registrations")
        try old.write { db in
            try db.execute(
                sql: """
                    INSERT INTO registrations (app_id, kind, tag, handler, options, network, max_attempts, attempts,
                        state, next_attempt, last_error, min_interval, interval_start, sequence)
                    VALUES ('org.example.Chat', 'one-off', 'outbox', 'upload', '{}', 'any', 3, 1, 'pending',
                        NULL, '', NULL, NULL, 7)
                    """)
        }
        try old.close()
        migrator = StoreSchema.migrator  // silence "never mutated"

        let store = try SQLiteRegistrationStore(directory: directory.path)
        defer { store.close() }
        let loaded = try store.loadAll()
        #expect(loaded.count == 1)
        #expect(loaded.first?.attempts == 1)
        #expect(loaded.first?.power == nil && loaded.first?.expiresAt == nil && loaded.first?.notBefore == nil)
        var updated = try #require(loaded.first)
        updated.power = .ac
        try store.save(updated)
        #expect(try store.loadAll().first?.power == .ac)
    }

    @Test func backgroundWritesSkipTheSyncAndAcknowledgedOnesDoNot() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(Fixtures.oneOff, urgency: .background)
        #expect(try store.pragma("synchronous") == "1")  // NORMAL
        try store.save(Fixtures.periodic, urgency: .acknowledged)
        #expect(try store.pragma("synchronous") == "2")  // FULL again, syncing both
        try store.delete(Fixtures.periodic.key, urgency: .background)
        store.close()
        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        #expect(try reopened.loadAll() == [Fixtures.oneOff])
    }

    @Test func createsItsDirectoryPrivate() throws {
        let parent = TemporaryDirectory()
        defer { parent.remove() }
        let directory = parent.file("state/bgsync")
        let store = try SQLiteRegistrationStore(directory: directory)
        store.close()
        var info = stat()
        #expect(stat(directory, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o700)
    }

    @Test func wallClockDatesKeepMicrosecondPrecision() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        defer { store.close() }
        var registration = Fixtures.simple("now", sequence: 1, state: .waiting)
        let now = Date()
        registration.nextAttempt = now
        try store.save(registration)
        let loaded = try #require(try store.loadAll().first?.nextAttempt)
        #expect(abs(loaded.timeIntervalSince(now)) < 1e-6)
    }

    @Test func savingTheSameKeyReplacesTheRow() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        defer { store.close() }
        try store.save(Fixtures.oneOff)
        var changed = Fixtures.oneOff
        changed.handler = "exec"
        changed.options = ["argv": .array(elementSignature: "s", [.string("/bin/true")])]
        changed.state = .pending
        changed.nextAttempt = nil
        changed.attempts = 0
        changed.lastError = ""
        changed.sequence = 43
        try store.save(changed)
        #expect(try store.loadAll() == [changed])
    }

    @Test func deleteRemovesOnlyThatKey() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(Fixtures.oneOff)
        try store.save(Fixtures.periodic)
        try store.delete(Fixtures.oneOff.key)
        try store.delete(RegistrationKey(appID: "org.example.Nobody", tag: "x", kind: .oneOff))  // Absent: no error.
        #expect(try store.loadAll() == [Fixtures.periodic])
        store.close()
        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        #expect(try reopened.loadAll() == [Fixtures.periodic])
    }

    @Test(arguments: [RegistrationState.firing, .reregisteredWhileFiring])
    func aFiringRegistrationComesBackPendingWithItsAttempts(state: RegistrationState) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        var registration = Fixtures.simple("firing", sequence: 7, state: state)
        registration.attempts = 2
        try store.save(registration)
        store.close()

        // Even a row written as firing by someone else comes back pending.
        let raw = try DatabaseQueue(path: directory.file("registrations.sqlite3"))
        try raw.write { db in try db.execute(sql: "UPDATE registrations SET state = ?", arguments: [state.rawValue]) }
        try raw.close()

        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        let loaded = try #require(try reopened.loadAll().first)
        #expect(loaded.state == .pending)
        #expect(loaded.attempts == 2)
    }

    @Test func callsAfterCloseAreStorageErrors() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        store.close()
        store.close()
        let error = #expect(throws: SyncError.self) { try store.save(Fixtures.oneOff) }
        #expect(error?.code == .storage)
    }
}
