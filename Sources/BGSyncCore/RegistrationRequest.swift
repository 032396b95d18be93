// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

/// A caller's Register or RegisterPeriodic, validated: the reserved option keys are read and
/// removed, everything else stays for the handler.
public struct RegistrationRequest: Sendable, Equatable {
    public var key: RegistrationKey
    public var handler: String
    public var options: [String: Value]
    public var network: NetworkRequirement
    public var maxAttempts: UInt32?
    /// Periodic only, seconds, before clamping to the configured floor.
    public var minInterval: Double?
    /// Who asks: set by the bus surface from the caller's credentials, kept with the registration.
    public var confinement: Confinement = .unconfined
    /// Option `power`, nil when not given.
    public var power: PowerRequirement?
    /// Options `expires-after` and `not-before`: seconds from the registration.
    public var expiresAfter: Double?
    public var notBefore: Double?

    /// Keys the agent reads itself and does not pass on.
    public enum ReservedKey {
        public static let network = "network"
        public static let maxAttempts = "max-attempts"
        public static let power = "power"
        public static let expiresAfter = "expires-after"
        public static let notBefore = "not-before"
    }

    /// The longest `expires-after` or `not-before`: ten years, far enough for anyone and short
    /// enough that every date stays exact.
    public static let longestDelay: Double = 10 * 365 * 24 * 3600

    public init(
        appID: String, tag: String, kind: RegistrationKind = .oneOff, handler: String,
        options: [String: Value] = [:], minInterval: Double? = nil
    ) throws(SyncError) {
        try Identifiers.validateAppID(appID)
        try Identifiers.validateTag(tag)
        try Identifiers.validateHandlerName(handler)
        self.key = RegistrationKey(appID: appID, tag: tag, kind: kind)
        self.handler = handler
        self.minInterval = minInterval
        var rest = options
        if let value = rest.removeValue(forKey: ReservedKey.network) {
            guard let text = value.stringValue, let requirement = NetworkRequirement(rawValue: text) else {
                throw .invalidArgument(
                    "Option 'network' must be the string 'any' or 'unmetered', not \(value.typeString) \(value.gvariantText)."
                )
            }
            network = requirement
        } else {
            network = .any
        }
        if let value = rest.removeValue(forKey: ReservedKey.maxAttempts) {
            guard let number = value.unsignedValue, number >= 1, number <= UInt64(UInt32.max) else {
                throw .invalidArgument(
                    "Option 'max-attempts' must be a positive integer (type u), not \(value.typeString) \(value.gvariantText)."
                )
            }
            maxAttempts = UInt32(number)
        } else {
            maxAttempts = nil
        }
        if let value = rest.removeValue(forKey: ReservedKey.power) {
            guard let text = value.stringValue, let requirement = PowerRequirement(rawValue: text) else {
                throw .invalidArgument(
                    "Option 'power' must be the string 'any', 'ac' or 'battery-not-low', "
                        + "not \(value.typeString) \(value).")
            }
            power = requirement
        }
        expiresAfter = try Self.seconds(rest.removeValue(forKey: ReservedKey.expiresAfter), ReservedKey.expiresAfter)
        notBefore = try Self.seconds(
            rest.removeValue(forKey: ReservedKey.notBefore), ReservedKey.notBefore, zeroAllowed: true)
        if let expiresAfter, let notBefore, notBefore >= expiresAfter {
            throw .invalidArgument(
                "Option 'not-before' (\(notBefore) s) must be less than 'expires-after' (\(expiresAfter) s): "
                    + "it could never run.")
        }
        if kind == .periodic {
            guard let interval = minInterval, interval > 0, interval.isFinite else {
                throw .invalidArgument("A periodic registration needs a minimum interval of at least one second.")
            }
        }
        for (name, value) in rest where !value.isFinite {
            throw .invalidArgument(
                "Option '\(name)' contains a NaN or infinite number; options take finite numbers only.")
        }
        self.options = rest
    }

    /// A number of seconds from now (any integer or double type), finite and within ten years.
    private static func seconds(
        _ value: Value?, _ name: String, zeroAllowed: Bool = false
    ) throws(SyncError) -> Double? {
        guard var value else { return nil }
        while case .variant(let inner) = value { value = inner }
        let number: Double? =
            switch value {
            case .double(let d): d
            case .byte, .int16, .uint16, .int32, .uint32, .int64, .uint64: value.unsignedValue.map { Double($0) }
            default: nil
            }
        let least = zeroAllowed ? "0" : "more than 0"
        guard let number, number.isFinite, zeroAllowed ? number >= 0 : number > 0, number <= longestDelay else {
            throw .invalidArgument(
                "Option '\(name)' must be a number of seconds, \(least) and at most \(Int(longestDelay)) (ten years), "
                    + "not \(value.typeString) \(value).")
        }
        return number
    }
}
