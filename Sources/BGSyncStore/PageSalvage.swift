// SPDX-License-Identifier: Apache-2.0

/// Reads the records still on the pages of a damaged SQLite file (and its write-ahead log)
/// without going through SQLite's b-trees: every page that looks like a b-tree page is decoded
/// cell by cell, so a damaged page loses only its own rows, whatever the damage did to the
/// pages that point at it.
///
/// Why not SQLite itself: Debian 12's libsqlite3 (3.40) has neither the recovery extension
/// (`sqlite3_recover_*`, in ext/recover and not in the library) nor the `sqlite_dbpage` table it
/// reads through, so the `sqlite3` CLI's `.recover` fails there with "SQL logic error". Reading
/// through SQLite rowid by rowid (`cell_size_check` on, each SQLITE_CORRUPT skipped) saves
/// nothing from a file with a zeroed header or cut short (every read fails), only what the
/// b-tree above still reaches from an overwritten page (measured with the same table, 3,000 rows,
/// one leaf page overwritten: 2,953 saved; an overwritten root page loses them all), and from a
/// log with a damaged frame only the commits before it (measured: 3,300 of 4,000). This reader
/// saves every row outside the damaged page (StoreRepairTests: all 3,000 through a zeroed header
/// or an overwritten root, the rows of the whole pages of a file cut in half, all 4,000 past a
/// damaged log frame whose page a later commit wrote again). The format is SQLite's documented file format
/// (https://sqlite.org/fileformat2.html), of which this reads only b-tree pages, records,
/// overflow chains and the WAL's frames.
///
/// Everything read is checked against the format (a cell's size, a record's header, an overflow
/// chain's length, UTF-8 of text); a cell that fails any check is counted, not guessed at.
struct PageSalvage {
    enum SQLValue: Equatable {
        case null
        case integer(Int64)
        case real(Double)
        case text(String)
        case blob([UInt8])

        var text: String? {
            if case .text(let text) = self { return text }
            return nil
        }
    }

    /// A cell of a table b-tree leaf: its rowid and its record.
    struct TableRow {
        var rowid: Int64
        var values: [SQLValue]
    }

    /// What the pages hold.
    struct Found {
        var tableRows: [TableRow] = []
        /// Records of index b-tree cells (leaf and interior): for the registrations table's
        /// primary key, (app_id, kind, tag, rowid) of every row, damaged ones included.
        var indexRecords: [[SQLValue]] = []
        var pageSize = 0
        var pageCount = 0
        /// Cells on pages that look like b-tree pages but fail a check.
        var unreadableCells = 0
        /// WAL frames applied on top of the database file, and those skipped as damaged.
        var walFramesApplied = 0
        var walFramesDamaged = 0
        /// Pages on SQLite's freelist, left unread.
        var freePages = 0
    }

    // MARK: - Reading

    /// Decodes every cell of every b-tree page of `database` as the WAL (if any) leaves it.
    static func scan(database: [UInt8], wal: [UInt8]?) -> Found {
        var found = Found()
        let header = DatabaseHeader(database)
        let walLog = wal.flatMap(WALLog.init)
        let pageSize = header?.pageSize ?? walLog?.pageSize ?? probePageSize(database)
        let reserved = header?.reserved ?? 0
        found.pageSize = pageSize
        var pages = PageImage(database: database, pageSize: pageSize)
        if let walLog, walLog.pageSize == pageSize {
            let applied = walLog.apply(to: &pages)
            found.walFramesApplied = applied.applied
            found.walFramesDamaged = applied.damaged
        }
        found.pageCount = pages.count
        let reader = PageReader(pages: pages, usable: pageSize - reserved)
        let free = freelist(pages)
        found.freePages = free.count
        for number in 1...max(1, pages.count) where !free.contains(number) {
            reader.read(page: number, into: &found)
        }
        return found
    }

