// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Foundation
import GRDB
import GRDBSQLite

/// The mapping between a `Registration` and one row of the registrations table.
enum RegistrationRow {
    /// The table's columns, in the order `selectSQL` reads them: a row's value is read by its
    /// position (GRDB's lookup by name lowercases the name on every call, 17% of starting with
    /// 100,000 registrations; a dictionary from name to position still hashed every column name
    /// of every row).
    enum Column: Int, CaseIterable {
        case appID, kind, tag, handler, options, network, maxAttempts, attempts, state, nextAttempt, lastError
        case minInterval, intervalStart, sequence, power, expiresAt, notBefore, confinement

        var name: String {
            switch self {
            case .appID: "app_id"
            case .maxAttempts: "max_attempts"
            case .nextAttempt: "next_attempt"
            case .lastError: "last_error"
            case .minInterval: "min_interval"
            case .intervalStart: "interval_start"
            case .expiresAt: "expires_at"
            case .notBefore: "not_before"
            default: "\(self)"
            }
        }
    }

    static let columns = Column.allCases.map(\.name)

    static let upsertSQL = """
        INSERT OR REPLACE INTO \(StoreSchema.table) (\(columns.joined(separator: ", ")))
        VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))
        """
    /// The columns, then the rowid (`ColumnReader.rowid`).
    static let selectSQL = "SELECT \(columns.joined(separator: ", ")), rowid FROM \(StoreSchema.table)"

    /// Arguments for `upsertSQL`, in column order.
    static func arguments(for registration: Registration, optionsText: String) -> StatementArguments {
        let values: [(any DatabaseValueConvertible)?] = [
            registration.key.appID, registration.key.kind.rawValue, registration.key.tag, registration.handler,
            optionsText, registration.network.rawValue, Int64(registration.maxAttempts),
            Int64(registration.attempts), registration.state.rawValue,
            registration.nextAttempt?.timeIntervalSince1970, registration.lastError, registration.minInterval,
            registration.intervalStart?.timeIntervalSince1970, registration.sequence,
            registration.power?.rawValue, registration.expiresAt?.timeIntervalSince1970,
            registration.notBefore?.timeIntervalSince1970,
            ConfinementText.text(registration.confinement),
        ]
        return StatementArguments(values)
    }

    /// The options column: one `a{sv}` in GVariant text, as `gdbus` and `bgsyncctl` print it
    /// (`{'outbox': <'/home/u/outbox'>}`; `@a{sv} {}` for none). See `StoreSchema`.
    static func encodeOptions(_ options: [String: Value]) throws(SyncError) -> String {
        Value.optionsText(options)
    }

    /// "app/tag" of a row, for an error message.
    static func describeKey(_ row: ColumnReader) -> String {
        "\(row.anyText(.appID) ?? "?")/\(row.anyText(.tag) ?? "?")"
    }

    /// A column value the file holds that bgsync cannot read: after a manual edit, or damage
    /// `quick_check` does not see (a value garbled in place).
    struct BadColumn: Error {
        var column: String
        var found: String
    }

    /// Reads one row. A registration that was firing comes back pending: its event died with the
    /// agent and simply runs again, without counting an attempt.
    static func registration(from row: ColumnReader) throws(BadColumn) -> Registration {
        let key = RegistrationKey(
            appID: try row.text(.appID),
            tag: try row.text(.tag),
            kind: try row.value(.kind, RegistrationKind.init(rawValue:)))
        let optionsText = try row.text(.options)
        let options: [String: Value]
        do throws(ValueError) {
            options = try Value.parseOptionsText(optionsText)
        } catch {
            throw BadColumn(column: "options", found: String(optionsText.prefix(80)))
        }
        var registration = Registration(
            key: key,
            handler: try row.text(.handler),
            options: options,
            network: try row.value(.network, NetworkRequirement.init(rawValue:)),
            maxAttempts: try row.count(.maxAttempts),
            attempts: try row.count(.attempts),
            state: try row.value(.state, RegistrationState.init(rawValue:)),
            nextAttempt: try row.real(.nextAttempt).map(Date.init(timeIntervalSince1970:)),
            lastError: try row.text(.lastError),
            minInterval: try row.real(.minInterval),
            intervalStart: try row.real(.intervalStart).map(Date.init(timeIntervalSince1970:)),
            sequence: try row.integer(.sequence),
            confinement: try row.value(.confinement, ConfinementText.confinement(from:)),
            power: try row.optionalText(.power).map { raw throws(BadColumn) in
                guard let power = PowerRequirement(rawValue: raw) else {
                    throw BadColumn(column: "power", found: "'\(raw)'")
                }
                return power
            },
            expiresAt: try row.real(.expiresAt).map(Date.init(timeIntervalSince1970:)),
            notBefore: try row.real(.notBefore).map(Date.init(timeIntervalSince1970:)))
        registration = registration.durable
        return registration
    }

