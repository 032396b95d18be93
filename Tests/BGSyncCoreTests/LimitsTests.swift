// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Testing

@Suite("Limits and bad input")
struct LimitsTests {
    func code(_ body: () throws -> Void) -> SyncError.Code? {
        do { try body() } catch let error as SyncError { return error.code } catch { return nil }
        return nil
    }

    @Test(arguments: [
        "", "chat", "org..example", ".org.example", "org.example.", "org.1example", "org.exa mple", "org.exämple",
        "a." + String(repeating: "b", count: 254),
    ])
    func badAppIDsAreRefused(_ appID: String) {
        #expect(code { try Identifiers.validateAppID(appID) } == .invalidArgument)
    }

    @Test(arguments: ["org.example.Chat", "com.example.my_app", "io.github.some-one.App", "a.b"])
    func goodAppIDsPass(_ appID: String) throws {
        try Identifiers.validateAppID(appID)
    }

    @Test func tagsMustBeNonEmptyAndBounded() throws {
        #expect(code { try Identifiers.validateTag("") } == .invalidArgument)
        #expect(code { try Identifiers.validateTag(String(repeating: "x", count: 1025)) } == .invalidArgument)
        try Identifiers.validateTag(String(repeating: "é", count: 512))
        try Identifiers.validateTag("outbox 📨")
    }

    @Test func optionsAreBoundedInSize() throws {
        let h = try Harness()
        let big: [String: Value] = ["blob": .array(elementSignature: "y", Array(repeating: .byte(1), count: 70_000))]
        #expect(code { try h.register(options: big) } == .invalidArgument)
        #expect(h.scheduler.count == 0)
        try h.register(options: ["blob": .array(elementSignature: "y", Array(repeating: .byte(1), count: 60_000))])
    }

    @Test func reservedOptionsAreTypeChecked() throws {
        let h = try Harness()
        #expect(code { try h.register(options: ["network": .string("wifi")]) } == .invalidArgument)
        #expect(code { try h.register(options: ["network": .uint32(1)]) } == .invalidArgument)
        #expect(code { try h.register(options: ["max-attempts": .uint32(0)]) } == .invalidArgument)
        #expect(code { try h.register(options: ["max-attempts": .string("3")]) } == .invalidArgument)
        #expect(code { try h.register(options: ["max-attempts": .uint32(1000)]) } == .invalidArgument)
        #expect(code { try h.register(options: ["x": .double(.nan)]) } == .invalidArgument)
        try h.register(options: ["network": .variant(.string("unmetered")), "max-attempts": .int32(5)])
        let registration = try #require(h.scheduler.registration(h.key()))
        #expect(registration.network == .unmetered && registration.maxAttempts == 5)
    }

    @Test func unknownHandlersAreRefusedByName() throws {
        let h = try Harness()
        let request = try RegistrationRequest(appID: "org.example.Chat", tag: "t", handler: "fax")
        do {
            try h.scheduler.register(request)
            Issue.record("registered with an unknown handler")
        } catch {
            #expect(error.code == .unknownHandler)
            #expect(error.message.contains("fax") && error.message.contains("upload"))
        }
    }

    @Test func eachAppHasAQuotaThatDoesNotTouchOtherApps() throws {
        var settings = SyncSettings()
        settings.registrationsPerApp = 3
        let h = try Harness(settings: settings)
        for tag in ["a", "b", "c"] { try h.register(tag) }
        #expect(code { try h.register("d") } == .quotaExceeded)
        try h.register("a")  // re-registering an existing tag is not a new one
        try h.register("a", app: "org.example.Other")
        #expect(h.scheduler.count == 4)
    }

    @Test func aFailedWriteLeavesNothingHalfDone() throws {
        let h = try Harness()
        try h.register(options: ["v": .int32(1)])
        h.store.failure = SyncError(.storage, "disk full")
        #expect(code { try h.register(options: ["v": .int32(2)]) } == .storage)
        #expect(code { try h.register("new") } == .storage)
        #expect(code { _ = try h.scheduler.unregister(h.key()) } == .storage)
        #expect(h.scheduler.registration(h.key())?.options["v"] == .int32(1))
        #expect(h.scheduler.count == 1)
        h.store.failure = nil
        try h.register("new")
        #expect(h.scheduler.count == 2)
    }
}
