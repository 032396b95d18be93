// SPDX-License-Identifier: Apache-2.0
/// An error the core reports to callers. A struct with a code, not an enum, so new codes can be
/// added without breaking anyone who switches over the known ones.
public struct SyncError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The caller sent something malformed: a bad app id, tag, option or size.
        public static let invalidArgument = Code(rawValue: "invalid-argument")
        /// The named handler is not installed (or did not load).
        public static let unknownHandler = Code(rawValue: "unknown-handler")
        /// No registration with that app id and tag.
        public static let notFound = Code(rawValue: "not-found")
        /// A per-app limit was reached.
        public static let quotaExceeded = Code(rawValue: "quota-exceeded")
        /// The caller may not touch that app id or use that handler.
        public static let accessDenied = Code(rawValue: "access-denied")
        /// The user switched the app off (the spec's NotAllowedError).
        public static let notAllowed = Code(rawValue: "not-allowed")
        /// The registration database could not be read or written.
        public static let storage = Code(rawValue: "storage")
    }

    public var code: Code
    /// A sentence a person can act on.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public static func invalidArgument(_ message: String) -> SyncError { SyncError(.invalidArgument, message) }
}
