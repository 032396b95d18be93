// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import DBusKit
import Logging
import MainLoop

/// The agent's sleep monitor: logind on the system bus (or the bus at `bus`), followed on a
/// thread of its own and reported on `loop`. Without logind the agent never hears of a sleep
/// and holds no lock (logged once). Call `start()` on the loop's thread.
public func makeSleepMonitor(loop: MainLoop, logger: Logger, bus: BusAddress = .system) -> any SleepMonitor {
    LogindSleepMonitor(loop: loop, logger: logger, bus: bus)
}

final class LogindSleepMonitor: SleepMonitor {
    var onPrepareForSleep: ((Bool) -> Void)?
    /// Half of logind's InhibitDelayMaxSec (2.5 s with its default of 5 s): events asked to stop
    /// are killed then, which leaves the other half for them to end and the lock to go; the
    /// thread lets the lock go by itself shortly before the delay ends in any case.
    private(set) var stopGrace = LogindClientThread.defaultDelayLimit / 2

    private let loop: MainLoop
    private let logger: Logger
    private let bus: BusAddress
    private var thread: LogindClientThread?
    private var saidRefused = false
    /// Between PrepareForSleep(true) and (false).
    private var preparingForSleep = false

    init(loop: MainLoop, logger: Logger, bus: BusAddress) {
        self.loop = loop
        self.logger = logger
        self.bus = bus
    }

    deinit { thread?.stop() }

    func start() {
        guard thread == nil else { return }
        let target = SleepLoopBound(self)
        // As the power thread: it may outlive the loop, so it must not own it.
        let thread = LogindClientThread(bus: bus) { [weak loop] event in
            loop?.post { target.monitor?.receive(event) }
        }
        self.thread = thread
        thread.start()
    }

    func holdSleepDelay(_ hold: Bool) { thread?.hold(hold) }

    private func receive(_ event: SleepEvent) {
        switch event {
        case .delayLimit(let seconds, let unread):
            stopGrace = seconds / 2
            let delay =
                unread.map { "InhibitDelayMaxSec unread (\($0)), taken as logind's default \(seconds) s" }
                ?? "InhibitDelayMaxSec \(seconds) s"
            logger.info(
                "Following logind's sleep: a delay lock while syncs run; before sleep they get \(stopGrace) s to stop (\(delay))"
            )
        case .prepareForSleep(let sleeping):
            logger.info(sleeping ? "The machine is about to sleep; stopping running syncs" : "The machine woke up")
            preparingForSleep = sleeping
            onPrepareForSleep?(sleeping)
        case .lock(let held, let forced):
            if forced {
                logger.warning("Releasing the sleep delay lock before the delay ends, though syncs are still stopping")
            } else {
                logger.debug(held ? "Holding a sleep delay lock while syncs run" : "Released the sleep delay lock")
            }
            if held { saidRefused = false }
        case .lockRefused(let reason):
            if !saidRefused { logger.info("logind refused a sleep delay lock (\(reason)); syncs may be cut by sleep") }
            saidRefused = true
        case .failed(let reason):
            logger.info("Not following sleep: no logind on the system bus (\(reason))")
            thread = nil
            if preparingForSleep {
                // The PrepareForSleep(false) that would end it can no longer come: taken as
                // awake, or nothing would start again until the agent restarts.
                onPrepareForSleep?(false)
            }
        }
    }
}

/// Lets the logind thread's posted blocks reach the monitor; only used on the loop thread.
private final class SleepLoopBound: @unchecked Sendable {
    weak var monitor: LogindSleepMonitor?
    init(_ monitor: LogindSleepMonitor) { self.monitor = monitor }
}
