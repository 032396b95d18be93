// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Foundation
import GRDB
import Testing

@testable import BGSyncStore

/// A damaged registration database is repaired when the store opens: kept aside byte for byte,
/// every row that can still be read and passes the store's checks saved into a new file. Each
/// kind of damage is made on a real file of a few thousand rows written by the store.
@Suite struct StoreRepairTests {
    static let rowCount = 3000
    /// Rows whose options spill onto overflow pages (every 150th).
    static let bigEvery = 150

    /// The registrations the tests write: ten apps, a few with options over a page long.
    static func registration(_ index: Int, prefix: String = "t") -> Registration {
        var options: [String: Value] = ["n": .int32(Int32(index)), "path": .string("/home/u/outbox/\(index)")]
        if index % bigEvery == 0 { options["blob"] = .string(String(repeating: "x\(index % 10)", count: 5000)) }
        return Registration(
            key: RegistrationKey(appID: "org.example.App\(index % 10)", tag: "\(prefix)\(index)", kind: .oneOff),
            handler: "exec", options: options, maxAttempts: 3, sequence: Int64(index))
    }

    /// A database of `rowCount` registrations, closed (its log checkpointed into it).
    static func writtenDatabase(_ directory: TemporaryDirectory) throws -> (path: String, rows: [Registration]) {
        let store = try SQLiteRegistrationStore(directory: directory.path)
        let rows = (0..<rowCount).map { registration($0) }
        try commit(store, rows)
        store.close()
        return (store.path, rows)
    }

    static func commit(_ store: SQLiteRegistrationStore, _ rows: [Registration]) throws {
        var failure: SyncError?
        store.commit(rows.map { .save($0) }) { failure = $0 }
        if let failure { throw failure }
    }

    static func load(_ store: SQLiteRegistrationStore) throws -> [RegistrationKey: Registration] {
        var loaded: [RegistrationKey: Registration] = [:]
        try store.forEachStored { loaded[$0.key] = $0 }
        return loaded
    }

