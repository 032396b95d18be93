// SPDX-License-Identifier: Apache-2.0
/// A D-Bus error: a dotted error name and a message for people. Method handlers throw it to
/// send an error reply; `DBusConnection.call` throws it when the peer replied with an error.
public struct DBusError: Error, Equatable, Sendable, CustomStringConvertible {
    /// e.g. "org.freedesktop.DBus.Error.InvalidArgs"
    public var name: String
    public var message: String

    public init(name: String, message: String) {
        self.name = name
        self.message = message
    }

    public var description: String { "\(name): \(message)" }

    static let prefix = "org.freedesktop.DBus.Error."

    public static func failed(_ message: String) -> DBusError { .init(name: prefix + "Failed", message: message) }
    public static func invalidArgs(_ message: String) -> DBusError {
        .init(name: prefix + "InvalidArgs", message: message)
    }
    public static func invalidSignature(_ message: String) -> DBusError {
        .init(name: prefix + "InvalidSignature", message: message)
    }
    public static func unknownMethod(_ message: String) -> DBusError {
        .init(name: prefix + "UnknownMethod", message: message)
    }
    public static func unknownObject(_ message: String) -> DBusError {
        .init(name: prefix + "UnknownObject", message: message)
    }
    public static func unknownInterface(_ message: String) -> DBusError {
        .init(name: prefix + "UnknownInterface", message: message)
    }
    public static func unknownProperty(_ message: String) -> DBusError {
        .init(name: prefix + "UnknownProperty", message: message)
    }
    public static func propertyReadOnly(_ message: String) -> DBusError {
        .init(name: prefix + "PropertyReadOnly", message: message)
    }
    public static func noReply(_ message: String) -> DBusError { .init(name: prefix + "NoReply", message: message) }
    public static func serviceUnknown(_ message: String) -> DBusError {
        .init(name: prefix + "ServiceUnknown", message: message)
    }
    public static func nameHasNoOwner(_ message: String) -> DBusError {
        .init(name: prefix + "NameHasNoOwner", message: message)
    }
    public static func accessDenied(_ message: String) -> DBusError {
        .init(name: prefix + "AccessDenied", message: message)
    }
    public static func noMemory(_ message: String) -> DBusError { .init(name: prefix + "NoMemory", message: message) }
    public static func disconnected(_ message: String) -> DBusError {
        .init(name: prefix + "Disconnected", message: message)
    }
    public static func notSupported(_ message: String) -> DBusError {
        .init(name: prefix + "NotSupported", message: message)
    }
    public static func timeout(_ message: String) -> DBusError { .init(name: prefix + "Timeout", message: message) }

    /// True for the errors that mean "nobody answered at that name" (not running, no such name).
    public var isServiceUnavailable: Bool {
        name == Self.prefix + "ServiceUnknown" || name == Self.prefix + "NameHasNoOwner"
    }
}
