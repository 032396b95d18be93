// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncNetwork
import Foundation
import Testing

/// The monitor against the real NetworkManager of Tests/integration/netns.py. It runs only when
/// that harness starts this test binary inside its namespace
/// (test_network_real_nm.py::test_swift_monitor_follows_the_real_networkmanager), which sets
/// BGSYNC_REAL_NM=1 and DBUS_SYSTEM_BUS_ADDRESS to the harness's private system bus.
struct RealNetworkManagerTests {
    @Test(
        .enabled(
            if: ProcessInfo.processInfo.environment["BGSYNC_REAL_NM"] == "1",
            "needs the real NetworkManager of Tests/integration/netns.py; run by test_network_real_nm.py"))
    func followsARealNetworkManager() throws {
        let harness = MonitorHarness { makeNetworkMonitor(mode: .networkManager, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == .online)

        _ = try runCommand(["nmcli", "networking", "off"])
        #expect(harness.wait { harness.monitor.status == .offline })
        _ = try runCommand(["nmcli", "networking", "on"])
        #expect(harness.wait { harness.monitor.status == .online })
        // NetworkManager passes through intermediate states; only real changes are reported.
        #expect(harness.changes == [.offline, .online])
    }
}