    /// The pages on SQLite's freelist, as the header of page 1 (the log's, if it wrote one) gives
    /// it: freed pages keep the cells they held (SQLite does not wipe them unless secure_delete is
    /// on), so reading them would bring back rows that were deleted. Without an intact header
    /// the freelist cannot be known and this is empty. A trunk page that fails a check (a page
    /// number outside the file, a page seen before, more leaves than fit, more pages than the
    /// header counts) ends the walk there: what it lists is not trusted, so damage to the list can
    /// bring removed rows back but not hide live ones.
    static func freelist(_ pages: PageImage) -> Set<Int> {
        let first = pages.page(1)
        guard let header = DatabaseHeader(Array(first)), header.pageSize == pages.pageSize else { return [] }
        let usable = header.pageSize - header.reserved
        let total = Int(readU32(first, 36))
        var free = Set<Int>()
        var trunk = Int(readU32(first, 32))
        while trunk != 0 {
            guard trunk >= 2, trunk <= pages.count, !free.contains(trunk) else { break }
            let page = pages.page(trunk)
            guard page.count >= usable else { break }
            let count = Int(readU32(page, 4))
            guard count <= (usable - 8) / 4, free.count + 1 + count <= total else { break }
            let leaves = (0..<count).map { Int(readU32(page, 8 + 4 * $0)) }
            guard leaves.allSatisfy({ $0 >= 2 && $0 <= pages.count && $0 != trunk && !free.contains($0) }),
                Set(leaves).count == count
            else { break }
            free.insert(trunk)
            free.formUnion(leaves)
            trunk = Int(readU32(page, 0))
        }
        return free
    }

    /// The page size when the header cannot tell it (zeroed): the smallest size under which
    /// nearly as large a share of the file's pages read as b-tree pages as under the best.
    /// A size larger than the real one reads as well (each of its "pages" starts with a real
    /// page), so the share alone cannot choose, and the share times the size (the first rule)
    /// chose 8192 for a 4096-byte database whose pages at even positions were overflow or free
    /// pages; a smaller size reads the inside of pages, and at most half its pages are real.
    static func probePageSize(_ bytes: [UInt8]) -> Int {
        var shares: [(size: Int, share: Double)] = []
        for size in [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536] {
            let image = PageImage(database: bytes, pageSize: size)
            guard image.count > 0 else { continue }
            var plausible = 0
            for number in 1...image.count where PageReader.plausibleHeader(image.page(number), number: number) != nil {
                plausible += 1
            }
            shares.append((size, Double(plausible) / Double(image.count)))
        }
        guard let best = shares.map(\.share).max(), best > 0 else { return 4096 }
        return shares.first { $0.share >= 0.75 * best }?.size ?? 4096
    }

    /// The 100-byte header, if it is one.
    struct DatabaseHeader {
        var pageSize: Int
        var reserved: Int

        init?(_ bytes: [UInt8]) {
            guard bytes.count >= 100, Array(bytes[0..<16]) == Array("SQLite format 3\0".utf8) else { return nil }
            let raw = Int(bytes[16]) << 8 | Int(bytes[17])
            let size = raw == 1 ? 65536 : raw
            guard size >= 512, size <= 65536, size & (size - 1) == 0, Int(bytes[20]) < size - 480 else { return nil }
            pageSize = size
            reserved = Int(bytes[20])
        }
    }

    /// Pages by number (1-based), the database file's overlaid with the WAL's.
    struct PageImage {
        let pageSize: Int
        private var file: [UInt8]
        private var replaced: [Int: [UInt8]] = [:]
        private(set) var count: Int

        init(database: [UInt8], pageSize: Int) {
            self.pageSize = pageSize
            file = database
            count = database.count / pageSize  // a page cut short is lost
        }

        func page(_ number: Int) -> ArraySlice<UInt8> {
            if let page = replaced[number] { return page[...] }
            guard number >= 1, number <= count, number * pageSize <= file.count else { return [] }
            return file[(number - 1) * pageSize..<number * pageSize]
        }

        mutating func replace(_ number: Int, with page: [UInt8]) {
            replaced[number] = page
            count = max(count, number)
        }

        mutating func truncate(to pages: Int) {
            count = pages
            replaced = replaced.filter { $0.key <= pages }
        }
    }

    /// A write-ahead log: its header and frames.
    struct WALLog {
        let pageSize: Int
        let bigEndianChecksums: Bool
        let salt: (UInt32, UInt32)
        let headerChecksum: (UInt32, UInt32)
        let bytes: [UInt8]

