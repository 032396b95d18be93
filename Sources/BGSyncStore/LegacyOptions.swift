// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import Foundation
import GRDB

/// The options column as v1 wrote it: the JSON of Swift's synthesised `Codable` for the option
/// enum of that time (`{"url":{"string":{"_0":"https://…"}}}`). Read only by the v2 migration,
/// which rewrites every row as GVariant text. The case names and labels below are that format:
/// never change them.
enum LegacyOptions {
    indirect enum OptionValue: Decodable {
        case bool(Bool)
        case byte(UInt8)
        case int16(Int16)
        case uint16(UInt16)
        case int32(Int32)
        case uint32(UInt32)
        case int64(Int64)
        case uint64(UInt64)
        case double(Double)
        case string(String)
        case objectPath(String)
        case signature(String)
        case array(elementType: String, [OptionValue])
        case dictionary(keyType: String, valueType: String, [DictionaryEntry])
        case tuple([OptionValue])
        case variant(OptionValue)

        struct DictionaryEntry: Decodable {
            var key: OptionValue
            var value: OptionValue
        }

        var value: Value {
            switch self {
            case .bool(let v): .bool(v)
            case .byte(let v): .byte(v)
            case .int16(let v): .int16(v)
            case .uint16(let v): .uint16(v)
            case .int32(let v): .int32(v)
            case .uint32(let v): .uint32(v)
            case .int64(let v): .int64(v)
            case .uint64(let v): .uint64(v)
            case .double(let v): .double(v)
            case .string(let v): .string(v)
            case .objectPath(let v): .objectPath(v)
            case .signature(let v): .signature(v)
            case .array("y", let items):
                .bytes(items.map { if case .byte(let b) = $0 { b } else { 0 } })
            case .array(let element, let items): .array(elementSignature: element, items.map(\.value))
            case .dictionary(let key, let value, let entries):
                .dictionary(
                    keySignature: key, valueSignature: value,
                    entries.map { Value.DictEntry(key: $0.key.value, value: $0.value.value) })
            case .tuple(let items): .structure(items.map(\.value))
            case .variant(let inner): .variant(inner.value)
            }
        }
    }

    /// The options a v1 column holds, or nil when it is not v1's JSON.
    static func decode(_ json: String) -> [String: Value]? {
        if json == "{}" { return [:] }
        guard let legacy = try? JSONDecoder().decode([String: OptionValue].self, from: Data(json.utf8)) else {
            return nil
        }
        return legacy.mapValues(\.value)
    }

    /// Rewrites every row's options as GVariant text. A row whose column is not v1's JSON (only
    /// possible after a manual edit) is left as it is: when the store loads it, it keeps a copy of
    /// the file aside, names the row and removes it (SQLiteRegistrationStore.forEachStored).
    static func rewriteAsGVariantText(_ db: Database) throws {
        let rows = try Row.fetchAll(db, sql: "SELECT rowid, options FROM registrations")
        for row in rows {
            let rowID: Int64 = row[0]
            guard let json = String.fromDatabaseValue(row[1]), let options = decode(json) else { continue }
            try db.execute(
                sql: "UPDATE registrations SET options = ? WHERE rowid = ?",
                arguments: [Value.optionsText(options), rowID])
        }
    }
}
