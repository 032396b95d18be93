// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

import struct Foundation.Date

/// Where a registration is in its life, as in the WICG Background Sync spec.
public enum RegistrationState: String, Sendable, Codable, CaseIterable {
    /// Waiting for the network requirement (or a free slot) to fire.
    case pending
    /// Backing off until `nextAttempt` (one-off), or until the next interval (periodic).
    case waiting
    /// An event is running in a handler.
    case firing
    /// Registered again while its event was running: it fires once more afterwards.
    case reregisteredWhileFiring = "reregistered-while-firing"
}

/// What a registration needs from the network before it may fire.
public enum NetworkRequirement: String, Sendable, Codable, CaseIterable {
    case any
    case unmetered
}

/// One registration: a tag of an app, the handler that does the work and its options.
public struct Registration: Sendable, Equatable, Codable {
    public var key: RegistrationKey
    public var handler: String
    /// Handler options without the reserved keys, kept as the caller gave them.
    public var options: [String: Value]
    public var network: NetworkRequirement
    public var maxAttempts: UInt32
    /// Failed attempts so far (in the current interval, for periodic ones).
    public var attempts: UInt32
    public var state: RegistrationState
    /// When a waiting registration becomes pending again. Wall-clock, so it holds across
    /// reboots and suspend. Nil unless `state == .waiting`.
    @PackedOptional public var nextAttempt: Date?
    /// The detail of the last failed attempt, empty when there was none.
    public var lastError: String
    /// Periodic only: the minimum interval in seconds.
    @PackedOptional public var minInterval: Double?
    /// Periodic only: when the current interval started (registration, last fire or give-up).
    @PackedOptional public var intervalStart: Date?
    /// Registration order, for `GetTags`.
    public var sequence: Int64
    /// Who registered it, and so the boundary its events run within.
    public var confinement: Confinement
    /// Option `power`; nil when not given (which counts as `any`, except that a periodic
    /// registration then waits while the power profile is power-saver).
    public var power: PowerRequirement?
    /// Option `expires-after`: not done by then, it ends with outcome `expired`.
    @PackedOptional public var expiresAt: Date?
    /// Option `not-before`: it does not fire earlier.
    @PackedOptional public var notBefore: Date?

    public init(
        key: RegistrationKey, handler: String, options: [String: Value] = [:],
        network: NetworkRequirement = .any, maxAttempts: UInt32, attempts: UInt32 = 0,
        state: RegistrationState = .pending, nextAttempt: Date? = nil, lastError: String = "",
        minInterval: Double? = nil, intervalStart: Date? = nil, sequence: Int64,
        confinement: Confinement = .unconfined, power: PowerRequirement? = nil, expiresAt: Date? = nil,
        notBefore: Date? = nil
    ) {
        self.key = key
        self.handler = handler
        self.options = options
        self.network = network
        self.maxAttempts = maxAttempts
        self.attempts = attempts
        self.state = state
        self.nextAttempt = nextAttempt
        self.lastError = lastError
        self.minInterval = minInterval
        self.intervalStart = intervalStart
        self.sequence = sequence
        self.confinement = confinement
        self.power = power
        self.expiresAt = expiresAt
        self.notBefore = notBefore
    }

    /// The form written to disk: a running event is not worth remembering, since after a crash
    /// it must simply run again (at-least-once), without counting an attempt.
    public var durable: Registration {
        var copy = self
        if copy.state == .firing || copy.state == .reregisteredWhileFiring { copy.state = .pending }
        return copy
    }
}

/// One sync event handed to a handler.
public struct SyncEvent: Sendable, Equatable, Codable {
    public var id: UInt64
    public var key: RegistrationKey
    public var handler: String
    public var options: [String: Value]
    /// 1-based number of this attempt.
    public var attempt: UInt32
    /// True on the final allowed attempt.
    public var lastChance: Bool
    /// When the event time cap runs out (wall-clock).
    public var deadline: Date
    /// The registration's confinement: what the handler's app-named paths must stay within.
    public var confinement: Confinement
    /// Once the handler reports progress it is held to this many seconds without progress
    /// instead of `deadline`, and never past `ceiling`. Nil: `deadline` alone.
    public var stallTimeout: Double?
    public var ceiling: Date?

    public init(
        id: UInt64, key: RegistrationKey, handler: String, options: [String: Value],
        attempt: UInt32, lastChance: Bool, deadline: Date, confinement: Confinement = .unconfined,
        stallTimeout: Double? = nil, ceiling: Date? = nil
    ) {
        self.id = id
        self.key = key
        self.handler = handler
        self.options = options
        self.attempt = attempt
        self.lastChance = lastChance
        self.deadline = deadline
        self.confinement = confinement
        self.stallTimeout = stallTimeout
        self.ceiling = ceiling
    }

    /// When the handler is killed if it reported progress at `lastProgress` (and nothing since).
    public func deadline(afterProgressAt lastProgress: Date) -> Date {
        guard let stallTimeout, let ceiling else { return deadline }
        return min(lastProgress.addingTimeInterval(stallTimeout), ceiling)
    }
}

