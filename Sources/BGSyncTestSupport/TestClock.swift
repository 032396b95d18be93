// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

import struct Foundation.Date

/// A clock that only moves when told, so tests run years of back-off in microseconds.
public final class TestClock: SchedulerClock {
    public private(set) var current: Date
    public private(set) var armed: Date?
    /// How many times the wake-up fired: a scheduler with nothing due must not wake at all.
    public private(set) var wakeups = 0
    public var onWakeup: (() -> Void)?

    public init(start: Date = Date(timeIntervalSince1970: 1_700_000_000)) { current = start }

    public func now() -> Date { current }

    public func armWakeup(at date: Date?) { armed = date }

    /// Moves time forward, firing the wake-up at each armed time passed on the way.
    public func advance(by seconds: Double) {
        let target = current.addingTimeInterval(seconds)
        while let due = armed, due <= target {
            current = max(current, due)
            armed = nil
            wakeups += 1
            onWakeup?()
        }
        current = target
    }

    /// Moves time forward without firing anything, as a machine asleep does: its timers are due
    /// but nobody runs them until it wakes.
    public func sleep(for seconds: Double) {
        current = current.addingTimeInterval(seconds)
    }
}