    /// Pages of the registrations table by kind, from SQLite's own dbstat, and their cell counts.
    static func pages(_ path: String, type: String) throws -> [(page: Int, cells: Int)] {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT pageno, ncell FROM dbstat WHERE name = 'registrations' AND pagetype = ? ORDER BY pageno",
                arguments: [type]
            ).map { (page: $0[0], cells: $0[1]) }
        }
    }

    static func overwrite(_ path: String, page: Int, pageSize: Int = 4096) throws {
        var bytes = try #require(Fixtures.bytes(of: path))
        for offset in (page - 1) * pageSize..<page * pageSize {
            bytes[offset] = UInt8(truncatingIfNeeded: offset &* 7 &+ 13)
        }
        try bytes.write(to: URL(fileURLWithPath: path))
    }

    /// Opens the damaged database through the store and checks what every repair promises: the
    /// damaged file kept byte for byte, the new one sound and serving exactly `expected`
    /// (the registrations as written), and the counts adding up.
    static func repairAndCheck(
        _ directory: TemporaryDirectory, path: String, written: [Registration], expected: Set<RegistrationKey>
    ) throws -> StoreRepair {
        let damaged = try #require(Fixtures.bytes(of: path))
        let damagedLog = Fixtures.bytes(of: path + "-wal")
        let store = try SQLiteRegistrationStore(directory: directory.path)
        let repair = try #require(store.repair)
        let loaded = try load(store)
        store.close()
        #expect(Set(loaded.keys) == expected)
        let byKey = Dictionary(uniqueKeysWithValues: written.map { ($0.key, $0.durable) })
        let changed = loaded.values.filter { $0 != byKey[$0.key] }
        #expect(changed.isEmpty, "saved rows differ from what was written: \(changed.prefix(2))")
        #expect(repair.saved == loaded.count)
        #expect(Fixtures.bytes(of: repair.keptAs) == damaged)
        #expect(repair.keptAs.hasPrefix(path + ".damaged-"))
        if let damagedLog { #expect(Fixtures.bytes(of: repair.keptAs + "-wal") == damagedLog) }
        // The new file is sound and opens without another repair.
        let again = try SQLiteRegistrationStore(directory: directory.path)
        #expect(again.repair == nil)
        #expect(try again.pragma("integrity_check") == "ok")
        again.close()
        return repair
    }

    @Test func anOverwrittenLeafPageLosesOnlyItsOwnRows() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, rows) = try Self.writtenDatabase(directory)
        let leaves = try Self.pages(path, type: "leaf")
        let victim = leaves[leaves.count / 2]
        // The rows on that page, by key, from SQLite before the damage.
        let onPage = try Set(Self.keysOnLeaf(path, victim.page))
        #expect(onPage.count == victim.cells)
        try Self.overwrite(path, page: victim.page)

        let expected = Set(rows.map(\.key)).subtracting(onPage)
        let repair = try Self.repairAndCheck(directory, path: path, written: rows, expected: expected)
        #expect(repair.saved == Self.rowCount - victim.cells)
        #expect(repair.lost == victim.cells, "the index names every lost row")
        var lostByApp: [String: Int] = [:]
        for key in onPage { lostByApp[key.appID, default: 0] += 1 }
        #expect(repair.lostByApp == lostByApp)
        #expect(repair.damage.contains("malformed") || repair.damage.contains("quick_check"))
        print("overwritten leaf page \(victim.page): \(repair.saved) of \(Self.rowCount) saved, \(repair.lost) lost")
    }

    @Test func anOverwrittenInteriorPageLosesNothing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, rows) = try Self.writtenDatabase(directory)
        // The table's root: SQLite reaches no row without it; the leaves are all still there.
        let root = try #require(try Self.pages(path, type: "internal").first)
        try Self.overwrite(path, page: root.page)
        let repair = try Self.repairAndCheck(directory, path: path, written: rows, expected: Set(rows.map(\.key)))
        #expect(repair.saved == Self.rowCount)
        #expect(repair.lost == 0)
    }

    @Test func aZeroedHeaderLosesNothing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, rows) = try Self.writtenDatabase(directory)
        var bytes = try #require(Fixtures.bytes(of: path))
        bytes.replaceSubrange(0..<100, with: Data(count: 100))
        try bytes.write(to: URL(fileURLWithPath: path))
        let repair = try Self.repairAndCheck(directory, path: path, written: rows, expected: Set(rows.map(\.key)))
        #expect(repair.saved == Self.rowCount)
        #expect(repair.damage.contains("not a database"))
    }

    @Test func unregisteredRowsOnFreedPagesDoNotComeBack() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        let rows = (0..<Self.rowCount).map { Self.registration($0) }
        try Self.commit(store, rows)
        // Debian's libsqlite3 is built with SQLITE_SECURE_DELETE (freed pages zeroed: measured,
        // every freed page of this test reads as page kind 0 with it on); other builds leave a
        // freed page as it was, cells included. Off, as there, on the store's one connection.
        #expect(try store.pragma("secure_delete = 0") == "0")
        // Every other row of a third of the table: leaves merge as they empty, and the pages they
        // leave still hold copies of rows deleted after the merge.
        let removed = stride(from: 1000, to: 2000, by: 2).map { rows[$0] }
        var failure: SyncError?
        store.commit(removed.map { .delete($0.key) }) { failure = $0 }
        if let failure { throw failure }
        let freelistCount = try store.pragma("freelist_count")
        let freePages = try #require(freelistCount.flatMap { Int($0) })
        let path = store.path
        store.close()
        #expect(freePages > 10, "the deletes freed pages")
        let leaves = try Self.pages(path, type: "leaf")
        let victim = leaves[leaves.count / 2]
        let onPage = try Set(Self.keysOnLeaf(path, victim.page))
        try Self.overwrite(path, page: victim.page)

        let expected = Set(rows.map(\.key)).subtracting(removed.map(\.key)).subtracting(onPage)
        let repair = try Self.repairAndCheck(directory, path: path, written: rows, expected: expected)
        #expect(repair.lost == onPage.count, "the freed pages' index cells are not counted as lost rows")
        print("\(freePages) free pages skipped: \(repair.saved) saved, \(repair.lost) lost")
    }

    @Test func anOverflowChainThatLoopsLosesItsRowOnly() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, rows) = try Self.writtenDatabase(directory)
        // An overflow page made to point at itself (the chain through it loops), and a leaf page
        // overwritten so that the file needs repair.
        let looping = try #require(try Self.pages(path, type: "overflow").first).page
        var bytes = try #require(Fixtures.bytes(of: path))
        let at = (looping - 1) * 4096
        bytes.replaceSubrange(at..<at + 4, with: withUnsafeBytes(of: UInt32(looping).bigEndian) { Data($0) })
        try bytes.write(to: URL(fileURLWithPath: path))
        let leaves = try Self.pages(path, type: "leaf")
        let victim = leaves[leaves.count / 2]
        let onPage = try Set(Self.keysOnLeaf(path, victim.page))
        try Self.overwrite(path, page: victim.page)

        let store = try SQLiteRegistrationStore(directory: directory.path)
        let repair = try #require(store.repair)
        let loaded = try Self.load(store)
        store.close()
        // Lost: the page's rows and the one big row whose chain went through the looping page.
        let big = Set(rows.filter { $0.sequence % Int64(Self.bigEvery) == 0 }.map(\.key))
        let lost = Set(rows.map(\.key)).subtracting(loaded.keys).subtracting(onPage)
        #expect(lost.count == 1 && lost.isSubset(of: big), "lost besides the page's rows: \(lost)")
        #expect(repair.lost == onPage.count + 1)
        #expect(loaded.count == Self.rowCount - onPage.count - 1)
    }

    /// A crafted file of 100,000 512-byte pages: pages 2 to 5 table leaves of 8 cells each,
    /// every cell declaring a payload of 50,000 overflow pages (under the file's size) whose
    /// chain starts at page 6; page 6 points at itself (`loop`) or nowhere. Either way every cell
    /// is lost; followed page by page, the loop cost 50,000 page reads per cell.
    static func craftedOverflowFile(loop: Bool) -> [UInt8] {
        let pageSize = 512
        var bytes = [UInt8](repeating: 0, count: 100_000 * pageSize)
        bytes.replaceSubrange(0..<16, with: Array("SQLite format 3\0".utf8))
        bytes[16] = 0x02  // page size 512
        // A payload of 39 + 508 * k bytes keeps 39 on the page (minLocal for 512-byte pages).
        let size = 39 + 508 * 50_000
        let cells = 8
        let cellLength = 4 + 1 + 39 + 4
        let contentStart = pageSize - cells * cellLength
        for page in 2...5 {
            let leaf = (page - 1) * pageSize
            bytes[leaf] = 0x0D
            bytes[leaf + 4] = UInt8(cells)
            bytes[leaf + 5] = UInt8(contentStart >> 8)
            bytes[leaf + 6] = UInt8(contentStart & 0xFF)
            for cell in 0..<cells {
                let offset = contentStart + cell * cellLength
                bytes[leaf + 8 + cell * 2] = UInt8(offset >> 8)
                bytes[leaf + 9 + cell * 2] = UInt8(offset & 0xFF)
                // The size as a 4-byte varint (7 bits a byte), the rowid, 39 bytes on the page,
                // then the first overflow page: 6.
                let varint: [UInt8] = [
                    UInt8(0x80 | (size >> 21) & 0x7F), UInt8(0x80 | (size >> 14) & 0x7F),
                    UInt8(0x80 | (size >> 7) & 0x7F), UInt8(size & 0x7F),
                ]
                var at = leaf + offset
                for byte in varint + [UInt8(page * cells + cell)] {
                    bytes[at] = byte
                    at += 1
                }
                at += 39
                bytes.replaceSubrange(at..<at + 4, with: [0, 0, 0, 6])
            }
        }
        if loop { bytes.replaceSubrange(5 * pageSize..<5 * pageSize + 4, with: [0, 0, 0, 6]) }
        return bytes
    }

    @Test func aLoopingOverflowChainCostsNoMoreThanAShortOne() {
        func fastest(_ bytes: [UInt8]) -> (seconds: Double, found: PageSalvage.Found) {
            var best = Double.infinity
            var found = PageSalvage.Found()
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                found = PageSalvage.scan(database: bytes, wal: nil)
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return (best, found)
        }
        let short = fastest(Self.craftedOverflowFile(loop: false))
        let looping = fastest(Self.craftedOverflowFile(loop: true))
        #expect(short.found.unreadableCells == 32 && looping.found.unreadableCells == 32, "every cell lost")
        #expect(looping.found.tableRows.isEmpty)
        // Measured: 0.061 s looping, 0.053 s ending at once (both scan the 100,000 pages once);
        // the chain followed page by page (before the set of pages seen) took 1.45 s against 0.055 s.
        #expect(looping.seconds < short.seconds * 5, "looping chain \(looping.seconds) s, short one \(short.seconds) s")
        print("crafted overflow chain: looping \(looping.seconds) s, ending at once \(short.seconds) s")
    }

    @Test func aFileCutShortKeepsTheRowsOfItsWholePages() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, rows) = try Self.writtenDatabase(directory)
        let bytes = try #require(Fixtures.bytes(of: path))
        let cut = bytes.count / 2 + 1000  // mid-page
        let wholePages = cut / 4096
        let leaves = try Self.pages(path, type: "leaf")
        var expected = Set<RegistrationKey>()
        for leaf in leaves where leaf.page <= wholePages { expected.formUnion(try Self.keysOnLeaf(path, leaf.page)) }
        // A big row whose overflow pages lie past the cut is lost with them.
        let overflowPages = try Self.overflowPages(path)
        let cutOff = Set(rows.filter { overflowPages[$0.key, default: []].contains { $0 > wholePages } }.map(\.key))
        expected.subtract(cutOff)
        try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))

        let repair = try Self.repairAndCheck(directory, path: path, written: rows, expected: expected)
        #expect(repair.saved == expected.count)
        #expect(repair.saved > Self.rowCount / 3, "half the file holds about half the rows")
        print("file cut to \(cut) of \(bytes.count) bytes: \(repair.saved) of \(Self.rowCount) saved")
    }

    /// Which frame of the log is damaged: one a third of the way in (a later commit wrote its
    /// page again), the last copy of a page, which no later frame replaces, or one a third of
    /// the way in that carries another log's salt (a frame that never reached the disk, over one
    /// of an earlier log).
    enum Frame: String, CaseIterable { case aThirdIn, lastCopyOfAPage, staleSalt }

    @Test(arguments: Frame.allCases) func aDamagedFrameInTheLogLosesAtMostThatPage(_ which: Frame) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var (path, rows) = try Self.writtenDatabase(directory)
        // Ten more commits, left in the log: copy the files as a crash would leave them.
        let store = try SQLiteRegistrationStore(directory: directory.path)
        var later: [Registration] = []
        for batch in 0..<10 {
            let more = (0..<100).map { Self.registration(batch * 100 + $0, prefix: "w") }
            try Self.commit(store, more)
            later += more
        }
        let crashed = TemporaryDirectory()
        defer { crashed.remove() }
        let crashedPath = crashed.file(SQLiteRegistrationStore.fileName)
        try FileManager.default.copyItem(atPath: path, toPath: crashedPath)
        try FileManager.default.copyItem(atPath: path + "-wal", toPath: crashedPath + "-wal")
        store.close()
        path = crashedPath
        rows += later

        var log = try #require(Fixtures.bytes(of: path + "-wal"))
        let frameSize = 24 + 4096
        let frames = (log.count - 32) / frameSize
        #expect(frames > 30)
        func word(_ at: Int) -> Int { log[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        let pageOf = (0..<frames).map { word(32 + $0 * frameSize) }
        let commits = (0..<frames).map { word(32 + $0 * frameSize + 4) != 0 }
        let damagedFrame: Int
        switch which {
        case .aThirdIn, .staleSalt: damagedFrame = frames / 3
        case .lastCopyOfAPage:
            // Not a commit frame (a damaged commit frame only ends the log early, as a crash would).
            damagedFrame = try #require(
                (0..<frames).last { !commits[$0] && !pageOf[($0 + 1)...].contains(pageOf[$0]) })
        }
        // The page's bytes, or the frame header's salt.
        let at = 32 + damagedFrame * frameSize + (which == .staleSalt ? 8 : 24 + 2000)
        for offset in at..<at + (which == .staleSalt ? 8 : 64) { log[offset] ^= 0x5A }
        try log.write(to: URL(fileURLWithPath: path + "-wal"))
        // What SQLite alone reads from it: the commits before the damaged frame.
        let sqliteReads = try Self.countReadOnly(path)
        #expect(sqliteReads < rows.count)

        let store2 = try SQLiteRegistrationStore(directory: crashed.path)
        let repair = try #require(store2.repair)
        let loaded = try Self.load(store2)
        store2.close()
        #expect(repair.damage.contains("write-ahead log"))
        #expect(loaded.count == repair.saved)
        #expect(repair.saved > sqliteReads)
        // Only what the damaged frame's page held is lost, and the index (read from the log)
        // names it: a 4 KiB page holds at most a few dozen of these rows.
        #expect(repair.saved + repair.lost == rows.count)
        #expect(repair.lost <= 60)
        let byKey = Dictionary(uniqueKeysWithValues: rows.map { ($0.key, $0.durable) })
        #expect(loaded.values.allSatisfy { $0 == byKey[$0.key] })
        #expect(Fixtures.bytes(of: repair.keptAs + "-wal") == log)
        print(
            "damaged log frame \(damagedFrame) of \(frames) (\(which)): SQLite reads \(sqliteReads) of \(rows.count) rows, the repair saved \(repair.saved), lost \(repair.lost)"
        )
    }

    @Test func aRowThatFailsItsChecksIsLostNotGuessed() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, rows) = try Self.writtenDatabase(directory)
        // One row's state edited in place into nonsense of the same length ('pending' → 'pendinX'),
        // and a leaf page elsewhere overwritten so that the file needs repair.
        var bytes = try #require(Fixtures.bytes(of: path))
        let leaves = try Self.pages(path, type: "leaf")
        let onEdited = try Set(Self.keysOnLeaf(path, leaves[1].page))
        let needle = Data("pending".utf8)
        let pageRange = (leaves[1].page - 1) * 4096..<leaves[1].page * 4096
        let found = try #require(bytes.range(of: needle, in: pageRange))
        bytes.replaceSubrange(found, with: Data("pendinX".utf8))
        try bytes.write(to: URL(fileURLWithPath: path))
        let victim = leaves[leaves.count - 2]
        let onVictim = try Set(Self.keysOnLeaf(path, victim.page))
        try Self.overwrite(path, page: victim.page)

        let store = try SQLiteRegistrationStore(directory: directory.path)
        let repair = try #require(store.repair)
        let loaded = try Self.load(store)
        store.close()
        let lost = Set(rows.map(\.key)).subtracting(loaded.keys)
        let rejected = lost.subtracting(onVictim)
        #expect(rejected.count == 1 && rejected.isSubset(of: onEdited), "exactly the edited row besides the page's")
        #expect(repair.lost == onVictim.count + 1)
        #expect(loaded.values.allSatisfy { $0.state == .pending })
    }

    @Test func aDirectoryInPlaceOfTheNewFileStopsTheRepairAndChangesNothing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, _) = try Self.writtenDatabase(directory)
        try Self.overwrite(path, page: 3)
        let damaged = try #require(Fixtures.bytes(of: path))
        // Where the repair writes the new database, something it may not remove.
        #expect(mkdir(path + ".repairing", 0o700) == 0)
        let error = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: directory.path) }
        #expect(error?.code == .storage)
        #expect(error?.message.contains("could not repair it") == true)
        #expect(error?.message.contains("Nothing was changed") == true)
        #expect(Fixtures.bytes(of: path) == damaged)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == ["registrations.sqlite3", "registrations.sqlite3.repairing"])
    }

    @Test(.enabled(if: getuid() != 0, "runs as root, which permission bits do not stop"))
    func aStateDirectoryNotWritableStopsTheRepairAndChangesNothing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, _) = try Self.writtenDatabase(directory)
        try Self.overwrite(path, page: 3)
        let damaged = try #require(Fixtures.bytes(of: path))
        #expect(chmod(directory.path, 0o500) == 0)
        let error = #expect(throws: SyncError.self) { try SQLiteRegistrationStore(directory: directory.path) }
        #expect(error?.message.contains("could not repair it") == true)
        #expect(Fixtures.bytes(of: path) == damaged)
    }

    @Test func repeatedRepairsKeepOnlyTheNewestDamagedFiles() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try Self.commit(store, (0..<200).map { Self.registration($0) })
        store.close()
        var kept: [String] = []
        for round in 0..<5 {
            // A file of garbage each time, told apart by its round.
            let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ round) })
            #expect(FileManager.default.createFile(atPath: store.path, contents: garbage))
            let repaired = try SQLiteRegistrationStore(directory: directory.path)
            kept.append(try #require(repaired.repair).keptAs)
            repaired.close()
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        let damaged = names.filter { $0.contains(".damaged-") }.sorted()
        #expect(damaged.count == DatabaseRepair.keptAtMost)
        #expect(damaged == kept.suffix(DatabaseRepair.keptAtMost).map { ($0 as NSString).lastPathComponent }.sorted())
    }

    @Test func aHealthyDatabaseWithALogIsNotRepaired() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, _) = try Self.writtenDatabase(directory)
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try Self.commit(store, (0..<300).map { Self.registration($0, prefix: "w") })
        let crashed = TemporaryDirectory()
        defer { crashed.remove() }
        let crashedPath = crashed.file(SQLiteRegistrationStore.fileName)
        try FileManager.default.copyItem(atPath: path, toPath: crashedPath)
        try FileManager.default.copyItem(atPath: path + "-wal", toPath: crashedPath + "-wal")
        store.close()
        let reopened = try SQLiteRegistrationStore(directory: crashed.path)
        #expect(reopened.repair == nil)
        #expect(try Self.load(reopened).count == Self.rowCount + 300)
        reopened.close()
    }

    /// SplitMix64: the same damage on every run.
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func randomDamageNeverStopsTheStoreAndEveryRowServedWasWritten() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        let rows = (0..<400).map { Self.registration($0 * 15) }  // every 10th has overflow pages
        try Self.commit(store, Array(rows.prefix(300)))
        store.close()
        // A log too: 100 more rows committed and left in it.
        let again = try SQLiteRegistrationStore(directory: directory.path)
        try Self.commit(again, Array(rows.suffix(100)))
        let database = try #require(Fixtures.bytes(of: again.path))
        let log = try #require(Fixtures.bytes(of: again.path + "-wal"))
        again.close()
        let written = Set(rows.map(\.key))
        var random = Random(state: 2026)
        var savedTotal = 0
        var unseen = 0
        for round in 0..<40 {
            var damagedDatabase = database
            var damagedLog = log
            // A few runs of random bytes, or zeros, in either file; sometimes a cut.
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let inLog = Bool.random(using: &random)
                let count = (inLog ? damagedLog : damagedDatabase).count
                let start = Int.random(in: 0..<count, using: &random)
                let length = min(count - start, Int.random(in: 1...6000, using: &random))
                let zero = Bool.random(using: &random)
                for offset in start..<start + length {
                    let byte = zero ? 0 : UInt8.random(in: 0...255, using: &random)
                    if inLog { damagedLog[offset] = byte } else { damagedDatabase[offset] = byte }
                }
            }
            if round % 5 == 4 {
                damagedDatabase = damagedDatabase.prefix(Int.random(in: 0..<database.count, using: &random))
            }
            let place = TemporaryDirectory()
            defer { place.remove() }
            let path = place.file(SQLiteRegistrationStore.fileName)
            try damagedDatabase.write(to: URL(fileURLWithPath: path))
            try damagedLog.write(to: URL(fileURLWithPath: path + "-wal"))
            let opened = try SQLiteRegistrationStore(directory: place.path)
            defer { opened.close() }
            // Damage quick_check does not see (a value garbled on an overflow page) is found as
            // the rows load: those rows are removed then.
            let loaded = try Self.load(opened)
            if opened.repair?.damage.contains("fail their checks") == true { unseen += 1 }
            // Random bytes can turn into a valid-looking key only by an astronomically unlikely
            // chance; a key that was never written would be a guessed row.
            #expect(Set(loaded.keys).isSubset(of: written), "round \(round): a row nobody wrote")
            savedTotal += loaded.count
        }
        print(
            "random damage: \(savedTotal) rows served over 40 damaged copies of \(rows.count); \(unseen) copies with a garbled value quick_check does not see, repaired as they loaded"
        )
    }

    // MARK: - Reading the intact file with SQLite

    /// The keys of the rows on one leaf page, from SQLite before the damage: rows in rowid order
    /// fill the leaves in b-tree order, which dbstat's path gives (fixed-width hex, so it sorts).
    static func keysOnLeaf(_ path: String, _ page: Int) throws -> [RegistrationKey] {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            let ordered = try Row.fetchAll(
                db,
                sql: "SELECT pageno, ncell FROM dbstat WHERE name = 'registrations' AND pagetype = 'leaf' ORDER BY path"
            )
            var skip = 0
            var cells = 0
            for row in ordered {
                let number: Int = row[0]
                if number == page {
                    cells = row[1]
                    break
                }
                skip += row[1] as Int
            }
            return try Row.fetchAll(
                db, sql: "SELECT app_id, kind, tag FROM registrations ORDER BY rowid LIMIT ? OFFSET ?",
                arguments: [cells, skip]
            ).map { RegistrationKey(appID: $0[0], tag: $0[2], kind: RegistrationKind(rawValue: $0[1])!) }
        }
    }

    /// Overflow pages of each big row (dbstat's overflow paths extend their leaf cell's path).
    static func overflowPages(_ path: String) throws -> [RegistrationKey: [Int]] {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            let leaves = try Row.fetchAll(
                db,
                sql: "SELECT path, ncell FROM dbstat WHERE name = 'registrations' AND pagetype = 'leaf' ORDER BY path")
            let overflow = try Row.fetchAll(
                db, sql: "SELECT path, pageno FROM dbstat WHERE name = 'registrations' AND pagetype = 'overflow'")
            // Rows before each leaf, in b-tree order.
            var before: [String: Int] = [:]
            var total = 0
            for leaf in leaves {
                before[leaf[0]] = total
                total += leaf[1] as Int
            }
            var result: [RegistrationKey: [Int]] = [:]
            for page in overflow {
                // "/000/003+000001": leaf path, '+', the cell's index on it (hex), then the page.
                let text: String = page[0]
                let leafPath = String(text.prefix { $0 != "+" })
                let cellText = text.split(separator: "+").dropFirst().first.map { String($0.split(separator: "/")[0]) }
                guard let offset = before[leafPath], let cellText, let cell = Int(cellText, radix: 16) else { continue }
                let key = try Row.fetchOne(
                    db, sql: "SELECT app_id, kind, tag FROM registrations ORDER BY rowid LIMIT 1 OFFSET ?",
                    arguments: [offset + cell]
                ).map { RegistrationKey(appID: $0[0], tag: $0[2], kind: RegistrationKind(rawValue: $0[1])!) }
                if let key { result[key, default: []].append(page[1]) }
            }
            return result
        }
    }

    static func countReadOnly(_ path: String) throws -> Int {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM registrations") ?? 0 }
    }
}
