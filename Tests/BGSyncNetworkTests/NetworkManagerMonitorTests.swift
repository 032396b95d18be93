// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncNetwork
import Foundation
import MainLoop
import Testing

/// The monitor against python-dbusmock's NetworkManager on a private system bus.
/// Serialized: there is one bus and one NetworkManager name.
@Suite(.serialized)
struct NetworkManagerMonitorTests {
    // NMState values.
    static let disconnected: UInt32 = 20, connectedSite: UInt32 = 60, connectedGlobal: UInt32 = 70
    // NMMetered values.
    static let meteredYes: UInt32 = 1, meteredNo: UInt32 = 2, meteredGuessYes: UInt32 = 3

    init() throws {
        _ = try PrivateSystemBus.shared.get()
    }

    @Test func statusIsRightAsSoonAsStartReturns() throws {
        let mock = try NetworkManagerMock(state: Self.connectedGlobal)
        defer { mock.stop() }
        let harness = MonitorHarness { makeNetworkMonitor(mode: .automatic, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == .online)
        #expect(harness.log.messages.contains { $0.contains("Following NetworkManager") })
        // A later change shows the start did not leave a stale update behind (no flapping).
        try mock.setState(Self.disconnected)
        harness.waitForChanges(1)
        #expect(harness.changes == [.offline])
    }

    /// The libnm thread ends soon after the monitor goes, not at once (stop() does not wait): it
    /// must not own the loop meanwhile, or at the agent's exit the loop, and what hangs on it,
    /// is still in use.
    @Test func theClientThreadDoesNotKeepTheLoopAlive() throws {
        let mock = try NetworkManagerMock(state: Self.connectedGlobal)
        defer { mock.stop() }
        weak var loop: MainLoop?
        do {
            let harness = MonitorHarness { makeNetworkMonitor(mode: .automatic, loop: $0, logger: $1) }
            harness.monitor.start()
            #expect(harness.monitor.status == .online)
            loop = harness.loop
        }
        #expect(loop == nil, "the loop outlived the monitor and its owner")
    }

    @Test func onlineOnlyWhenConnectedGlobal() throws {
        let mock = try NetworkManagerMock(state: Self.disconnected)
        defer { mock.stop() }
        let harness = MonitorHarness { makeNetworkMonitor(mode: .automatic, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == .offline)

        try mock.setState(Self.connectedGlobal)
        harness.waitForChanges(1)
        #expect(harness.monitor.status == .online)

        // Site-only connectivity is not online; waiting for it also shows 70 was reported once.
        try mock.setState(Self.connectedSite)
        harness.waitForChanges(2)
        #expect(harness.changes == [.online, .offline])
    }

    @Test func meteredWhenNetworkManagerSaysYesOrGuessYes() throws {
        let mock = try NetworkManagerMock(state: Self.connectedGlobal)
        defer { mock.stop() }
        let harness = MonitorHarness { makeNetworkMonitor(mode: .networkManager, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == .online)

        let meteredOnline = NetworkStatus(online: true, metered: true)
        try mock.setMetered(Self.meteredYes)
        harness.waitForChanges(1)
        try mock.setMetered(Self.meteredNo)
        harness.waitForChanges(2)
        try mock.setMetered(Self.meteredGuessYes)
        harness.waitForChanges(3)
        #expect(harness.changes == [meteredOnline, .online, meteredOnline])
    }

    @Test func automaticFallsBackToTheKernelWhileNetworkManagerIsGone() throws {
        let kernelOnline = try systemHasDefaultRoute()
        let kernelView: NetworkStatus = kernelOnline ? .online : .offline
        let otherView: NetworkStatus = kernelOnline ? .offline : .online
        // NetworkManager first says the opposite of the kernel, so each switch is visible.
        let mock = try NetworkManagerMock(state: kernelOnline ? Self.disconnected : Self.connectedGlobal)
        defer { mock.stop() }
        let harness = MonitorHarness { makeNetworkMonitor(mode: .automatic, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == otherView)

        mock.stop()
        #expect(harness.waitForChanges(1))
        #expect(harness.changes == [kernelView])
        #expect(harness.log.messages.contains { $0.contains("NetworkManager stopped; following the kernel") })

        try mock.start()  // comes back saying connected-global, as the template does
        #expect(harness.wait { harness.log.messages.contains { $0.contains("NetworkManager is running again") } })
        try mock.setState(kernelOnline ? Self.disconnected : Self.connectedGlobal)
        #expect(harness.wait { harness.monitor.status == otherView })
        #expect(harness.changes == [kernelView, otherView])
    }

    @Test func networkManagerModeCountsAMissingNetworkManagerAsOffline() throws {
        let mock = try NetworkManagerMock(state: Self.connectedGlobal)
        defer { mock.stop() }
        let harness = MonitorHarness { makeNetworkMonitor(mode: .networkManager, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == .online)

        mock.stop()
        #expect(harness.waitForChanges(1))
        #expect(harness.changes == [.offline])
        #expect(harness.log.messages.contains { $0.contains("NetworkManager stopped; the network counts as offline") })

        try mock.start()
        #expect(harness.waitForChanges(2))
        #expect(harness.changes == [.offline, .online])
    }

    @Test func kernelModeFollowsTheDefaultRoute() throws {
        let harness = MonitorHarness { makeNetworkMonitor(mode: .kernel, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == (try systemHasDefaultRoute() ? .online : .offline))
        #expect(harness.log.messages.contains { $0.contains("Following the kernel's default route") })
    }

    @Test func alwaysOnlineIsOnlineAndUnmetered() {
        let harness = MonitorHarness { makeNetworkMonitor(mode: .alwaysOnline, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == NetworkStatus(online: true, metered: false))
    }

    @Test func modeNamesAreTheConfigurationSpellings() {
        #expect(NetworkMode.allCases.map(\.rawValue) == ["automatic", "networkmanager", "kernel", "always-online"])
    }
}

/// The kernel's answer as `ip route` gives it, independent of the code under test.
func systemHasDefaultRoute() throws -> Bool {
    let v4 = try runCommand(["ip", "-4", "route", "show", "default"])
    let v6 = try runCommand(["ip", "-6", "route", "show", "default"])
    return !(v4 + v6).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
}
