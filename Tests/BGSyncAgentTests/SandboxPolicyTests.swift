// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Testing

@testable import BGSyncAgent

/// The rules for sandboxed callers, on decoded requests, with the path and URL options each
/// handler declares (HandlerInfo), not names the agent knows.
struct SandboxPolicyTests {
    static let handlers = [
        "upload": HandlerInfo(
            name: "upload", description: "", sandboxSafe: true, pathOptions: ["outbox"], urlOptions: ["url"]),
        "thirdparty": HandlerInfo(
            name: "thirdparty", description: "", sandboxSafe: true, pathOptions: ["source", "cache"],
            urlOptions: ["endpoint"]),
        "exec": HandlerInfo(name: "exec", description: "", sandboxSafe: false),
    ]
    let flat = CallerSandbox.flatpak(appID: "org.example.Flat")

    func check(
        _ caller: CallerSandbox, _ app: String, _ handler: String, _ options: [String: Value] = [:],
        resolve: (String) -> String? = { _ in nil }
    ) throws(SyncError) -> Confinement {
        let request = try RegistrationRequest(appID: app, tag: "t", handler: handler, options: options)
        return try SandboxPolicy.check(
            caller: caller, request: request, handlers: Self.handlers, home: "/home/u", resolve: resolve)
    }

    @Test func pathsMustStayInsideTheAppDirectory() {
        let dir = "/home/u/.var/app/org.example.Flat"
        #expect(SandboxPolicy.isInside(dir + "/outbox", directory: dir))
        #expect(SandboxPolicy.isInside(dir + "//outbox/", directory: dir))
        #expect(SandboxPolicy.isInside(dir, directory: dir + "/"))
        #expect(!SandboxPolicy.isInside(dir + "/../org.example.Other", directory: dir))
        #expect(!SandboxPolicy.isInside(dir + "/./x", directory: dir))
        #expect(!SandboxPolicy.isInside(dir + "ter/outbox", directory: dir))
        #expect(!SandboxPolicy.isInside("outbox", directory: dir))
        #expect(!SandboxPolicy.isInside("/etc", directory: dir))
    }

    /// Paths and app ids compare as bytes: a Kelvin sign (U+212A) is the letter K to Swift's
    /// String, not to the kernel or to bgsync.
    @Test func lookAlikeTextIsNotTheSame() {
        let kate = "/home/u/.var/app/org.kde.Kate"
        #expect(SandboxPolicy.isInside(kate + "/outbox", directory: kate))
        #expect(!SandboxPolicy.isInside("/home/u/.var/app/org.kde.\u{212A}ate/outbox", directory: kate))
        #expect(!SandboxPolicy.isInside("/home/u/.var/app/org.kde.\u{212A}ate", directory: kate))
        let kelvin = CallerSandbox.flatpak(appID: "org.kde.\u{212A}ate")
        #expect(throws: SyncError.self) { try SandboxPolicy.check(caller: kelvin, appID: "org.kde.Kate") }
        #expect(throws: Never.self) { try SandboxPolicy.check(caller: kelvin, appID: "org.kde.\u{212A}ate") }
    }

