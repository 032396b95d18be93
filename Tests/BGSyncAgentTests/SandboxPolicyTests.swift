import BGSyncCore
import BGSyncValue
import Testing

@testable import BGSyncAgent

/// The parsers that tell a sandbox from its files and labels, on the strings Flatpak, snapd
/// and AppArmor actually produce. (The same rules on real processes: Tests/integration/test_isolation.py.)
struct SandboxParsingTests {
    @Test func flatpakInfoNamesTheApp() {
        let info = """
            [Application]
            name=org.gnome.Maps
            runtime=runtime/org.gnome.Platform/x86_64/46

            [Instance]
            instance-id=2960346152
            app-path=/var/lib/flatpak/app/org.gnome.Maps/x86_64/stable/active/files
            """
        #expect(SandboxPolicy.flatpakAppID(fromInfo: info) == "org.gnome.Maps")
        #expect(SandboxPolicy.flatpakAppID(fromInfo: "[Instance]\nname=x.y\n[Application]\n  name = a.b \n") == "a.b")
        #expect(SandboxPolicy.flatpakAppID(fromInfo: "[Runtime]\nname=org.gnome.Platform\n") == nil)
        #expect(SandboxPolicy.flatpakAppID(fromInfo: "[Application]\nname=\n") == nil)
        #expect(SandboxPolicy.flatpakAppID(fromInfo: "") == nil)
    }

    @Test func snapScopeInTheCgroup() {
        let v2 = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/snap.firefox.firefox-1d2c.scope\n"
        #expect(SandboxPolicy.snapName(fromCgroup: v2) == "firefox")
        let hybrid = "12:pids:/user.slice\n1:name=systemd:/user.slice/snap.chat-app.hook.configure-7.scope\n0::/\n"
        #expect(SandboxPolicy.snapName(fromCgroup: hybrid) == "chat-app")
        #expect(SandboxPolicy.snapName(fromCgroup: "0::/user.slice/user@1000.service/app.slice/app-gnome-org.gnome.Maps-1.scope\n") == nil)
        #expect(SandboxPolicy.snapName(fromCgroup: "0::/snap.Bad_Name.x.scope\n") == nil)
        #expect(SandboxPolicy.snapName(fromCgroup: "0::/snapd.service\n") == nil)
        #expect(SandboxPolicy.snapName(fromCgroup: "garbage") == nil)
    }

    @Test func snapAppArmorLabel() {
        #expect(SandboxPolicy.snapName(fromAppArmorLabel: "snap.chat.chat (enforce)\0") == "chat")
        #expect(SandboxPolicy.snapName(fromAppArmorLabel: "snap.spotify.hook.configure (complain)") == "spotify")
        #expect(SandboxPolicy.snapName(fromAppArmorLabel: "unconfined\0") == nil)
        #expect(SandboxPolicy.snapName(fromAppArmorLabel: "/usr/bin/evince (enforce)") == nil)
        #expect(SandboxPolicy.snapName(fromAppArmorLabel: "snap.chat") == nil)
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

    @Test func sandboxedCallersAreHeldToTheirOwnAppIDAndSafeHandlers() throws {
        let handlers = [
            "upload": HandlerInfo(name: "upload", description: "", sandboxSafe: true),
            "exec": HandlerInfo(name: "exec", description: "", sandboxSafe: false),
        ]
        let flat = CallerSandbox.flatpak(appID: "org.example.Flat")
        func check(_ caller: CallerSandbox, _ app: String, _ handler: String?, _ options: [String: Value] = [:]) throws(SyncError) {
            try SandboxPolicy.check(
                caller: caller, member: "Register", appID: app, handler: handler, options: options, handlers: handlers,
                home: "/home/u")
        }
        try check(flat, "org.example.Flat", "upload", ["outbox": .string("/home/u/.var/app/org.example.Flat/o"), "url": .string("https://a.example/")])
        try check(.unsandboxed, "org.example.Other", "exec", ["outbox": .string("/etc")])
        try check(.snap(name: "chat"), "snap.chat", "upload", ["outbox": .variant(.string("/home/u/snap/chat/o"))])
        #expect(throws: SyncError.self) { try check(flat, "org.example.Other", nil) }
        #expect(throws: SyncError.self) { try check(flat, "org.example.Flat", "exec") }
        #expect(throws: SyncError.self) { try check(flat, "org.example.Flat", "upload", ["url": .string("file:///etc/passwd")]) }
        #expect(throws: SyncError.self) { try check(flat, "org.example.Flat", "upload", ["outbox": .array(elementSignature: "y", [])]) }
        #expect(throws: SyncError.self) { try check(.flatpak(appID: nil), "org.example.Flat", nil) }
        do {
            try check(flat, "org.example.Other", nil)
        } catch {
            #expect(error.code == .accessDenied)
            #expect(error.message.contains("org.example.Flat"))
        }
    }
}