        init?(_ bytes: [UInt8]) {
            guard bytes.count >= 32 else { return nil }
            let magic = readU32(bytes[...], 0)
            guard magic == 0x377f_0682 || magic == 0x377f_0683 else { return nil }
            let size = Int(readU32(bytes[...], 8))
            guard size >= 512, size <= 65536, size & (size - 1) == 0 else { return nil }
            bigEndianChecksums = magic == 0x377f_0683
            pageSize = size
            salt = (readU32(bytes[...], 16), readU32(bytes[...], 20))
            headerChecksum = (readU32(bytes[...], 24), readU32(bytes[...], 28))
            self.bytes = bytes
            // A header that fails its checksum makes SQLite ignore the whole log; so do we.
            let computed = Self.checksum(bytes[0..<24], start: (0, 0), bigEndian: bigEndianChecksums)
            guard computed == headerChecksum else { return nil }
        }

        var frameSize: Int { 24 + pageSize }
        var frameCount: Int { (bytes.count - 32) / frameSize }

        struct Frame {
            var page: Int
            /// The database's size in pages after this commit; 0 if not a commit frame.
            var commitSize: Int
            /// Of this log (its salt), not left over from before the log was restarted.
            var current: Bool
            /// Its own checksum holds (computed from the checksum stored in the frame before).
            var intact: Bool
            var data: ArraySlice<UInt8>
        }

        func frame(_ index: Int) -> Frame {
            let start = 32 + index * frameSize
            let header = bytes[start..<start + 24]
            let previous =
                index == 0
                ? headerChecksum
                : (readU32(bytes[...], start - frameSize + 16), readU32(bytes[...], start - frameSize + 20))
            let data = bytes[start + 24..<start + frameSize]
            let current = readU32(header, 8) == salt.0 && readU32(header, 12) == salt.1
            var sum = Self.checksum(header.prefix(8), start: previous, bigEndian: bigEndianChecksums)
            sum = Self.checksum(data, start: sum, bigEndian: bigEndianChecksums)
            return Frame(
                page: Int(readU32(header, 0)), commitSize: Int(readU32(header, 4)), current: current,
                intact: current && sum == (readU32(header, 16), readU32(header, 20)), data: data)
        }

        /// What SQLite reads (frames up to the last commit before the first frame that fails its
        /// checksum) and what it drops silently: commits after a damaged frame.
        struct Survey {
            var sqliteReadsFrames = 0
            /// Intact commit frames of this log after the frames SQLite reads.
            var droppedCommits = 0
            var damagedFrames = 0
        }

        func survey() -> Survey {
            var survey = Survey()
            var chainHolds = true
            var stale = 0
            for index in 0..<frameCount {
                let frame = frame(index)
                // SQLite stops at a frame of another salt (where a reset log ends, or a frame
                // that never reached the disk) as at one that fails its checksum.
                guard frame.current else {
                    chainHolds = false
                    stale += 1
                    continue
                }
                // Stale frames with frames of this log after them were meant to be this log's.
                survey.damagedFrames += stale
                stale = 0
                if !frame.intact {
                    chainHolds = false
                    survey.damagedFrames += 1
                    continue
                }
                if frame.commitSize != 0 {
                    if chainHolds { survey.sqliteReadsFrames = index + 1 } else { survey.droppedCommits += 1 }
                }
            }
            return survey
        }

        /// Overlays every committed transaction on `pages`, leaving out the frames that fail
        /// their checksum (their pages keep their older version) and what follows the last commit.
        func apply(to pages: inout PageImage) -> (applied: Int, damaged: Int) {
            var pending: [Frame] = []
            var applied = 0
            var damaged = 0
            // The database cannot have grown by more pages than the log has frames: a page number
            // past that is damage (and would have the scan walk billions of empty pages).
            let largest = pages.count + frameCount
            for index in 0..<frameCount {
                let frame = frame(index)
                guard frame.current else { continue }
                pending.append(frame)
                guard frame.intact, frame.commitSize != 0 else { continue }
                let size = min(frame.commitSize, largest)
                for frame in pending {
                    guard frame.intact, frame.page >= 1, frame.page <= size else {
                        damaged += 1
                        continue
                    }
                    pages.replace(frame.page, with: Array(frame.data))
                    applied += 1
                }
                pending = []
                pages.truncate(to: size)
            }
            return (applied, damaged)
        }

        /// SQLite's WAL checksum: pairs of 32-bit words in the log's byte order.
        static func checksum(_ data: ArraySlice<UInt8>, start: (UInt32, UInt32), bigEndian: Bool) -> (UInt32, UInt32) {
            var (s0, s1) = start
            var offset = data.startIndex
            while offset + 8 <= data.endIndex {
                let x0 = word(data, offset, bigEndian)
                let x1 = word(data, offset + 4, bigEndian)
                s0 = s0 &+ x0 &+ s1
                s1 = s1 &+ x1 &+ s0
                offset += 8
            }
            return (s0, s1)
        }

