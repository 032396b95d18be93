// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import GRDB
import Testing

@testable import BGSyncStore

@Suite("The history table behind ListApps")
struct HistoryStoreTests {
    static let day = ActivityDay(
        appID: "org.example.Chat", day: 20_000, bytesSent: .max, bytesReceived: 1200,
        lastSync: Date(timeIntervalSince1970: 1_728_000_123.5), lastOutcome: "succeeded")

    @Test func aDaySurvivesAReopenWithEveryField() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteRegistrationStore(directory: directory.path)
        try store.saveActivity(Self.day)
        var other = Self.day
        other.day += 1
        other.lastOutcome = "failed"
        try store.saveActivity(other)
        try store.deleteActivity(other)
        var replaced = Self.day
        replaced.bytesReceived = 1300
        try store.saveActivity(replaced)  // the same app and day: replaced, not added
        store.close()

        let reopened = try SQLiteRegistrationStore(directory: directory.path)
        defer { reopened.close() }
        var days: [ActivityDay] = []
        try reopened.forEachActivity { days.append($0) }
        #expect(days == [replaced])
    }

    @Test func aV1DatabaseGainsTheTableAndKeepsItsRegistrations() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try OptionsMigrationTests.writeV1Database(
            at: directory.file("registrations.sqlite3"), rows: [("outbox", "{}")])
        let store = try SQLiteRegistrationStore(directory: directory.path)
        defer { store.close() }
        #expect(try store.loadAll().map(\.key.tag) == ["outbox"])
        var days: [ActivityDay] = []
        try store.forEachActivity { days.append($0) }
        #expect(days.isEmpty)
        try store.saveActivity(Self.day)
        try store.forEachActivity { days.append($0) }
        #expect(days == [Self.day])
    }
}
