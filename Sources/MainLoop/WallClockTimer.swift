// SPDX-License-Identifier: Apache-2.0
import CLinux

import struct Foundation.Date

#if canImport(Glibc)
import Glibc
#endif

/// One timer that fires at a wall-clock time (CLOCK_REALTIME, absolute), so a deadline such as
/// "retry at 14:05" holds across suspend and clock changes. A clock change also fires it, so
/// the owner can look again at what is due.
public final class WallClockTimer {
    private let fd: Int32
    private let loop: MainLoop
    private var watch: MainLoop.Watch?
    public var onFire: (() -> Void)?

    public init(loop: MainLoop) {
        self.loop = loop
        fd = timerfd_create(CLOCK_REALTIME, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        precondition(fd >= 0, "timerfd_create failed: \(String(cString: strerror(errno)))")
        watch = loop.addWatch(fd: fd, events: .readable) { [unowned self] _ in
            var expirations: UInt64 = 0
            _ = read(self.fd, &expirations, 8)  // ECANCELED on a clock change: fire all the same
            self.onFire?()
        }
    }

    deinit {
        if let watch { loop.removeWatch(watch) }
        close(fd)
    }

    /// Arms the timer for `date`, or disarms it for nil. A date in the past fires at once.
    public func arm(at date: Date?) {
        var spec = itimerspec()
        if let date {
            // Past the kernel's range (year 2262) is "never" for us; NaN fires at once.
            let since1970 = date.timeIntervalSince1970
            let seconds = since1970.isNaN ? 0.000_001 : min(max(since1970, 0.000_001), 9_000_000_000)
            spec.it_value.tv_sec = Int(seconds.rounded(.down))
            spec.it_value.tv_nsec = max(1, Int((seconds - seconds.rounded(.down)) * 1e9))
        }
        let flags = date == nil ? 0 : Int32(TFD_TIMER_ABSTIME) | Int32(TFD_TIMER_CANCEL_ON_SET)
        _ = timerfd_settime(fd, flags, &spec, nil as UnsafeMutablePointer<itimerspec>?)
    }
}
