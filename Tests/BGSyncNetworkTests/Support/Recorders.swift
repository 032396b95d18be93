// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Logging
import MainLoop
import Synchronization
import TestKit

/// A monitor under test, its loop, and every status it reported through `onChange`.
final class MonitorHarness {
    let loop = MainLoop()
    let log = LogRecorder()
    let monitor: any NetworkMonitor
    private(set) var changes: [NetworkStatus] = []

    init(make: (MainLoop, Logger) -> any NetworkMonitor) {
        monitor = make(loop, log.logger(label: "test.network"))
        monitor.onChange = { [unowned self] status in self.changes.append(status) }
    }

    /// Drives the loop until `condition` holds or `timeout` seconds pass; returns whether it held.
    @discardableResult
    func wait(timeout: Double = 10, until condition: () -> Bool) -> Bool {
        let deadline = MainLoop.monotonicNow() + UInt64(timeout * 1e9)
        while !condition() {
            let now = MainLoop.monotonicNow()
            guard now < deadline else { return false }
            loop.iterate(timeout: Double(deadline - now) / 1e9)
        }
        return true
    }

    /// Waits for the `count`-th reported change.
    @discardableResult
    func waitForChanges(_ count: Int, timeout: Double = 10) -> Bool {
        wait(timeout: timeout) { changes.count >= count }
    }
}
