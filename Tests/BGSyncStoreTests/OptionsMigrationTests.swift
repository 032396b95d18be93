// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Foundation
import GRDB
import Testing

@testable import BGSyncStore

/// A database written by the v1 store (options as the JSON of Swift's synthesised Codable)
/// opens in this one with every option intact, and the file then reads as text in sqlite3.
@Suite struct OptionsMigrationTests {
    /// What the v1 store wrote for these options, byte for byte (JSONEncoder, sorted keys, of
    /// the enum of that time; produced by running that code).
    static let v1JSON = #"""
        {"argv":{"array":{"_1":[{"string":{"_0":"sh"}},{"string":{"_0":"-c"}}],"elementType":"s"}},\#
        "big":{"uint64":{"_0":18446744073709551615}},"blob":{"array":{"_1":[{"byte":{"_0":0}},\#
        {"byte":{"_0":255}}],"elementType":"y"}},"d":{"double":{"_0":0.1}},"empty":{"array":{"_1":[],\#
        "elementType":"s"}},"flag":{"bool":{"_0":true}},\#
        "headers":{"dictionary":{"_2":[{"key":{"string":{"_0":"A"}},\#
        "value":{"variant":{"_0":{"int16":{"_0":-2}}}}}],"keyType":"s","valueType":"v"}},\#
        "n":{"uint32":{"_0":3}},"neg":{"int64":{"_0":-9000000000}},\#
        "outbox":{"string":{"_0":"\/home\/u\/outbox 'x'"}},\#
        "pair":{"tuple":{"_0":[{"objectPath":{"_0":"\/a"}},{"signature":{"_0":"as"}}]}}}
        """#

    static let options: [String: Value] = [
        "outbox": .string("/home/u/outbox 'x'"),
        "n": .uint32(3), "neg": .int64(-9_000_000_000), "big": .uint64(.max), "d": .double(0.1), "flag": .bool(true),
        "argv": .stringArray(["sh", "-c"]), "empty": .array(elementSignature: "s", []), "blob": .bytes([0, 255]),
        "headers": .stringVariantDictionary([("A", .int16(-2))]),
        "pair": .structure([.objectPath("/a"), .signature("as")]),
    ]

    /// The v1 schema and its migration record, as GRDB left them, with raw rows.
    static func writeV1Database(at path: String, rows: [(tag: String, options: String)]) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('v1: registrations')")
            try db.execute(
                sql: """
                    CREATE TABLE registrations (
                        app_id TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('one-off', 'periodic')),
                        tag TEXT NOT NULL, handler TEXT NOT NULL, options TEXT NOT NULL,
                        network TEXT NOT NULL CHECK (network IN ('any', 'unmetered')),
                        max_attempts INTEGER NOT NULL CHECK (max_attempts >= 0),
                        attempts INTEGER NOT NULL CHECK (attempts >= 0),
                        state TEXT NOT NULL, next_attempt REAL, last_error TEXT NOT NULL DEFAULT '', min_interval REAL,
                        interval_start REAL, sequence INTEGER NOT NULL, PRIMARY KEY (app_id, kind, tag))
                    """)
            for (index, row) in rows.enumerated() {
                try db.execute(
                    sql: """
                        INSERT INTO registrations VALUES
                        ('org.example.Chat', 'one-off', ?, 'upload', ?, 'any', 5, 0, 'waiting', 1763000000.5, '',
                         NULL, NULL, ?)
                        """,
                    arguments: [row.tag, row.options, index + 1])
            }
        }
        try queue.close()
    }

    @Test func v1RowsReadBackMigratedAsGVariantText() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("registrations.sqlite3")
        try Self.writeV1Database(at: path, rows: [("full", Self.v1JSON), ("none", "{}")])

        let store = try SQLiteRegistrationStore(directory: directory.path)
        let loaded = Dictionary(uniqueKeysWithValues: try store.loadAll().map { ($0.key.tag, $0.options) })
        store.close()
        #expect(loaded["full"] == Self.options)
        #expect(loaded["none"] == [:])

        let raw = try DatabaseQueue(path: path)
        defer { try? raw.close() }
        let stored = try raw.read { db in
            try String.fetchAll(db, sql: "SELECT options FROM registrations ORDER BY sequence")
        }
        #expect(
            stored == [
                "{'argv': <['sh', '-c']>, 'big': <uint64 18446744073709551615>, 'blob': <[byte 0x00, 0xff]>, "
                    + "'d': <0.10000000000000001>, 'empty': <@as []>, 'flag': <true>, 'headers': <{'A': <int16 -2>}>, "
                    + "'n': <uint32 3>, 'neg': <int64 -9000000000>, 'outbox': <\"/home/u/outbox 'x'\">, "
                    + "'pair': <(objectpath '/a', signature 'as')>}",
                "@a{sv} {}",
            ])
    }

    @Test func aRowThatIsNotV1JSONIsKeptAsideAndNamed() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("registrations.sqlite3")
        try Self.writeV1Database(at: path, rows: [("edited", "{\"url\": \"by hand\"}")])
        let store = try SQLiteRegistrationStore(directory: directory.path)
        defer { store.close() }
        // The migration leaves the column as it was; loading does not hand the row over, and
        // removes it from the file only after keeping a copy that has it.
        #expect(try store.loadAll().isEmpty)
        let repair = try #require(store.repair)
        #expect(repair.damage.contains("column options of org.example.Chat/edited"))
        let kept = try DatabaseQueue(path: repair.keptAs)
        defer { try? kept.close() }
        #expect(
            try kept.read { db in try String.fetchOne(db, sql: "SELECT options FROM registrations") }
                == "{\"url\": \"by hand\"}")
    }
}
