// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWorkers
import DBusKit
import Logging
import MainLoop

import struct Foundation.Date

/// The `app` handler: a sync runs the app's own code. The agent calls org.bgsync.App.Sync on the
/// bus name equal to the registration's app id, at the app id's GApplication object path; the bus
/// starts an app that is not running but has a service file (DBusActivatable apps, Flatpak exports).
///
/// Why it lives in the agent and not in a plugin: the plugin ABI runs `handle` synchronously in a
/// worker process, one event at a time, so an app that takes minutes to answer (or is being
/// started by the bus) would hold a whole worker process for that time, and the worker would
/// need a bus connection of its own. Here the call is one libdbus pending call on the agent's
/// connection, answered through its MainLoop: a hung app costs one event slot (the scheduler's
/// concurrent-events limit), never a process or the loop. RoutingDispatcher puts it behind the
/// same EventDispatcher port as the workers, so outcomes, signals and the time cap are the same.
///
/// Confinement comes free: the only name called is the registration's app id, and a sandboxed
/// app may only register its own id (SandboxPolicy), so an app can wake nobody but itself.
final class AppHandler: EventDispatcher {
    static let info = HandlerInfo(
        name: "app", description: "Calls the app itself (org.bgsync.App.Sync on its app id), starting it if need be",
        sandboxSafe: true)

    private let connection: DBusConnection
    private let loop: MainLoop
    private let logger: Logger
    private var calls: [UInt64: AppCall] = [:]

    init(connection: DBusConnection, loop: MainLoop, logger: Logger) {
        self.connection = connection
        self.loop = loop
        self.logger = logger
    }

    /// The number of calls in flight (for tests and the log).
    var runningCount: Int { calls.count }

    func dispatch(_ event: SyncEvent, completion: @escaping (HandlerOutcome) -> Void) {
        let call = AppCall(event: event, completion: completion)
        calls[event.id] = call
        let appID = event.key.appID
        guard let path = ApplicationNames.objectPath(forApplicationID: appID) else {
            return finish(call, .failure(detail: "'\(appID)' has no GApplication object path"))
        }
        let remaining = event.deadline.timeIntervalSinceNow
        guard remaining > 0 else { return finish(call, .retry(after: nil, detail: "timeout")) }
        do throws(DBusError) {
            // The watch first: the bus applies it before it routes the call, so an exit cannot
            // slip between them. An old owner leaving (mid-call, or having taken the call) ends it.
            call.watch = try connection.watchNameOwner(appID) { [unowned self, unowned call] oldOwner, _ in
                guard !oldOwner.isEmpty, !call.done else { return }
                self.logger.warning(
                    "\(event.key): \(appID) left the bus during Sync (it was \(oldOwner))",
                    metadata: event.key.logMetadata)
                self.finish(call, AppContract.exited(appID: appID))
            }
            call.pending = try connection.callAsync(
                destination: appID, path: path, interface: AppContract.interface, method: AppContract.method,
                arguments: AppContract.arguments(for: event), timeout: remaining,
                replySignature: AppContract.replySignature
            ) { [unowned self, unowned call] reply in
                self.answered(call, reply, path: path)
            }
        } catch {
            return finish(call, .retry(after: nil, detail: "the call to \(appID) could not be made: \(error.message)"))
        }
        // libdbus's timeout is monotonic; the cap is wall-clock (as the workers'), so a suspend
        // or a clock change that passes the deadline also ends the call.
        let timer = WallClockTimer(loop: loop)
        timer.onFire = { [unowned self, unowned call] in
            guard !call.done else { return }
            if Date() >= event.deadline {
                self.logger.warning(
                    "\(event.key): \(appID) did not answer Sync within the time cap", metadata: event.key.logMetadata)
                self.finish(call, .retry(after: nil, detail: "timeout"))
            } else {
                call.deadlineTimer?.arm(at: event.deadline)  // a clock change fired it early
            }
        }
        timer.arm(at: event.deadline)
        call.deadlineTimer = timer
        logger.debug(
            "\(event.key): calling \(AppContract.interface).\(AppContract.method) on \(appID) at \(path)",
            metadata: event.key.logMetadata)
    }

