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

    /// Keys the agent reads itself and does not pass on.
    public enum ReservedKey {
        public static let network = "network"
        public static let maxAttempts = "max-attempts"
    }

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
                throw .invalidArgument("Option 'network' must be the string 'any' or 'unmetered', not \(value.typeString) \(value.gvariantText).")
            }
            network = requirement
        } else {
            network = .any
        }
        if let value = rest.removeValue(forKey: ReservedKey.maxAttempts) {
            guard let number = value.unsignedValue, number >= 1, number <= UInt64(UInt32.max) else {
                throw .invalidArgument("Option 'max-attempts' must be a positive integer (type u), not \(value.typeString) \(value.gvariantText).")
            }
            maxAttempts = UInt32(number)
        } else {
            maxAttempts = nil
        }
        if kind == .periodic {
            guard let interval = minInterval, interval > 0, interval.isFinite else {
                throw .invalidArgument("A periodic registration needs a minimum interval of at least one second.")
            }
        }
        for (name, value) in rest where !value.isFinite {
            throw .invalidArgument("Option '\(name)' contains a NaN or infinite number; options take finite numbers only.")
        }
        self.options = rest
    }
}