        private static func word(_ data: ArraySlice<UInt8>, _ at: Int, _ bigEndian: Bool) -> UInt32 {
            let b = (UInt32(data[at]), UInt32(data[at + 1]), UInt32(data[at + 2]), UInt32(data[at + 3]))
            return bigEndian ? b.0 << 24 | b.1 << 16 | b.2 << 8 | b.3 : b.3 << 24 | b.2 << 16 | b.1 << 8 | b.0
        }
    }

    // MARK: - Pages and cells

    struct PageReader {
        let pages: PageImage
        /// Bytes of a page SQLite uses (page size minus the reserved bytes at its end).
        let usable: Int

        static let tableLeaf: UInt8 = 0x0D
        static let indexLeaf: UInt8 = 0x0A
        static let indexInterior: UInt8 = 0x02
        static let tableInterior: UInt8 = 0x05

        /// The page's b-tree header (its offset, its kind, its cell pointers) if it is sound.
        static func plausibleHeader(_ page: ArraySlice<UInt8>, number: Int) -> (kind: UInt8, cells: [Int])? {
            let base = page.startIndex
            let start = number == 1 ? 100 : 0
            guard page.count >= 512 else { return nil }
            let kind = page[base + start]
            guard [tableLeaf, indexLeaf, indexInterior, tableInterior].contains(kind) else { return nil }
            let headerSize = kind == tableLeaf || kind == indexLeaf ? 8 : 12
            let cellCount = Int(readU16(page, start + 3))
            let contentStart = Int(readU16(page, start + 5))
            let pointers = start + headerSize
            guard pointers + cellCount * 2 <= page.count,
                contentStart == 0 ? cellCount == 0 || page.count == 65536 : contentStart >= pointers + cellCount * 2,
                contentStart <= page.count
            else { return nil }
            var cells: [Int] = []
            cells.reserveCapacity(cellCount)
            for index in 0..<cellCount {
                let offset = Int(readU16(page, pointers + index * 2))
                guard offset >= pointers + cellCount * 2, offset < page.count else { return nil }
                cells.append(offset)
            }
            return (kind, cells)
        }

        func read(page number: Int, into found: inout Found) {
            let page = pages.page(number)
            guard let (kind, cells) = Self.plausibleHeader(page, number: number) else { return }
            switch kind {
            case Self.tableLeaf:
                for offset in cells {
                    if let row = tableCell(page, at: offset) {
                        found.tableRows.append(row)
                    } else {
                        found.unreadableCells += 1
                    }
                }
            case Self.indexLeaf, Self.indexInterior:
                for offset in cells {
                    if let record = indexCell(page, at: offset, interior: kind == Self.indexInterior) {
                        found.indexRecords.append(record)
                    } else {
                        found.unreadableCells += 1
                    }
                }
            default: break
            }
        }

        private func tableCell(_ page: ArraySlice<UInt8>, at offset: Int) -> TableRow? {
            var cursor = offset
            guard let size = readVarint(page, &cursor), size >= 0, size <= 1 << 30,
                let rowid = readVarint(page, &cursor)
            else { return nil }
            let maxLocal = usable - 35
            guard let payload = payload(page, at: cursor, size: Int(size), maxLocal: maxLocal),
                let values = decodeRecord(payload)
            else { return nil }
            return TableRow(rowid: rowid, values: values)
        }

        private func indexCell(_ page: ArraySlice<UInt8>, at offset: Int, interior: Bool) -> [SQLValue]? {
            var cursor = offset + (interior ? 4 : 0)
            guard cursor < page.count, let size = readVarint(page, &cursor), size >= 0, size <= 1 << 30 else {
                return nil
            }
            let maxLocal = (usable - 12) * 64 / 255 - 23
            guard let payload = payload(page, at: cursor, size: Int(size), maxLocal: maxLocal) else { return nil }
            return decodeRecord(payload)
        }

