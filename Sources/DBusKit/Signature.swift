// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CDBus

/// libdbus's own signature checks, asked right before marshalling (libdbus aborts the process
/// on what it rejects). The pure rules, used everywhere else, are `BGSyncValue.TypeSignature`.
enum DBusSignature {
    static let basicTypes = TypeSignature.basicTypes

    /// True when `signature` is exactly one complete type that libdbus accepts.
    static func isSingleCompleteType(_ signature: String) -> Bool {
        guard !signature.isEmpty, signature.utf8.count <= 255 else { return false }
        return signature.withCString { dbus_signature_validate_single($0, nil) } != 0
    }

    /// True when libdbus accepts `signature` as a (possibly empty) list of complete types.
    static func isValid(_ signature: String) -> Bool {
        signature.utf8.count <= 255 && signature.withCString { dbus_signature_validate($0, nil) } != 0
    }
}

/// How many bytes of values a message may decode into, counted as the values are read (as
/// `Value.marshalledSize` counts them) and checked before each value is built: a caller cannot
/// make the agent build, say, a 30 MiB byte array that a limit then refuses.
public struct DecodingLimit: Sendable {
    public var bytes: Int
    /// The error a message over the limit gets.
    public var error: DBusError

    public init(bytes: Int, error: DBusError) {
        self.bytes = bytes
        self.error = error
    }

    public static let none = DecodingLimit(bytes: .max, error: .failed("no limit"))
}
