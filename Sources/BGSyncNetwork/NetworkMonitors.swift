// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Logging
import MainLoop

/// Where the agent learns whether it is online.
public enum NetworkMode: String, Sendable, CaseIterable {
    /// NetworkManager while it runs, else the kernel's default route.
    case automatic
    /// Only NetworkManager; while it is not running the network counts as offline.
    case networkManager = "networkmanager"
    /// Only the kernel: a default route means online; never metered.
    case kernel
    /// Always online and unmetered (for machines whose connectivity nothing can observe).
    case alwaysOnline = "always-online"
}

/// The agent calls this once. `automatic`: NetworkManager when it runs, else the kernel's view
/// (a default route means online; metered unknown → false) until NetworkManager appears; logs
/// once which one is in use and every switch. `networkmanager` also falls back to the kernel
/// when there is no system bus at all. Call `start()` on the loop's thread.
public func makeNetworkMonitor(mode: NetworkMode, loop: MainLoop, logger: Logger) -> any NetworkMonitor {
    switch mode {
    case .alwaysOnline: AlwaysOnlineMonitor(logger: logger)
    case .automatic, .networkManager, .kernel: SystemNetworkMonitor(mode: mode, loop: loop, logger: logger)
    }
}

/// `always-online`: a constant.
final class AlwaysOnlineMonitor: NetworkMonitor {
    let status = NetworkStatus.online
    var onChange: ((NetworkStatus) -> Void)?
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func start() {
        logger.info("Network mode always-online: the network counts as online and unmetered")
    }
}

/// Follows NetworkManager through libnm and/or the kernel's routing table, as the mode says.
final class SystemNetworkMonitor: NetworkMonitor {
    private(set) var status = NetworkStatus.offline
    var onChange: ((NetworkStatus) -> Void)?

    /// How long `start()` waits for NetworkManager's first answer, so the agent does not start
    /// offline and then flap; past it the fallback is used until the answer comes.
    static let firstAnswerTimeout = 3.0

    private enum Source: Equatable {
        case networkManager
        case kernel
        /// networkmanager mode while NetworkManager is not running.
        case nothing
    }

    private enum NetworkManagerKnowledge {
        case noAnswerYet
        case unavailable(String)
        case answered(NetworkManagerSnapshot)
    }

    private let mode: NetworkMode
    private let loop: MainLoop
    private let logger: Logger
    private let kernel: KernelRouteMonitor
    private var clientThread: NetworkManagerClientThread?
    private var networkManager = NetworkManagerKnowledge.noAnswerYet
    private var source: Source?

    init(mode: NetworkMode, loop: MainLoop, logger: Logger) {
        self.mode = mode
        self.loop = loop
        self.logger = logger
        self.kernel = KernelRouteMonitor(loop: loop, logger: logger)
    }

    deinit { clientThread?.stop() }

    func start() {
        guard source == nil else { return }
        kernel.onChange = { [unowned self] _ in self.update(notify: true) }
        if mode != .kernel { startClientThread() }
        update(notify: false)
    }

    private func startClientThread() {
        let firstAnswer = FirstValue<NetworkManagerEvent>()
        let target = LoopBound(self)
        // The thread may outlive the agent's loop (stop() does not wait for it): it must not own it,
        // or the loop and all its closures hold on to the agent's objects at exit.
        let thread = NetworkManagerClientThread { [weak loop] event in
            firstAnswer.offer(event)
            loop?.post { target.monitor?.receive(event) }
        }
        clientThread = thread
        thread.start()
        if let event = firstAnswer.wait(seconds: Self.firstAnswerTimeout) {
            absorb(event)
        } else {
            logger.warning(
                "NetworkManager did not answer within \(Self.firstAnswerTimeout) s; using the fallback until it does")
        }
    }

    /// A later answer from the libnm thread, on the loop thread.
    private func receive(_ event: NetworkManagerEvent) {
        absorb(event)
        update(notify: true)
    }

    private func absorb(_ event: NetworkManagerEvent) {
        switch event {
        case .snapshot(let snapshot): networkManager = .answered(snapshot)
        case .failed(let reason):
            networkManager = .unavailable(reason)
            clientThread = nil
        }
    }

    /// Picks the source, switches the kernel watch on or off, logs switches and reports a
    /// changed status.
    private func update(notify: Bool) {
        let next: Source
        switch networkManager {
        case .answered(let snapshot) where snapshot.running: next = .networkManager
        case .unavailable: next = .kernel
        case .answered, .noAnswerYet: next = mode == .networkManager ? .nothing : .kernel
        }
        if next == .kernel { kernel.start() } else { kernel.stop() }

        let newStatus: NetworkStatus
        switch (next, networkManager) {
        case (.networkManager, .answered(let snapshot)): newStatus = snapshot.status
        case (.kernel, _): newStatus = kernel.hasDefaultRoute ? .online : .offline
        default: newStatus = .offline
        }

        if next != source {
            logSwitch(from: source, to: next, status: newStatus)
            source = next
        }
        guard newStatus != status else { return }
        status = newStatus
        logger.debug("Network is now \(newStatus)")
        if notify { onChange?(newStatus) }
    }

    private func logSwitch(from old: Source?, to new: Source, status: NetworkStatus) {
        let why: String
        switch networkManager {
        case .unavailable(let reason): why = "Cannot reach NetworkManager (\(reason))"
        case .noAnswerYet where mode != .kernel: why = "NetworkManager has not answered yet"
        default: why = old == .networkManager ? "NetworkManager stopped" : "NetworkManager is not running"
        }
        let message: Logger.Message
        switch new {
        case .networkManager:
            message =
                old == nil
                ? "Following NetworkManager (network \(status))"
                : "NetworkManager is running again; following it (network \(status))"
        case .kernel:
            if mode == .kernel {
                message = "Following the kernel's default route (network \(status))"
            } else if case .unavailable = networkManager {
                message = "\(why); following the kernel's default route from now on (network \(status))"
            } else {
                message = "\(why); following the kernel's default route until it is back (network \(status))"
            }
        case .nothing:
            message = "\(why); the network counts as offline until it is back (mode networkmanager)"
        }
        logger.info(message)
    }
}

/// Lets the libnm thread's posted blocks reach the monitor. The reference is only used on the
/// loop thread (inside `loop.post`), which is what makes the unchecked Sendable sound.
private final class LoopBound: @unchecked Sendable {
    weak var monitor: SystemNetworkMonitor?
    init(_ monitor: SystemNetworkMonitor) { self.monitor = monitor }
}
