// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin
import FoundationEssentials

/// One sync event, as a handler sees it. Backed by the host's event inside a worker, so it
/// is valid only during `handle`: copy what you keep.
public struct HandlerEvent {
    /// The app's id, such as "org.example.Chat".
    public var appID: String
    /// The registration's tag, such as "outbox".
    public var tag: String
    /// 1-based number of this attempt.
    public var attempt: UInt32
    /// True on the final allowed attempt.
    public var lastChance: Bool
    /// When the worker is killed if the handler is still running.
    public var deadline: Date
    /// True for a periodic registration.
    public var periodic: Bool
    /// The registration's handler options.
    public var options: HandlerOptions
    /// The files the path options name, opened by the host beneath the app's root.
    public var files: HandlerFiles
    /// Cancellation and progress (see HandlerControl).
    public var control: HandlerControl
    /// The handler's own state directory, kept across events and restarts (HandlerState).
    public var state: HandlerStateAccess

    public init(
        appID: String, tag: String, attempt: UInt32 = 1, lastChance: Bool = false,
        deadline: Date, periodic: Bool = false, options: HandlerOptions, files: HandlerFiles = .unavailable,
        control: HandlerControl = HandlerControl(), state: HandlerStateAccess = .unavailable
    ) {
        self.appID = appID
        self.tag = tag
        self.attempt = attempt
        self.lastChance = lastChance
        self.deadline = deadline
        self.periodic = periodic
        self.options = options
        self.files = files
        self.control = control
        self.state = state
    }

    /// Reads the event through the host's accessors.
    init(host: UnsafePointer<bgsync_host>, event: OpaquePointer?) {
        let table = host.pointee
        self.init(
            appID: table.app_id.flatMap { $0(event) }.map { String(cString: $0) } ?? "",
            tag: table.tag.flatMap { $0(event) }.map { String(cString: $0) } ?? "",
            attempt: table.attempt?(event) ?? 1,
            lastChance: table.last_chance?(event) ?? false,
            deadline: Date(timeIntervalSince1970: table.deadline?(event) ?? 0),
            periodic: table.periodic?(event) ?? false,
            options: HandlerOptions(host: host, event: event), files: HandlerFiles(host: host, event: event),
            control: HandlerControl(host: host, event: event), state: HandlerStateAccess(host: host, event: event))
    }

    /// Seconds left before `deadline`, or before the deadline the last progress report moved
    /// it to (negative once past it).
    public var secondsLeft: Double { (control.movedDeadline ?? deadline).timeIntervalSinceNow }
}

extension HandlerEvent {
    /// Seconds the handler may still spend on work that has to be cut off in time (a child
    /// process, a request): what is left before the deadline, minus a reserve to report the
    /// result before the worker is killed (a quarter of what is left, at most one second).
    public var timeBudget: Double {
        let left = max(0, secondsLeft)
        return left - min(1, left * 0.25)
    }
}

extension HandlerEvent {
    /// `timeBudget` as a function for a long request (HTTPRequest.timeLeft): the reserve is taken
    /// once, now, and the rest follows the deadline as progress moves it, so a transfer that keeps
    /// moving keeps its time and one that stalls ends the reserve before the deadline.
    public func budget() -> () -> Double {
        let reserve = min(1, max(0, secondsLeft) * 0.25)
        let event = self
        return { event.secondsLeft - reserve }
    }
}
