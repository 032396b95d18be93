// SPDX-License-Identifier: Apache-2.0
import struct Foundation.Date

/// What a registration needs from the power supply before it may fire (option `power`).
public enum PowerRequirement: String, Sendable, Codable, CaseIterable {
    /// Runs whatever the power; given explicitly, also lets a periodic sync run in power-saver.
    case any
    /// Only on mains power.
    case ac
    /// On mains, or on a battery at or above `[power] battery-low-threshold` percent.
    case batteryNotLow = "battery-not-low"
}

/// The power supply as the scheduler sees it (UPower and power-profiles-daemon).
public struct PowerStatus: Sendable, Equatable, CustomStringConvertible {
    public var onBattery: Bool
    /// The display device's charge in percent; nil when unknown (no battery, no UPower).
    public var batteryPercentage: Double?
    /// power-profiles-daemon's active profile is `power-saver`.
    public var powerSaver: Bool

    public init(onBattery: Bool, batteryPercentage: Double? = nil, powerSaver: Bool = false) {
        self.onBattery = onBattery
        self.batteryPercentage = batteryPercentage
        self.powerSaver = powerSaver
    }

    /// What a machine without UPower counts as.
    public static let ac = PowerStatus(onBattery: false)

    /// On battery below `threshold` percent. An unknown charge is not low.
    public func batteryLow(threshold: Double) -> Bool {
        guard onBattery, let percentage = batteryPercentage else { return false }
        return percentage < threshold
    }

    public func satisfies(_ requirement: PowerRequirement?, threshold: Double) -> Bool {
        switch requirement ?? .any {
        case .any: true
        case .ac: !onBattery
        case .batteryNotLow: !batteryLow(threshold: threshold)
        }
    }

    public var description: String {
        var text = onBattery ? "on battery" : "on AC"
        if onBattery, let percentage = batteryPercentage { text += " (\(Int(percentage.rounded())) %)" }
        if powerSaver { text += ", power-saver" }
        return text
    }
}

/// The latest progress a handler reported for a running event.
public struct SyncProgress: Sendable, Equatable, Codable {
    /// Units done and in all (0: unknown), in the handler's own units.
    public var done: UInt64
    public var total: UInt64
    /// A short text, such as "3 files sent, 12000 bytes".
    public var text: String

    public init(done: UInt64, total: UInt64, text: String) {
        self.done = done
        self.total = total
        self.text = text
    }
}

/// The bytes a running event moved, as its handler reported them, and the rate they moved at.
public struct TransferProgress: Sendable, Equatable, Codable {
    /// Running totals of the event, and what it expects to move in all (0: unknown).
    public var sent: UInt64
    public var received: UInt64
    public var expected: UInt64
    /// Bytes per second, smoothed over the reports (0 until two came at least
    /// `TransferProgress.rateWindow` apart).
    public var rate: Double

    public init(sent: UInt64, received: UInt64, expected: UInt64, rate: Double = 0) {
        self.sent = sent
        self.received = received
        self.expected = expected
        self.rate = rate
    }

    /// Sent and received together.
    public var moved: UInt64 { sent.addingReportingOverflow(received).overflow ? .max : sent + received }

    /// Seconds until `expected` at the current rate; nil when either is unknown.
    public var secondsLeft: Double? {
        guard expected > 0, rate > 0 else { return nil }
        return Double(expected > moved ? expected - moved : 0) / rate
    }

    /// Reports closer together than this are not used for the rate (they are 0.1 s apart at most
    /// as often, and a rate over 0.1 s jumps with every burst of a TCP window).
    public static let rateWindow = 0.5
    /// The weight of the newest window in the smoothed rate.
    static let rateWeight = 0.3
}

/// What the scheduler keeps about conditions and progress beside its registrations.
struct ConditionState {
    /// Events asked to stop because a condition stopped holding, by event id.
    var interrupting: Set<UInt64> = []
    /// The latest progress of each registration's current (or last) event.
    var progress: [RegistrationKey: SyncProgress] = [:]
    /// When each registration's last SyncProgress went out, for the rate limit.
    var progressAnnounced: [RegistrationKey: Date] = [:]
    /// The latest bytes moved by each registration's current (or last) event.
    var transfers: [RegistrationKey: TransferProgress] = [:]
    /// The report the rate was last taken from, and when.
    var transferSamples: [RegistrationKey: (at: Date, moved: UInt64)] = [:]
    /// When each registration's last SyncTransfer went out, for the rate limit.
    var transferAnnounced: [RegistrationKey: Date] = [:]
}
