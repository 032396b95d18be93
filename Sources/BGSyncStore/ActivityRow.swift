// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import GRDB

/// The `history` table's rows (StoreSchema, migration v4) as `ActivityDay`s.
enum ActivityRow {
    static let selectSQL =
        "SELECT app_id, day, bytes_sent, bytes_received, last_sync, last_outcome FROM history"
    static let upsertSQL = """
        INSERT OR REPLACE INTO history (app_id, day, bytes_sent, bytes_received, last_sync, last_outcome)
        VALUES (?, ?, ?, ?, ?, ?)
        """
    static let deleteSQL = "DELETE FROM history WHERE app_id = ? AND day = ?"

    /// SQLite integers are signed 64-bit: byte counts are stored as their bit pattern, so the
    /// saturated maximum reads back as itself.
    static func arguments(_ day: ActivityDay) -> StatementArguments {
        [
            day.appID, day.day, Int64(bitPattern: day.bytesSent), Int64(bitPattern: day.bytesReceived),
            day.lastSync.timeIntervalSince1970, day.lastOutcome,
        ]
    }

    static func day(from row: Row) -> ActivityDay {
        let sent: Int64 = row["bytes_sent"] ?? 0
        let received: Int64 = row["bytes_received"] ?? 0
        let lastSync: Double = row["last_sync"] ?? 0
        return ActivityDay(
            appID: row["app_id"] ?? "", day: row["day"] ?? 0, bytesSent: UInt64(bitPattern: sent),
            bytesReceived: UInt64(bitPattern: received), lastSync: Date(timeIntervalSince1970: lastSync),
            lastOutcome: row["last_outcome"] ?? "")
    }
}