        /// A cell's payload: the bytes on the page, then its overflow chain's.
        private func payload(_ page: ArraySlice<UInt8>, at start: Int, size: Int, maxLocal: Int) -> [UInt8]? {
            let minLocal = (usable - 12) * 32 / 255 - 23
            var local = size
            if size > maxLocal {
                let spill = minLocal + (size - minLocal) % (usable - 4)
                local = spill <= maxLocal ? spill : minLocal
            }
            let base = page.startIndex
            guard start + local <= usable else { return nil }
            var bytes = Array(page[base + start..<base + start + local])
            guard local < size else { return bytes }
            guard start + local + 4 <= usable else { return nil }
            // A payload larger than every page of the file could hold is damage: refused before
            // anything is read, so a crafted size cannot have the chain walked for nothing.
            guard size - local <= pages.count * (usable - 4) else { return nil }
            var next = Int(readU32(page, start + local))
            var chain = Set<Int>()
            while bytes.count < size {
                // A chain that leaves the file or comes back to a page it went through (a loop)
                // is damage, not data; stopping at the repeat keeps a crafted loop from costing
                // a walk of the whole file per cell.
                guard next >= 1, next <= pages.count, chain.insert(next).inserted else { return nil }
                let overflow = pages.page(next)
                guard overflow.count >= usable else { return nil }
                let take = min(usable - 4, size - bytes.count)
                bytes += overflow[overflow.startIndex + 4..<overflow.startIndex + 4 + take]
                next = Int(readU32(overflow, 0))
            }
            // The last overflow page points nowhere.
            return next == 0 ? bytes : nil
        }
    }

    /// A record: a header of serial types, then the values. Exactly `payload` long.
    static func decodeRecord(_ payload: [UInt8]) -> [SQLValue]? {
        let bytes = payload[...]
        var cursor = 0
        guard let headerSize = readVarint(bytes, &cursor), headerSize >= 1, headerSize <= payload.count else {
            return nil
        }
        var types: [Int64] = []
        while cursor < Int(headerSize) {
            guard let type = readVarint(bytes, &cursor), type != 10, type != 11, type >= 0 else { return nil }
            types.append(type)
        }
        guard cursor == Int(headerSize), !types.isEmpty else { return nil }
        var values: [SQLValue] = []
        values.reserveCapacity(types.count)
        for type in types {
            let length: Int
            switch type {
            case 0, 8, 9: length = 0
            case 1, 2, 3, 4: length = Int(type)
            case 5: length = 6
            case 6, 7: length = 8
            default: length = Int((type - 12) / 2)
            }
            guard cursor + length <= payload.count else { return nil }
            let field = payload[cursor..<cursor + length]
            cursor += length
            switch type {
            case 0: values.append(.null)
            case 8: values.append(.integer(0))
            case 9: values.append(.integer(1))
            case 1...6:
                var value: Int64 = field.first.map { $0 & 0x80 != 0 ? -1 : 0 } ?? 0
                for byte in field { value = value << 8 | Int64(byte) }
                values.append(.integer(value))
            case 7:
                var raw: UInt64 = 0
                for byte in field { raw = raw << 8 | UInt64(byte) }
                values.append(.real(Double(bitPattern: raw)))
            default:
                if type % 2 == 0 {
                    values.append(.blob(Array(field)))
                } else {
                    // Text that is not UTF-8 was not written by the store (the file is UTF-8).
                    guard let text = String(validating: field, as: UTF8.self) else { return nil }
                    values.append(.text(text))
                }
            }
        }
        return cursor == payload.count ? values : nil
    }
}

// MARK: - Bytes

/// A big-endian unsigned integer at `offset` from the slice's start.
private func readU16(_ bytes: ArraySlice<UInt8>, _ offset: Int) -> UInt16 {
    let at = bytes.startIndex + offset
    return UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
}

private func readU32(_ bytes: ArraySlice<UInt8>, _ offset: Int) -> UInt32 {
    let at = bytes.startIndex + offset
    return UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
}

/// SQLite's varint (1 to 9 bytes, big-endian, 7 bits a byte but all 8 of the ninth), at
/// `cursor` from the slice's start; advances it. Nil past the end.
private func readVarint(_ bytes: ArraySlice<UInt8>, _ cursor: inout Int) -> Int64? {
    var value: UInt64 = 0
    for index in 0..<9 {
        let at = bytes.startIndex + cursor
        guard at < bytes.endIndex else { return nil }
        let byte = bytes[at]
        cursor += 1
        if index == 8 { return Int64(bitPattern: value << 8 | UInt64(byte)) }
        value = value << 7 | UInt64(byte & 0x7F)
        if byte & 0x80 == 0 { break }
    }
    return Int64(bitPattern: value)
}
