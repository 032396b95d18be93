// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Logging
import MainLoop
import Synchronization

/// Keeps every log message, to check what a person reading the log would see.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])

    var messages: [String] { lines.withLock { $0 } }

    func logger() -> Logger {
        var logger = Logger(label: "test.network") { _ in RecordingHandler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }
}

private struct RecordingHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        recorder.append("\(event.level): \(event.message)")
    }
}

/// A monitor under test, its loop, and every status it reported through `onChange`.
final class MonitorHarness {
    let loop = MainLoop()
    let log = LogRecorder()
    let monitor: any NetworkMonitor
    private(set) var changes: [NetworkStatus] = []

    init(make: (MainLoop, Logger) -> any NetworkMonitor) {
        monitor = make(loop, log.logger())
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
