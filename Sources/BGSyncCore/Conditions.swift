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

/// What the scheduler keeps about conditions and progress beside its registrations.
struct ConditionState {
    /// Events asked to stop because a condition stopped holding, by event id.
    var interrupting: Set<UInt64> = []
    /// The latest progress of each registration's current (or last) event.
    var progress: [RegistrationKey: SyncProgress] = [:]
    /// When each registration's last SyncProgress went out, for the rate limit.
    var progressAnnounced: [RegistrationKey: Date] = [:]
}
