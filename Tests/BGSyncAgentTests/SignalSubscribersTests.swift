// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import BGSyncAgent

/// Who hears of which app's syncs.
struct SignalSubscribersTests {
    @Test func eachConnectionHearsOnlyTheAppsItAskedAbout() {
        var subscribers = SignalSubscribers()
        subscribers.add(":1.5", appID: "org.example.A")
        subscribers.add(":1.6", appID: "org.example.B")
        subscribers.add(":1.6", appID: "org.example.B")
        subscribers.addEverything(":1.9")  // bgsyncctl monitor
        #expect(subscribers.recipients(of: "org.example.A") == [":1.5", ":1.9"])
        #expect(subscribers.recipients(of: "org.example.B") == [":1.6", ":1.9"])
        #expect(subscribers.recipients(of: "org.example.C") == [":1.9"])
        subscribers.remove(":1.9")
        subscribers.remove(":1.5")
        #expect(subscribers.recipients(of: "org.example.A") == [])
        #expect(subscribers.recipients(of: "org.example.B") == [":1.6"])
    }

    /// App ids compare as bytes: one that Swift's String calls equal (a Kelvin sign for K) is
    /// another app, whose signals this connection never asked for.
    @Test func aLookAlikeAppIDIsAnotherApp() {
        var subscribers = SignalSubscribers()
        subscribers.add(":1.5", appID: "org.example.\u{212A}")
        #expect(subscribers.recipients(of: "org.example.K") == [])
        #expect(subscribers.recipients(of: "org.example.\u{212A}") == [":1.5"])
    }

    @Test func theTablesAreBounded() {
        var subscribers = SignalSubscribers()
        var added = 0
        for n in 0..<SignalSubscribers.maxAppsPerConnection where subscribers.add(":1.1", appID: "a.b\(n)") {
            added += 1
        }
        #expect(added == SignalSubscribers.maxAppsPerConnection)
        let more = subscribers.add(":1.1", appID: "a.more")
        let again = subscribers.add(":1.1", appID: "a.b0")
        #expect(!more)
        #expect(again, "one it already has is fine")
    }
}
