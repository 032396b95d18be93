// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import Testing

/// Tags and app ids are compared as bytes, as the store's primary key and the Background Sync
/// spec compare them: text that Swift's String calls equal (canonically equivalent) but whose
/// bytes differ names two registrations.
@Suite("Tags and app ids compare as bytes")
struct ExactTextTests {
    static let composed = "caf\u{E9}"  // é as one code point
    static let decomposed = "cafe\u{301}"  // e and a combining acute accent

    /// The app's one-off tags as bytes: comparing [String] would call the two café equal.
    func tags(_ h: Harness) -> [ExactText] {
        h.scheduler.tags(appID: "org.example.Chat", kind: .oneOff).map(ExactText.init)
    }

    @Test func canonicallyEquivalentTextIsTwoKeys() {
        // What the rule is against: Swift's String alone would make these one key.
        #expect(Self.composed == Self.decomposed)
        #expect("org.example.K" == "org.example.\u{212A}")  // the Kelvin sign
        let a = RegistrationKey(appID: "org.example.Chat", tag: Self.composed, kind: .oneOff)
        let b = RegistrationKey(appID: "org.example.Chat", tag: Self.decomposed, kind: .oneOff)
        #expect(a != b)
        #expect(Set([a, b]).count == 2)
        #expect(a == RegistrationKey(appID: "org.example.Chat", tag: "caf\u{E9}", kind: .oneOff))
        let k = RegistrationKey(appID: "org.example.K", tag: "t", kind: .oneOff)
        let kelvin = RegistrationKey(appID: "org.example.\u{212A}", tag: "t", kind: .oneOff)
        #expect(k != kelvin && Set([k, kelvin]).count == 2)
        #expect(ExactText("org.example.K") != ExactText("org.example.\u{212A}"))
        #expect(!ExactText.hasPrefix("/home/u/.var/app/org.kde.\u{212A}ate/x", "/home/u/.var/app/org.kde.Kate/"))
        // The app id and the tag are not one string: moving a byte from one to the other is another key.
        #expect(
            RegistrationKey(appID: "a.b", tag: "cd", kind: .oneOff)
                != RegistrationKey(appID: "a.bc", tag: "d", kind: .oneOff))
    }

    @Test func aComposedAndADecomposedTagAreTwoRegistrations() throws {
        let h = try Harness()
        try h.register(Self.composed)
        try h.register(Self.decomposed)
        #expect(h.scheduler.count == 2)
        #expect(tags(h) == [Self.composed, Self.decomposed].map(ExactText.init))
        #expect(h.store.rows.count == 2)
        #expect(try h.scheduler.unregister(h.key(Self.decomposed)))
        #expect(tags(h) == [ExactText(Self.composed)])
        #expect(h.scheduler.registration(h.key(Self.composed)) != nil)
        #expect(h.scheduler.registration(h.key(Self.decomposed)) == nil)
    }

    @Test func eachCountsForTheQuotaAndEachFires() throws {
        var settings = SyncSettings()
        settings.registrationsPerApp = 2
        let h = try Harness(settings: settings)
        try h.register(Self.composed)
        try h.register(Self.decomposed)
        #expect(throws: SyncError.self) { try h.register("third") }
        h.goOnline()
        #expect(
            Set(h.events.map(\.key.tag).map(ExactText.init)) == [ExactText(Self.composed), ExactText(Self.decomposed)])
    }

    /// A Kelvin sign in an app id is not the letter K: not one app for the quota, the queue, or the tags.
    @Test func appIDsThatLookAlikeAreTwoApps() throws {
        var settings = SyncSettings()
        settings.registrationsPerApp = 1
        let rows = ["org.example.K", "org.example.\u{212A}"].enumerated().map { index, app in
            Registration(
                key: RegistrationKey(appID: app, tag: "t", kind: .oneOff), handler: "upload", maxAttempts: 3,
                state: .pending,
                sequence: Int64(index + 1))
        }
        let h = try Harness(settings: settings, stored: rows)
        #expect(h.scheduler.tags(appID: "org.example.K", kind: .oneOff) == ["t"])
        #expect(h.scheduler.tags(appID: "org.example.\u{212A}", kind: .oneOff) == ["t"])
        h.goOnline()
        #expect(h.events.count == 2)
    }
}
