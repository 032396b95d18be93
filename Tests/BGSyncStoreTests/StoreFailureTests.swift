// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import GRDB
import Testing

@testable import BGSyncStore

/// What the store does when the file or the disk is not as it should be: a storage error that
/// names the file and says what to do, and never an emptied or recreated database; a damaged
/// file is kept aside and repaired (StoreRepairTests).
@Suite struct StoreFailureTests {
    static let isRoot = getuid() == 0

    @Test func aFileOfGarbageIsKeptAsideAndTheStoreStartsEmpty() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("registrations.sqlite3")
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        #expect(FileManager.default.createFile(atPath: path, contents: garbage))

        let store = try SQLiteRegistrationStore(directory: directory.path)
        let repair = try #require(store.repair)
        #expect(repair.saved == 0 && repair.lost == 0)
        #expect(repair.damage.contains("not a database"))
        #expect(try store.storedCount() == 0)
        store.close()
        #expect(Fixtures.bytes(of: repair.keptAs) == garbage)
        #expect(repair.keptFiles == [repair.keptAs])
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == ["registrations.sqlite3", (repair.keptAs as NSString).lastPathComponent])
    }

    @Test func aDatabaseWithEveryPageButTheFirstOverwrittenIsKeptAside() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        for index in 0..<50 { try store.save(Fixtures.simple("tag-\(index)", sequence: Int64(index))) }
        store.close()
        // Keep the header page (a valid SQLite file), scribble over every page after it.
        let path = store.path
        var bytes = try #require(Fixtures.bytes(of: path))
        #expect(bytes.count > 8192)
        for offset in 4096..<bytes.count { bytes[offset] = 0xA5 }
        try bytes.write(to: URL(fileURLWithPath: path))

        let repaired = try SQLiteRegistrationStore(directory: directory.path)
        let repair = try #require(repaired.repair)
        // The rows and their index were on the overwritten pages: nothing is left to name them.
        #expect(repair.saved == 0)
        #expect(try repaired.storedCount() == 0)
        repaired.close()
        #expect(Fixtures.bytes(of: repair.keptAs) == bytes)
    }

    @Test func aStateDirectoryThatIsAFileIsReported() throws {
        let parent = TemporaryDirectory()
        defer { parent.remove() }
        let notADirectory = parent.file("bgsync")
        #expect(FileManager.default.createFile(atPath: notADirectory, contents: Data("x".utf8)))
        let error = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: notADirectory) }
        #expect(error?.code == .storage)
        #expect(error?.message.contains(notADirectory) == true)
        #expect(error?.message.contains("not a directory") == true)

        let below = notADirectory + "/sub"
        let creating = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: below) }
        #expect(creating?.message.contains("Cannot create the state directory \(below)") == true)
    }

    // Root reads and writes whatever the permission bits say, so these need an ordinary user.
    @Test(.enabled(if: !isRoot, "runs as root, which permission bits do not stop"))
    func anUnreadableDirectoryIsReported() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let state = directory.file("state")
        #expect(mkdir(state, 0o000) == 0)
        let error = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: state) }
        #expect(error?.code == .storage)
        #expect(error?.message.contains(state) == true)
    }

    @Test(.enabled(if: !isRoot, "runs as root, which permission bits do not stop"))
    func aReadOnlyFileIsReportedAndKept() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(Fixtures.oneOff)
        store.close()
        let before = Fixtures.bytes(of: store.path)
        #expect(chmod(store.path, 0o400) == 0)
        let error = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: directory.path) }
        #expect(error?.code == .storage)
        #expect(error?.message.contains(store.path) == true)
        #expect(error?.message.contains("read-only") == true)
        #expect(Fixtures.bytes(of: store.path) == before)

        // Doing what the message says is enough: SQLite made -wal and -shm read-only like the
        // database, and the message names those too.
        #expect(chmod(store.path, 0o600) == 0)
        let still = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: directory.path) }
        let command = try #require(still?.message.firstMatch(of: #/chmod u\+w ([^)]*)\)/#)?.output.1)
        for file in command.split(separator: " ") { #expect(chmod(String(file), 0o600) == 0) }
        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        #expect(try reopened.loadAll() == [Fixtures.oneOff])
    }

    @Test(.enabled(if: !isRoot, "runs as root, which permission bits do not stop"))
    func aReadOnlyDirectoryIsReportedAndKept() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(Fixtures.oneOff)
        store.close()
        let before = Fixtures.bytes(of: store.path)
        #expect(chmod(directory.path, 0o500) == 0)
        let error = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: directory.path) }
        #expect(error?.code == .storage)
        #expect(error?.message.contains(store.path) == true)
        #expect(Fixtures.bytes(of: store.path) == before)
    }

    @Test func aFullDiskFailsTheSaveAndKeepsWhatWasThere() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(Fixtures.oneOff)
        try store.save(Fixtures.simple("small", sequence: 1))
        try store.limitGrowth(toPages: 0)

        var big = Fixtures.simple("big", sequence: 2)
        big.options["payload"] = .string(String(repeating: "x", count: 256 * 1024))
        let error = #expect(throws: SyncError.self) { try store.save(big) }
        #expect(error?.code == .storage)
        #expect(error?.message.contains("full") == true)
        #expect(error?.message.contains(store.path) == true)
        var replacing = Fixtures.oneOff
        replacing.options["payload"] = .string(String(repeating: "y", count: 256 * 1024))
        #expect(throws: SyncError.self) { try store.save(replacing) }
        #expect(Fixtures.bySequence(try store.loadAll()) == [Fixtures.simple("small", sequence: 1), Fixtures.oneOff])
        store.close()

        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        #expect(
            Fixtures.bySequence(try reopened.loadAll()) == [Fixtures.simple("small", sequence: 1), Fixtures.oneOff])
    }

    @Test func aDatabaseFromANewerVersionIsNotTouched() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(Fixtures.oneOff)
        store.close()
        let raw = try DatabaseQueue(path: store.path)
        try raw.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9: from the future')")
        }
        try raw.close()

        let error = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: directory.path) }
        #expect(error?.code == .storage)
        #expect(error?.message.contains("newer bgsync") == true)
    }

    /// What loading gives for a store whose row "edited" was changed by `sql`, by hand, beside
    /// an untouched one; and the repair that removed the edited row, if one did.
    func loadAfterEditing(_ sql: String) throws -> (loaded: [Registration], repair: StoreRepair?, kept: String?) {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.save(Fixtures.simple("edited", sequence: 1))
        try store.save(Fixtures.simple("untouched", sequence: 2))
        store.close()
        let raw = try DatabaseQueue(path: store.path)
        try raw.write { db in try db.execute(sql: sql + " WHERE tag = 'edited'") }
        try raw.close()

        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        let loaded = try reopened.loadAll()
        // What the kept copy holds of the edited row, read with SQLite.
        let kept = try reopened.repair.map { repair in
            let copy = try DatabaseQueue(path: repair.keptAs)
            defer { try? copy.close() }
            return try copy.read { db in
                try String.fetchOne(
                    db, sql: "SELECT quote(\(sql.split(separator: " ")[3])) FROM registrations WHERE tag = 'edited'")
            }
        }
        // Removed for good: the next start finds nothing to repair.
        let again = try SQLiteRegistrationStore(directory: directory.path)
        defer { again.close() }
        #expect(try again.loadAll().map(\.key.tag) == loaded.map(\.key.tag))
        #expect(again.repair == nil)
        return (loaded, reopened.repair, kept ?? nil)
    }

    @Test func aRowEditedIntoNonsenseIsRemovedNamedAndKeptAside() throws {
        let (loaded, repair, kept) = try loadAfterEditing("UPDATE registrations SET state = 'exploded'")
        #expect(loaded.map(\.key.tag) == ["untouched"])
        #expect(repair?.damage.contains("column state of org.example.Mail/edited is 'exploded'") == true)
        #expect(repair?.saved == 1 && repair?.lostByApp == ["org.example.Mail": 1])
        #expect(kept == "'exploded'", "the kept copy has the row as it was")
    }

    @Test(
        "a column of the wrong type is named by key, column and value, not trapped on",
        arguments: [
            ("attempts = 'many'", "attempts", "'many'"), ("sequence = 1.5", "sequence", "1.5"),
            ("max_attempts = 5000000000", "max_attempts", "5000000000"),
            ("next_attempt = 'soon'", "next_attempt", "'soon'"), ("next_attempt = -1e999", "next_attempt", "-inf"),
            ("handler = X'FF00'", "handler", "a BLOB of 2 bytes, not UTF-8"),
        ])
    func aColumnOfTheWrongType(assignment: String, column: String, found: String) throws {
        let (loaded, repair, _) = try loadAfterEditing("UPDATE registrations SET \(assignment)")
        #expect(loaded.map(\.key.tag) == ["untouched"])
        #expect(repair?.damage.contains("column \(column) of org.example.Mail/edited is \(found)") == true)
    }

    @Test func textWrittenAsABlobOfUTF8StillLoads() throws {
        let (loaded, repair, _) = try loadAfterEditing("UPDATE registrations SET handler = CAST(handler AS BLOB)")
        #expect(loaded.map(\.handler) == ["exec", "exec"])
        #expect(repair == nil)
    }
}
