// SPDX-License-Identifier: Apache-2.0
import struct Foundation.Date

/// What one app did on one day (UTC): the bytes its events moved, and how its last event of the
/// day ended. Kept in the store (table `history`) so ListApps' figures survive restarts.
public struct ActivityDay: Sendable, Equatable {
    public var appID: String
    /// Days since 1970-01-01 UTC.
    public var day: Int64
    public var bytesSent: UInt64
    public var bytesReceived: UInt64
    /// When the app's last event of the day ended, and its outcome (`SyncOutcome`'s raw value).
    public var lastSync: Date
    public var lastOutcome: String

    public init(
        appID: String, day: Int64, bytesSent: UInt64 = 0, bytesReceived: UInt64 = 0, lastSync: Date,
        lastOutcome: String
    ) {
        self.appID = appID
        self.day = day
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.lastSync = lastSync
        self.lastOutcome = lastOutcome
    }

    public static func day(of date: Date) -> Int64 {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite else { return 0 }
        return Int64((seconds / 86_400).rounded(.down))
    }
}

/// One app as a settings panel shows it (ListApps).
public struct AppSummary: Sendable, Equatable {
    public var registrations: UInt32 = 0
    /// Registrations not running: pending (waiting for conditions or a slot) or backing off.
    public var waiting: UInt32 = 0
    public var running: UInt32 = 0
    public var allowed = true
    /// The end of its last event, nil for never.
    public var lastSync: Date?
    public var lastOutcome = ""
    /// Over the last `AppActivity.window` days, today included.
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0

    public init() {}
}

/// The per-app, per-day history behind ListApps, in memory (a few rows per app: days older than
/// the window are dropped, but for each app's latest, which holds its last sync).
public struct AppActivity: Sendable {
    /// Days the byte figures cover (today and the 29 before).
    public static let window: Int64 = 30

    private var days: [String: [Int64: ActivityDay]] = [:]
    /// The day `prune` last ran for, so an agent that runs for months prunes once a day too.
    private var prunedDay: Int64?

    public init() {}

    /// Takes a stored row (at start).
    public mutating func load(_ row: ActivityDay) {
        days[row.appID, default: [:]][row.day] = row
    }

    /// Drops the days before the window, keeping each app's latest. Returns the dropped ones (for
    /// the store to delete).
    public mutating func prune(now: Date) -> [ActivityDay] {
        prunedDay = ActivityDay.day(of: now)
        let first = ActivityDay.day(of: now) - Self.window + 1
        var dropped: [ActivityDay] = []
        for (app, byDay) in days {
            guard let latest = byDay.keys.max() else { continue }
            for (day, row) in byDay where day < first && day != latest {
                dropped.append(row)
                days[app]?[day] = nil
            }
        }
        return dropped
    }

    /// `prune`, when it has not run yet on the day of `now`.
    public mutating func pruneOncePerDay(now: Date) -> [ActivityDay] {
        guard prunedDay != ActivityDay.day(of: now) else { return [] }
        return prune(now: now)
    }

    /// An event of `appID` ended at `date`: adds its bytes to the day and makes it the last
    /// sync. Returns the day's row as it now is (for the store).
    public mutating func record(
        appID: String, at date: Date, outcome: SyncOutcome, bytesSent: UInt64, bytesReceived: UInt64
    ) -> ActivityDay {
        let day = ActivityDay.day(of: date)
        var row =
            days[appID]?[day]
            ?? ActivityDay(appID: appID, day: day, lastSync: date, lastOutcome: outcome.rawValue)
        row.bytesSent = row.bytesSent.addingSaturated(bytesSent)
        row.bytesReceived = row.bytesReceived.addingSaturated(bytesReceived)
        row.lastSync = date
        row.lastOutcome = outcome.rawValue
        days[appID, default: [:]][day] = row
        return row
    }

    public var appIDs: Dictionary<String, [Int64: ActivityDay]>.Keys { days.keys }

    /// Fills in `summary`'s last sync and 30-day byte counts for `appID`.
    public func summarize(_ appID: String, into summary: inout AppSummary, now: Date) {
        guard let byDay = days[appID] else { return }
        let first = ActivityDay.day(of: now) - Self.window + 1
        var latest: ActivityDay?
        for row in byDay.values {
            if latest.map({ row.day > $0.day }) ?? true { latest = row }
            guard row.day >= first else { continue }
            summary.bytesSent = summary.bytesSent.addingSaturated(row.bytesSent)
            summary.bytesReceived = summary.bytesReceived.addingSaturated(row.bytesReceived)
        }
        summary.lastSync = latest?.lastSync
        summary.lastOutcome = latest?.lastOutcome ?? ""
    }
}

extension UInt64 {
    /// A sum that stops at the maximum: a handler's report is the app's to choose.
    func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
