// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import DBusKit
import Dispatch
import Logging
import MainLoop
import Synchronization

/// Where the agent learns about the power supply.
public enum PowerMode: String, Sendable, CaseIterable {
    /// UPower and power-profiles-daemon on the system bus.
    case upower
    /// Always on AC, never power-saver (for machines nothing can observe, and tests).
    case ac
}

/// The agent's power monitor. `upower`: UPower and power-profiles-daemon on the system bus (or
/// the bus at `bus`), followed on a thread of their own and reported on `loop`; without UPower
/// the machine counts as on AC (logged once), without power-profiles-daemon never power-saver.
/// Call `start()` on the loop's thread.
public func makePowerMonitor(
    mode: PowerMode, loop: MainLoop, logger: Logger, bus: BusAddress = .system
) -> any PowerMonitor {
    switch mode {
    case .upower: SystemPowerMonitor(loop: loop, logger: logger, bus: bus)
    case .ac: ConstantPowerMonitor(logger: logger)
    }
}

/// `ac`: a constant.
final class ConstantPowerMonitor: PowerMonitor {
    let status = PowerStatus.ac
    var onChange: ((PowerStatus) -> Void)?
    private let logger: Logger
    init(logger: Logger) { self.logger = logger }
    func start() { logger.info("Power mode ac: the machine counts as on AC, never power-saver") }
}

final class SystemPowerMonitor: PowerMonitor {
    private(set) var status = PowerStatus.ac
    var onChange: ((PowerStatus) -> Void)?

    /// How long `start()` waits for the first reading, so the agent does not start on AC and
    /// then stop what it started.
    static let firstAnswerTimeout = 3.0

    private let loop: MainLoop
    private let logger: Logger
    private let bus: BusAddress
    private var thread: PowerClientThread?
    private var saidNoUPower = false
    private var knewUPower: Bool?

    init(loop: MainLoop, logger: Logger, bus: BusAddress) {
        self.loop = loop
        self.logger = logger
        self.bus = bus
    }

    deinit { thread?.stop() }

    func start() {
        guard thread == nil else { return }
        let first = FirstValue<PowerEvent>()
        let target = PowerLoopBound(self)
        // The thread may outlive the agent's loop (stop() does not wait for it): it must not own it,
        // or the loop and all its closures hold on to the agent's objects at exit.
        let thread = PowerClientThread(bus: bus) { [weak loop] event in
            first.offer(event)
            loop?.post { target.monitor?.receive(event, notify: true) }
        }
        self.thread = thread
        thread.start()
        if let event = first.wait(seconds: Self.firstAnswerTimeout) {
            receive(event, notify: false)
        } else {
            logger.warning("UPower did not answer within \(Self.firstAnswerTimeout) s; counting as on AC until it does")
        }
    }

    func refresh() { thread?.refresh() }

    private func receive(_ event: PowerEvent, notify: Bool) {
        let next: PowerStatus
        switch event {
        case .failed(let reason):
            if !saidNoUPower { logger.info("No system bus for UPower (\(reason)); counting as on AC") }
            saidNoUPower = true
            thread = nil
            next = .ac
        case .snapshot(let snapshot):
            if !snapshot.upower, !saidNoUPower {
                logger.info("UPower is not running; counting as on AC")
                saidNoUPower = true
            } else if snapshot.upower, knewUPower != true {
                logger.info("Following UPower (\(snapshot.status))")
            }
            knewUPower = snapshot.upower
            next = snapshot.status
        }
        guard next != status else { return }
        status = next
        logger.debug("Power is now \(next)")
        if notify { onChange?(next) }
    }
}

/// Lets the bus thread's posted blocks reach the monitor; only used on the loop thread.
private final class PowerLoopBound: @unchecked Sendable {
    weak var monitor: SystemPowerMonitor?
    init(_ monitor: SystemPowerMonitor) { self.monitor = monitor }
}