    @Test func theConfinementRecordedIsTheCallersOwn() throws {
        let own = "/home/u/.var/app/org.example.Flat"
        let ok: [String: Value] = ["outbox": .string(own + "/o"), "url": .string("https://a.example/")]
        #expect(
            try check(flat, "org.example.Flat", "upload", ok)
                == .sandboxed(kind: .flatpak, appID: "org.example.Flat", root: own))
        // The root is the data directory with links resolved, once: a link above it is followed.
        let links = [
            "/home/u": "/data/u", "/home/u/.var/app": "/data/u/.var/app", own: "/data/u/.var/app/org.example.Flat",
        ]
        let resolved = try check(flat, "org.example.Flat", "upload", ok) { links[$0] }
        #expect(resolved.root == "/data/u/.var/app/org.example.Flat")
        // The data directory itself swapped for a link is refused.
        #expect(throws: SyncError.self) {
            try check(flat, "org.example.Flat", "upload", ok) {
                ["/home/u/.var/app": "/home/u/.var/app", own: "/home/u/.ssh"][$0]
            }
        }
        #expect(
            try check(.snap(instance: "chat_x"), "snap.chat_x", "upload")
                == .sandboxed(kind: .snap, appID: "snap.chat_x", root: "/home/u/snap/chat_x"))
        #expect(try check(.unsandboxed, "org.example.Other", "exec", ["outbox": .string("/etc")]) == .unconfined)
    }

    @Test func sandboxedCallersAreHeldToTheirOwnAppIDAndSafeHandlers() throws {
        let own = "/home/u/.var/app/org.example.Flat"
        _ = try check(
            .snap(instance: "chat"), "snap.chat", "upload", ["outbox": .variant(.string("/home/u/snap/chat/o"))])
        #expect(throws: SyncError.self) { try check(.snap(instance: "chat_x"), "snap.chat", "upload") }
        #expect(throws: SyncError.self) { try check(flat, "org.example.Other", "upload") }
        #expect(throws: SyncError.self) { try check(flat, "org.example.Flat", "exec") }
        #expect(throws: SyncError.self) {
            try check(flat, "org.example.Flat", "upload", ["url": .string("file:///etc/passwd")])
        }
        #expect(throws: SyncError.self) {
            try check(flat, "org.example.Flat", "upload", ["outbox": .array(elementSignature: "y", [])])
        }
        #expect(throws: SyncError.self) { try check(.flatpak(appID: nil), "org.example.Flat", "upload") }
        // A link that exists at Register and points out is refused.
        #expect(throws: SyncError.self) {
            try check(flat, "org.example.Flat", "upload", ["outbox": .string(own + "/link")]) {
                $0 == own + "/link" ? "/etc" : nil
            }
        }
        do {
            _ = try check(flat, "org.example.Other", "upload")
        } catch {
            #expect(error.code == .accessDenied)
            #expect(error.message.contains("org.example.Flat"))
        }
        #expect(throws: SyncError.self) { try SandboxPolicy.check(caller: flat, appID: "org.example.Other") }
        try SandboxPolicy.check(caller: flat, appID: "org.example.Flat")
        try SandboxPolicy.check(caller: .unsandboxed, appID: "org.example.Other")
    }

    /// A third-party handler's declared options are checked the same way; an option no handler
    /// declares is the handler's own business (it is not opened by the host).
    @Test func declaredOptionsOfAnyHandlerAreChecked() throws {
        let own = "/home/u/.var/app/org.example.Flat"
        _ = try check(
            flat, "org.example.Flat", "thirdparty",
            [
                "source": .string(own + "/in"), "cache": .string(own + "/c"), "endpoint": .string("http://h.example/x"),
                "outbox": .string("/etc"), "url": .string("file:///x"),
            ])
        #expect(throws: SyncError.self) {
            try check(flat, "org.example.Flat", "thirdparty", ["cache": .string("/home/u/.ssh")])
        }
        #expect(throws: SyncError.self) {
            try check(flat, "org.example.Flat", "thirdparty", ["endpoint": .string("ftp://x.example/")])
        }
        #expect(throws: SyncError.self) { try check(flat, "org.example.Flat", "thirdparty", ["source": .int32(1)]) }
    }

    /// A URL option may hold a list (`fetch`'s `urls`): every URL in it is held to http(s).
    @Test func aURLOptionThatIsAListIsCheckedWhole() throws {
        let urls = { (list: [String]) in Value.array(elementSignature: "s", list.map(Value.string)) }
        _ = try check(
            flat, "org.example.Flat", "thirdparty", ["endpoint": urls(["https://a.example/1", "http://b/2"])])
        #expect(throws: SyncError.self) {
            try check(
                flat, "org.example.Flat", "thirdparty", ["endpoint": urls(["https://a.example/", "file:///etc"])])
        }
        #expect(throws: SyncError.self) {
            try check(flat, "org.example.Flat", "thirdparty", ["endpoint": .array(elementSignature: "i", [.int32(1)])])
        }
    }
}