    /// Reads the columns of the row a statement stands on, straight from SQLite: GRDB's generic
    /// `DatabaseValue` decoding looked up generic metadata for every column of every row (a
    /// third of the time spent converting rows when starting with 100,000). A value of the
    /// wrong type is reported, never trapped on.
    struct ColumnReader {
        let statement: SQLiteStatement

        private func type(_ column: Column) -> Int32 { sqlite3_column_type(statement, Int32(column.rawValue)) }

        /// The row's rowid, which `selectSQL` reads after the columns.
        var rowid: Int64 { sqlite3_column_int64(statement, Int32(Column.allCases.count)) }

        /// The column as text whatever its type (for messages), nil for NULL.
        func anyText(_ column: Column) -> String? {
            guard type(column) != SQLITE_NULL, let bytes = sqlite3_column_text(statement, Int32(column.rawValue)) else {
                return nil
            }
            let count = Int(sqlite3_column_bytes(statement, Int32(column.rawValue)))
            return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
        }

        private func rawBytes(_ column: Column) -> UnsafeRawBufferPointer {
            let count = Int(sqlite3_column_bytes(statement, Int32(column.rawValue)))
            return UnsafeRawBufferPointer(start: sqlite3_column_blob(statement, Int32(column.rawValue)), count: count)
        }

        /// How a bad value reads in the error; `stored` is its type, read before any conversion.
        private func found(_ column: Column, _ stored: Int32? = nil) -> String {
            switch stored ?? type(column) {
            case SQLITE_NULL: "NULL"
            case SQLITE_TEXT: "'\(anyText(column) ?? "")'"
            case SQLITE_BLOB: "a BLOB of \(sqlite3_column_bytes(statement, Int32(column.rawValue))) bytes, not UTF-8"
            default: anyText(column) ?? "?"
            }
        }

        /// TEXT, or a BLOB of UTF-8 (what `sqlite3` writes for `X'…'`), as GRDB read both.
        func text(_ column: Column) throws(BadColumn) -> String {
            // The type is read before the value: SQLite's own conversion of it makes it undefined.
            let stored = type(column)
            guard stored == SQLITE_TEXT || stored == SQLITE_BLOB, let text = anyText(column),
                stored == SQLITE_TEXT || text.utf8.elementsEqual(rawBytes(column))
            else {
                throw BadColumn(column: column.name, found: found(column, stored))
            }
            return text
        }

        func optionalText(_ column: Column) throws(BadColumn) -> String? {
            type(column) == SQLITE_NULL ? nil : try text(column)
        }

        func value<T>(_ column: Column, _ make: (String) -> T?) throws(BadColumn) -> T {
            let raw = try text(column)
            guard let result = make(raw) else { throw BadColumn(column: column.name, found: "'\(raw)'") }
            return result
        }

        func integer(_ column: Column) throws(BadColumn) -> Int64 {
            guard type(column) == SQLITE_INTEGER else { throw BadColumn(column: column.name, found: found(column)) }
            return sqlite3_column_int64(statement, Int32(column.rawValue))
        }

        func count(_ column: Column) throws(BadColumn) -> UInt32 {
            let number = try integer(column)
            guard let result = UInt32(exactly: number) else { throw BadColumn(column: column.name, found: "\(number)") }
            return result
        }

        func real(_ column: Column) throws(BadColumn) -> Double? {
            switch type(column) {
            case SQLITE_NULL: return nil
            case SQLITE_FLOAT:
                // Never infinite: -infinity is how a Registration keeps "none" (PackedOptional).
                let number = sqlite3_column_double(statement, Int32(column.rawValue))
                guard number.isFinite else { throw BadColumn(column: column.name, found: "\(number)") }
                return number
            case SQLITE_INTEGER: return Double(sqlite3_column_int64(statement, Int32(column.rawValue)))
            default: throw BadColumn(column: column.name, found: found(column))
            }
        }
    }
}