    private func answered(_ call: AppCall, _ reply: DBusReply, path: String) {
        guard !call.done else { return }
        let appID = call.event.key.appID
        let outcome: HandlerOutcome
        switch reply.result {
        case .success(let arguments):
            outcome = AppContract.outcome(ofReply: arguments, appID: appID)
        case .failure(let error):
            outcome = AppContract.outcome(ofError: error, from: reply.sender, appID: appID, path: path)
            if case .retry(_, "timeout", _) = outcome.kind {
                logger.warning(
                    "\(call.event.key): \(appID) did not answer Sync within the time cap",
                    metadata: call.event.key.logMetadata)
            }
        }
        finish(call, outcome)
    }

    /// Ends a call once: stops its watch, pending call and timer, and completes on the loop soon
    /// (never inside `dispatch` or a libdbus callback).
    private func finish(_ call: AppCall, _ outcome: HandlerOutcome) {
        guard !call.done else { return }
        call.done = true
        call.pending?.cancel()
        call.watch?.cancel()
        call.deadlineTimer?.arm(at: nil)
        call.deadlineTimer = nil
        let completion = call.completion
        let id = call.event.id
        loop.addTimer(after: 0) { [weak self] in
            self?.calls[id] = nil
            completion(outcome)
        }
    }

    /// A condition the sync needs was lost. org.bgsync.App has no way to tell the app to stop, so
    /// the call is given the grace period to answer and then dropped, as a worker is killed; the
    /// scheduler records either end as `interrupted`.
    func cancel(eventID: UInt64, grace: Double) {
        guard let call = calls[eventID], !call.done else { return }
        loop.addTimer(after: max(0, grace)) { [weak self, weak call] in
            guard let self, let call, !call.done else { return }
            self.logger.warning(
                "\(call.event.key): the app did not answer Sync within \(grace) s of the stop",
                metadata: call.event.key.logMetadata)
            self.finish(call, .retry(after: nil, detail: "interrupted (the app did not answer in time)"))
        }
    }

    // MARK: - Register's early warning

    /// Called after a registration with this handler was accepted: when the app is neither on the
    /// bus nor activatable, says so in the log now rather than at its first sync. Asks the bus
    /// without waiting (NameHasOwner, then ListActivatableNames).
    func registered(_ key: RegistrationKey) {
        let appID = key.appID
        let bus = (name: "org.freedesktop.DBus", path: "/org/freedesktop/DBus")
        do throws(DBusError) {
            try connection.callAsync(
                destination: bus.name, path: bus.path, interface: bus.name, method: "NameHasOwner",
                arguments: [.string(appID)], timeout: 25, replySignature: "b"
            ) { [weak self] reply in
                guard let self, case .success(let values) = reply.result, values.first?.boolValue == false else {
                    return
                }
                self.checkActivatable(key)
            }
        } catch {
            logger.debug(
                "\(key): cannot ask the bus whether \(appID) can be reached: \(error.message)",
                metadata: key.logMetadata)
        }
    }

    private func checkActivatable(_ key: RegistrationKey) {
        let bus = "org.freedesktop.DBus"
        _ = try? connection.callAsync(
            destination: bus, path: "/org/freedesktop/DBus", interface: bus, method: "ListActivatableNames",
            timeout: 25, replySignature: "as"
        ) { [weak self] reply in
            guard let self, case .success(let values) = reply.result, let names = values.first?.arrayValue else {
                return
            }
            if !names.contains(where: { $0.stringValue.map { ExactText.sameBytes($0, key.appID) } ?? false }) {
                let why = AppContract.notActivatable(appID: key.appID)
                let message =
                    "\(key) uses handler 'app', but \(why); its syncs are retried until the app is running "
                    + "or installed"
                self.logger.warning("\(message)", metadata: key.logMetadata)
            }
        }
    }
}

/// One Sync call in flight.
private final class AppCall {
    let event: SyncEvent
    let completion: (HandlerOutcome) -> Void
    var pending: DBusPendingCall?
    var watch: NameOwnerWatch?
    var deadlineTimer: WallClockTimer?
    var done = false

    init(event: SyncEvent, completion: @escaping (HandlerOutcome) -> Void) {
        self.event = event
        self.completion = completion
    }
}
