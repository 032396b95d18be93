// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncNetwork
import Foundation
import Testing

/// The kernel view follows real route changes, announced over netlink. The route changes happen
/// in a fresh network namespace: the test binary re-runs itself under `unshare --net`, filtered
/// to `followsRoutesInsideANetworkNamespace`.
struct KernelRouteMonitorTests {
    static let childMarker = "BGSYNC_NETWORK_TEST_IN_NETNS"

    @Test(.enabled(if: geteuid() == 0, "needs root: unshare --net and adding routes"))
    func kernelViewFollowsDefaultRouteChanges() throws {
        // Loopback up first: Foundation's run loop wakes itself through a loopback socket.
        try expectChildTestPasses(
            "followsRoutesInsideANetworkNamespace", marker: Self.childMarker,
            wrapper: ["unshare", "--net", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
    }

    /// The child's half, in a network namespace of its own (no routes at first); a no-op otherwise.
    @Test(
        .enabled(
            if: ProcessInfo.processInfo.environment[childMarker] != nil,
            "runs only as the child of kernelViewFollowsDefaultRouteChanges"))
    func followsRoutesInsideANetworkNamespace() throws {
        let harness = MonitorHarness { makeNetworkMonitor(mode: .kernel, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == .offline)

        _ = try runCommand(["ip", "link", "add", "bgs0", "type", "veth", "peer", "name", "bgs1"])
        _ = try runCommand(["ip", "link", "set", "bgs0", "up"])
        _ = try runCommand(["ip", "link", "set", "bgs1", "up"])
        _ = try runCommand(["ip", "addr", "add", "10.78.0.2/24", "dev", "bgs0"])
        _ = try runCommand(["ip", "route", "add", "default", "via", "10.78.0.1"])
        #expect(harness.waitForChanges(1))
        _ = try runCommand(["ip", "route", "del", "default"])
        #expect(harness.waitForChanges(2))
        #expect(harness.changes == [.online, .offline])
    }
}
