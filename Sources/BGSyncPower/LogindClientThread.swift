// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit
import Foundation
import MainLoop
import Synchronization

/// What the logind thread reports.
enum SleepEvent: Sendable, Equatable {
    /// logind's InhibitDelayMaxSec, in seconds (read at start), or its default and why it
    /// could not be read.
    case delayLimit(Double, unread: String?)
    /// PrepareForSleep(true) (about to sleep) or (false) (woke up).
    case prepareForSleep(Bool)
    /// The delay lock was taken (true) or let go (false); `forced`: let go because the delay
    /// was nearly over while events still ran.
    case lock(held: Bool, forced: Bool)
    /// Inhibit failed; no lock is held.
    case lockRefused(String)
    /// No system bus, or logind cannot be followed; nothing more will come.
    case failed(String)
}

/// Talks to logind on the system bus on a thread of its own (as PowerClientThread does for
/// UPower), so that a slow logind never holds up the agent's loop: follows PrepareForSleep and
/// takes or releases the "delay" lock on sleep (Inhibit returns a file descriptor; closing it
/// releases the lock) as `hold` asks. While the machine prepares for sleep with the lock held,
/// it lets the lock go by itself at `delay − margin`, whatever still runs, so the agent never
/// holds up a sleep for the whole InhibitDelayMaxSec.
final class LogindClientThread: Sendable {
    static let name = "org.freedesktop.login1"
    static let path = "/org/freedesktop/login1"
    static let interface = "org.freedesktop.login1.Manager"
    /// logind's own default for InhibitDelayMaxSec, used when the property cannot be read.
    static let defaultDelayLimit = 5.0
    static let callTimeout = 2.0

    private let bus: BusAddress
    private let deliver: @Sendable (SleepEvent) -> Void
    private let stopRequested = Atomic<Bool>(false)
    private let loop = MainLoop()
    /// Only touched on the thread (inside `run` and the blocks posted to its loop).
    private let state = ThreadState()

    init(bus: BusAddress, deliver: @escaping @Sendable (SleepEvent) -> Void) {
        self.bus = bus
        self.deliver = deliver
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "bgsync-sleep"
        thread.start()
    }

    /// Ends the thread soon, releasing the lock. Any thread.
    func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        loop.post {}
    }

    /// Asks for the lock to be held (true) or released (false). Any thread.
    func hold(_ wanted: Bool) {
        // Weak: once the thread has ended (no logind: it returns at once) nothing drains its loop,
        // and a block holding self there kept self, its loop and the block alive for good
        // (LeakSanitizer's reports at the agent's exit in check-asan).
        loop.post { [weak self] in
            guard let self else { return }
            state.wanted = wanted
            apply()
        }
    }

    /// How long before the end of the delay the lock goes in any case: a quarter of the delay,
    /// at most half a second, so logind never waits for the agent to the last moment.
    static func forcedRelease(delay: Double) -> Double { max(0, delay - min(0.5, delay / 4)) }

    private func run() {
        let connection: DBusConnection
        do {
            connection = try DBusConnection(bus: bus)
        } catch {
            deliver(.failed(error.message))
            return
        }
        state.connection = connection
        defer {
            release(forced: false)
            state.connection = nil
            connection.close()
        }
        do {
            try connection.addMatch(
                "type='signal',sender='\(Self.name)',path='\(Self.path)',interface='\(Self.interface)',"
                    + "member='PrepareForSleep'"
            ) { [self] signal in
                guard case .bool(let sleeping)? = signal.arguments.first else { return }
                prepareForSleep(sleeping)
            }
        } catch {
            deliver(.failed("cannot follow logind: \(error.message)"))
            return
        }
        connection.attach(to: loop)
        var unread: String?
        do {
            let reply = try connection.call(
                destination: Self.name, path: Self.path, interface: "org.freedesktop.DBus.Properties", method: "Get",
                arguments: [.string(Self.interface), .string("InhibitDelayMaxUSec")], timeout: Self.callTimeout)
            if case .uint64(let microseconds)? = reply.first?.unwrappingVariants {
                state.delayLimit = Double(microseconds) / 1_000_000
            } else {
                unread = "InhibitDelayMaxUSec is not a uint64"
            }
        } catch {
            unread = error.message
        }
        deliver(.delayLimit(state.delayLimit, unread: unread))
        apply()
        while !stopRequested.load(ordering: .sequentiallyConsistent) && connection.isConnected {
            loop.iterate(timeout: nil)
        }
        if !stopRequested.load(ordering: .sequentiallyConsistent) {
            deliver(.failed("the system bus went away"))
        }
    }

    private func prepareForSleep(_ sleeping: Bool) {
        state.preparing = sleeping
        if let timer = state.forcedReleaseTimer { loop.cancelTimer(timer) }
        state.forcedReleaseTimer = nil
        if sleeping, state.fd != nil {
            state.forcedReleaseTimer = loop.addTimer(after: Self.forcedRelease(delay: state.delayLimit)) { [self] in
                state.forcedReleaseTimer = nil
                release(forced: true)
            }
        }
        deliver(.prepareForSleep(sleeping))
        apply()
    }

    /// Takes or releases the lock as asked. No new lock while the machine prepares for sleep:
    /// it would not delay this sleep, and the agent starts nothing then.
    private func apply() {
        guard let connection = state.connection else { return }
        if !state.wanted {
            release(forced: false)
        } else if state.fd == nil, !state.preparing {
            do {
                state.fd = try connection.callReturningFileDescriptor(
                    destination: Self.name, path: Self.path, interface: Self.interface, method: "Inhibit",
                    arguments: [
                        .string("sleep"), .string("bgsync"), .string("Stopping background syncs before sleep"),
                        .string("delay"),
                    ], timeout: Self.callTimeout)
                deliver(.lock(held: true, forced: false))
            } catch {
                deliver(.lockRefused(error.message))
            }
        }
    }

    private func release(forced: Bool) {
        guard let fd = state.fd else { return }
        state.fd = nil
        close(fd)
        deliver(.lock(held: false, forced: forced))
    }
}

/// The thread's own state; only used on that thread, which makes the unchecked Sendable sound.
private final class ThreadState: @unchecked Sendable {
    var connection: DBusConnection?
    var fd: Int32?
    var wanted = false
    var preparing = false
    var delayLimit = LogindClientThread.defaultDelayLimit
    var forcedReleaseTimer: MainLoop.Timer?
}
