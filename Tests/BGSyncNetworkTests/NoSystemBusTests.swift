// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncNetwork
import Foundation
import Testing

/// Without any system bus, NMClient cannot be created and the monitor falls back to the kernel.
/// GIO's system-bus connection is process-wide, so this runs in a child process: the test binary
/// itself, filtered to `withoutSystemBus`, with DBUS_SYSTEM_BUS_ADDRESS pointing nowhere.
struct NoSystemBusTests {
    static let childMarker = "BGSYNC_NETWORK_TEST_NO_SYSTEM_BUS"

    @Test func fallsBackToTheKernelWhenThereIsNoSystemBus() throws {
        try expectChildTestPasses(
            "withoutSystemBus", marker: Self.childMarker,
            environment: ["DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bgsync-test-bus"])
    }

    /// The child's half; a no-op in a normal run.
    @Test(
        .enabled(
            if: ProcessInfo.processInfo.environment[childMarker] != nil,
            "runs only as the child of fallsBackToTheKernelWhenThereIsNoSystemBus"))
    func withoutSystemBus() throws {
        let harness = MonitorHarness { makeNetworkMonitor(mode: .automatic, loop: $0, logger: $1) }
        harness.monitor.start()
        #expect(harness.monitor.status == (try systemHasDefaultRoute() ? .online : .offline))
        #expect(
            harness.log.messages.contains {
                $0.contains("Cannot reach NetworkManager") && $0.contains("following the kernel's default route")
            }, "log: \(harness.log.messages)")
    }
}