/// What a handler made of one event: how it ended, and what it moved over the network.
public struct HandlerOutcome: Sendable, Equatable, Codable {
    public enum Kind: Sendable, Equatable, Codable {
        /// Done: a one-off registration is removed.
        case success(detail: String)
        /// Try again later; `after` (seconds) is a lower bound on the wait, such as an HTTP
        /// Retry-After. A crash or a timeout is reported as a retry with detail `crashed`/`timeout`.
        /// `advanced`: the attempt moved the work forward in a way the next one keeps (a resumable
        /// upload's server confirmed more bytes): it is not counted toward max-attempts.
        case retry(after: Double?, detail: String, advanced: Bool = false)
        /// Give up now: retrying cannot help.
        case failure(detail: String)
    }

    public var kind: Kind
    /// Bytes the handler reports it sent and received for this event (0: none reported), kept
    /// per app and day for ListApps.
    public var bytesSent: UInt64
    public var bytesReceived: UInt64

    public init(_ kind: Kind, bytesSent: UInt64 = 0, bytesReceived: UInt64 = 0) {
        self.kind = kind
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
    }

    public static func success(detail: String) -> HandlerOutcome { HandlerOutcome(.success(detail: detail)) }
    public static func retry(after: Double?, detail: String, advanced: Bool = false) -> HandlerOutcome {
        HandlerOutcome(.retry(after: after, detail: detail, advanced: advanced))
    }
    public static func failure(detail: String) -> HandlerOutcome { HandlerOutcome(.failure(detail: detail)) }

    public var detail: String {
        switch kind {
        case .success(let d), .retry(_, let d, _), .failure(let d): d
        }
    }

    public var succeeded: Bool { if case .success = kind { true } else { false } }
}

/// How an event ended, as announced in `SyncFinished`.
public enum SyncOutcome: String, Sendable, Equatable, Codable {
    case succeeded
    case retryScheduled = "retry-scheduled"
    case failed
    case cancelled
    /// Stopped because a condition (network, metered, power) stopped holding; the attempt was
    /// not counted and the registration waits for its conditions again.
    case interrupted
    /// Not done by its `expires-after` time; removed.
    case expired
}

/// What the agent knows of a loaded handler.
public struct HandlerInfo: Sendable, Equatable, Codable {
    public var name: String
    public var description: String
    /// May sandboxed (Flatpak, Snap) apps use it?
    public var sandboxSafe: Bool
    /// The options the plugin declares as paths (checked beneath a sandboxed app's root at
    /// Register, and opened beneath it by the host at every event) and as URLs.
    public var pathOptions: [String]
    public var urlOptions: [String]

    public init(
        name: String, description: String, sandboxSafe: Bool, pathOptions: [String] = [], urlOptions: [String] = []
    ) {
        self.name = name
        self.description = description
        self.sandboxSafe = sandboxSafe
        self.pathOptions = pathOptions
        self.urlOptions = urlOptions
    }
}

/// The network as the scheduler sees it.
public struct NetworkStatus: Sendable, Equatable, CustomStringConvertible {
    public var online: Bool
    public var metered: Bool

    public init(online: Bool, metered: Bool) {
        self.online = online
        self.metered = metered
    }

    public static let offline = NetworkStatus(online: false, metered: false)
    public static let online = NetworkStatus(online: true, metered: false)

    public func satisfies(_ requirement: NetworkRequirement) -> Bool {
        online && (requirement == .any || !metered)
    }

    public var description: String { online ? (metered ? "online (metered)" : "online") : "offline" }
}

/// An optional time or number in 8 bytes: an `Optional<Date>` or `Optional<Double>` takes 16
/// (its tag and padding), and the scheduler's table holds one `Registration` per registration,
/// with five of them (Registration: 200 → 160 bytes, 4 MB at 100,000 registrations). None is
/// stored as -infinity, which no time or interval bgsync keeps can be.
@propertyWrapper
public struct PackedOptional<Wrapped: PackableAsDouble>: Sendable, Equatable {
    private var packed: Double

    public init(wrappedValue: Wrapped?) { packed = wrappedValue?.packedDouble ?? -.infinity }

    public var wrappedValue: Wrapped? {
        get { packed == -.infinity ? nil : Wrapped(packedDouble: packed) }
        set { packed = newValue?.packedDouble ?? -.infinity }
    }
}

/// A value `PackedOptional` keeps as one Double, exactly.
public protocol PackableAsDouble: Sendable {
    var packedDouble: Double { get }
    init(packedDouble: Double)
}

extension PackedOptional: Codable where Wrapped: Codable {
    /// Coded as the optional it stands for.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        self.init(wrappedValue: container.decodeNil() ? nil : try container.decode(Wrapped.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension Double: PackableAsDouble {
    public var packedDouble: Double { self }
    public init(packedDouble: Double) { self = packedDouble }
}

extension Date: PackableAsDouble {
    /// `timeIntervalSinceReferenceDate` is a Date's own storage, so the round trip is exact.
    public var packedDouble: Double { timeIntervalSinceReferenceDate }
    public init(packedDouble: Double) { self.init(timeIntervalSinceReferenceDate: packedDouble) }
}
