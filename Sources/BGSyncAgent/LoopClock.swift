// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import MainLoop

import struct Foundation.Date

/// The scheduler's clock on the real loop: system wall-clock time and one CLOCK_REALTIME
/// timerfd, so a back-off that ends at 14:05 ends then even across suspend.
final class LoopClock: SchedulerClock {
    private let timer: WallClockTimer
    var onWakeup: (() -> Void)?

    init(loop: MainLoop) {
        timer = WallClockTimer(loop: loop)
        timer.onFire = { [unowned self] in self.onWakeup?() }
    }

    func now() -> Date { Date() }

    func armWakeup(at date: Date?) { timer.arm(at: date) }
}
