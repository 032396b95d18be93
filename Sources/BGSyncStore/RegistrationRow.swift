// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Foundation
import GRDB

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
    static let selectSQL = "SELECT \(columns.joined(separator: ", ")) FROM \(StoreSchema.table)"

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
    static func describeKey(_ row: Row) -> String {
        let appID = String.fromDatabaseValue(row[Column.appID.rawValue]) ?? "?"
        return "\(appID)/\(String.fromDatabaseValue(row[Column.tag.rawValue]) ?? "?")"
    }

    /// A column value the file holds that bgsync cannot read: only possible after a manual edit.
    struct BadColumn: Error {
        var column: String
        var found: String
    }

    /// Reads one row. A registration that was firing comes back pending: its event died with the
    /// agent and simply runs again, without counting an attempt.
    static func registration(from row: Row) throws(BadColumn) -> Registration {
        let key = RegistrationKey(
            appID: try text(row, .appID),
            tag: try text(row, .tag),
            kind: try value(row, .kind, RegistrationKind.init(rawValue:)))
        let optionsText = try text(row, .options)
        let options: [String: Value]
        do throws(ValueError) {
            options = try Value.parseOptionsText(optionsText)
        } catch {
            throw BadColumn(column: "options", found: String(optionsText.prefix(80)))
        }
        var registration = Registration(
            key: key,
            handler: try text(row, .handler),
            options: options,
            network: try value(row, .network, NetworkRequirement.init(rawValue:)),
            maxAttempts: try count(row, .maxAttempts),
            attempts: try count(row, .attempts),
            state: try value(row, .state, RegistrationState.init(rawValue:)),
            nextAttempt: try real(row, .nextAttempt).map(Date.init(timeIntervalSince1970:)),
            lastError: try text(row, .lastError),
            minInterval: try real(row, .minInterval),
            intervalStart: try real(row, .intervalStart).map(Date.init(timeIntervalSince1970:)),
            sequence: try integer(row, .sequence),
            confinement: try value(row, .confinement, ConfinementText.confinement(from:)),
            power: try optionalText(row, .power).map { raw throws(BadColumn) in
                guard let power = PowerRequirement(rawValue: raw) else {
                    throw BadColumn(column: "power", found: "'\(raw)'")
                }
                return power
            },
            expiresAt: try real(row, .expiresAt).map(Date.init(timeIntervalSince1970:)),
            notBefore: try real(row, .notBefore).map(Date.init(timeIntervalSince1970:)))
        registration = registration.durable
        return registration
    }

    // Column readers that report a bad value instead of trapping (GRDB's non-optional subscripts
    // trap on a type mismatch).

    private static func text(_ row: Row, _ column: Column) throws(BadColumn) -> String {
        let stored: DatabaseValue = row[column.rawValue]
        guard let text = String.fromDatabaseValue(stored) else {
            throw BadColumn(column: column.name, found: "\(stored)")
        }
        return text
    }

    private static func optionalText(_ row: Row, _ column: Column) throws(BadColumn) -> String? {
        let stored: DatabaseValue = row[column.rawValue]
        if stored.isNull { return nil }
        guard let text = String.fromDatabaseValue(stored) else {
            throw BadColumn(column: column.name, found: "\(stored)")
        }
        return text
    }

    private static func value<T>(_ row: Row, _ column: Column, _ make: (String) -> T?) throws(BadColumn) -> T {
        let raw = try text(row, column)
        guard let result = make(raw) else { throw BadColumn(column: column.name, found: "'\(raw)'") }
        return result
    }

    private static func integer(_ row: Row, _ column: Column) throws(BadColumn) -> Int64 {
        let stored: DatabaseValue = row[column.rawValue]
        guard case .int64(let number) = stored.storage else { throw BadColumn(column: column.name, found: "\(stored)") }
        return number
    }

    private static func count(_ row: Row, _ column: Column) throws(BadColumn) -> UInt32 {
        let number = try integer(row, column)
        guard let result = UInt32(exactly: number) else { throw BadColumn(column: column.name, found: "\(number)") }
        return result
    }

    private static func real(_ row: Row, _ column: Column) throws(BadColumn) -> Double? {
        let stored: DatabaseValue = row[column.rawValue]
        switch stored.storage {
        case .null: return nil
        case .double(let number): return number
        case .int64(let number): return Double(number)
        default: throw BadColumn(column: column.name, found: "\(stored)")
        }
    }
}
