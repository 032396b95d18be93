// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import BGSyncAgent

/// The parsers that tell a sandbox from its files and labels, on the strings Flatpak, snapd and
/// AppArmor actually produce. (The same rules on real processes: Tests/integration/test_isolation.py.)
struct SandboxIdentityTests {
    @Test func flatpakInfoNamesTheApp() {
        let info = """
            [Application]
            name=org.gnome.Maps
            runtime=runtime/org.gnome.Platform/x86_64/46

            [Instance]
            instance-id=2960346152
            app-path=/var/lib/flatpak/app/org.gnome.Maps/x86_64/stable/active/files
            """
        #expect(SandboxIdentity.flatpakAppID(fromInfo: info) == "org.gnome.Maps")
        #expect(SandboxIdentity.flatpakAppID(fromInfo: "[Instance]\nname=x.y\n[Application]\n  name = a.b \n") == "a.b")
        #expect(SandboxIdentity.flatpakAppID(fromInfo: "[Runtime]\nname=org.gnome.Platform\n") == nil)
        #expect(SandboxIdentity.flatpakAppID(fromInfo: "[Application]\nname=\n") == nil)
        #expect(SandboxIdentity.flatpakAppID(fromInfo: "") == nil)
    }

    /// Scope and service names as snapd and systemd make them, instances included.
    @Test(arguments: [
        (
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
                + "snap.firefox.firefox-1d2c4a5e-6b7c-4d8e-9f00-aabbccddeeff.scope\n", "firefox"
        ),
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/snap.chat_x.chat-9c1f.scope\n", "chat_x"),
        ("0::/user.slice/user@1000.service/app.slice/snap.chat_work2.chat-app-3f2e.scope\n", "chat_work2"),
        ("12:pids:/user.slice\n1:name=systemd:/user.slice/snap.chat-app.hook.configure-7a.scope\n0::/\n", "chat-app"),
        ("0::/system.slice/snap.chat_x.hook.install-0b1c.scope\n", "chat_x"),
        ("0::/system.slice/snap.lxd.daemon.service\n", "lxd"),
        ("0::/system.slice/snap.nextcloud_a1.php-fpm.service\n", "nextcloud_a1"),
        ("1:name=systemd:/user.slice/snap.vlc.vlc.5a6b7c8d-1111-2222-3333-444455556666.scope\n", "vlc"),
    ])
    func snapScopes(cgroup: String, instance: String) {
        #expect(SandboxIdentity.snap(fromCgroup: cgroup) == .instance(instance))
    }

    @Test func notSnapScopes() {
        #expect(
            SandboxIdentity.snap(
                fromCgroup: "0::/user.slice/user@1000.service/app.slice/app-gnome-org.gnome.Maps-1.scope\n") == .none)
        #expect(SandboxIdentity.snap(fromCgroup: "0::/system.slice/snapd.service\n") == .none)
        #expect(SandboxIdentity.snap(fromCgroup: "0::/system.slice/snap-core22-1380.mount\n") == .none)
        #expect(SandboxIdentity.snap(fromCgroup: "garbage") == .none)
    }

    /// What looks like a snap's scope but is not one snapd would make is refused, never taken
    /// for unsandboxed (it used to be: an instance key's '_' was not a snap-name character).
    @Test(arguments: [
        "0::/snap.Bad_Name.x.scope\n", "0::/snap.chat_.chat-1.scope\n", "0::/snap.chat_toolongkey1.chat-1.scope\n",
        "0::/snap.chat_x_y.chat-1.scope\n", "0::/snap.-chat.chat-1.scope\n", "0::/snap.chat.scope\n",
        "0::/snap..chat-1.scope\n", "0::/snap.chat.hook.Bad-1.scope\n", "0::/snap.123.app-1.scope\n",
        "0::/a/snap.chat.chat-1.scope\n1:name=systemd:/snap.other.other-2.scope\n",
    ])
    func unreadableSnapScopesAreRefused(cgroup: String) {
        guard case .unrecognised = SandboxIdentity.snap(fromCgroup: cgroup) else {
            Issue.record("\(cgroup) was not refused: \(SandboxIdentity.snap(fromCgroup: cgroup))")
            return
        }
    }

    @Test func appArmorLabels() {
        #expect(SandboxIdentity.snap(fromAppArmorLabel: "snap.chat.chat (enforce)\0") == .instance("chat"))
        #expect(SandboxIdentity.snap(fromAppArmorLabel: "snap.chat_x.chat (enforce)\0") == .instance("chat_x"))
        #expect(
            SandboxIdentity.snap(fromAppArmorLabel: "snap.spotify.hook.configure (complain)") == .instance("spotify"))
        #expect(SandboxIdentity.snap(fromAppArmorLabel: "snap.chat_x.hook.install (enforce)") == .instance("chat_x"))
        #expect(SandboxIdentity.snap(fromAppArmorLabel: "snap.chat+extras.hook.install (enforce)") == .instance("chat"))
        #expect(
            SandboxIdentity.snap(fromAppArmorLabel: "lxd-c1_</var/snap/lxd>//&snap.chat.chat (enforce)")
                == .instance("chat"))
        #expect(SandboxIdentity.snap(fromAppArmorLabel: "unconfined\0") == .none)
        #expect(SandboxIdentity.snap(fromAppArmorLabel: "/usr/bin/evince (enforce)") == .none)
        for label in [
            "snap.chat", "snap.chat_x_y.chat (enforce)", "snap.Chat.chat (enforce)", "snap-update-ns.chat (enforce)",
            "snap.chat.hook.x.y (enforce)", "snap.chat.chat//&snap.other.other (enforce)",
        ] {
            guard case .unrecognised = SandboxIdentity.snap(fromAppArmorLabel: label) else {
                Issue.record("\(label) was not refused")
                continue
            }
        }
    }
}
