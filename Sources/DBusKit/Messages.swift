// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CDBus

/// Where to connect.
public enum BusAddress: Sendable {
    /// The session bus: `DBUS_SESSION_BUS_ADDRESS`, or what libdbus finds without it.
    case session
    case system
    /// A bus daemon at a D-Bus address such as "unix:path=/tmp/bus" (Hello is sent on connect).
    case address(String)
}

/// A signal received through `DBusConnection.addMatch`.
public struct DBusSignal: Sendable {
    /// Unique name of the sender (":1.42"), or "org.freedesktop.DBus" for the bus itself.
    public var sender: String
    public var path: String
    public var interface: String
    public var member: String
    public var arguments: [Value]

    public init(sender: String, path: String, interface: String, member: String, arguments: [Value]) {
        self.sender = sender
        self.path = path
        self.interface = interface
        self.member = member
        self.arguments = arguments
    }
}

/// A method call as a `DBusExportedObject` handler sees it.
public struct DBusMethodCall: Sendable {
    /// Unique name of the caller.
    public var sender: String
    public var path: String
    public var interface: String?
    public var member: String
    /// The signature of `arguments` as sent.
    public var signature: String
    public var arguments: [Value]

    public init(sender: String, path: String, interface: String?, member: String, signature: String, arguments: [Value])
    {
        self.sender = sender
        self.path = path
        self.interface = interface
        self.member = member
        self.signature = signature
        self.arguments = arguments
    }
}

/// Header fields of a message, copied out (libdbus's strings are borrowed from the message).
struct MessageHeader {
    var sender: String
    var path: String
    var interface: String?
    var member: String
    var signature: String

    init(_ message: OpaquePointer) {
        func copy(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }
        sender = copy(dbus_message_get_sender(message)) ?? ""
        path = copy(dbus_message_get_path(message)) ?? ""
        interface = copy(dbus_message_get_interface(message))
        member = copy(dbus_message_get_member(message)) ?? ""
        signature = copy(dbus_message_get_signature(message)) ?? ""
    }
}

/// Name checks done before libdbus sees a name: its own checks abort the process.
enum Names {
    typealias Validator = (UnsafePointer<CChar>?, UnsafeMutablePointer<CDBus.DBusError>?) -> dbus_bool_t

    private static func check(_ name: String, _ what: String, _ validator: Validator) throws(DBusError) {
        let ok = !name.utf8.contains(0) && name.utf8.count <= 255 && name.withCString { validator($0, nil) } != 0
        guard ok else { throw .invalidArgs("'\(name)' is not a valid D-Bus \(what)") }
    }

    static func busName(_ name: String) throws(DBusError) { try check(name, "bus name", dbus_validate_bus_name) }
    static func interface(_ name: String) throws(DBusError) {
        try check(name, "interface name", dbus_validate_interface)
    }
    static func member(_ name: String) throws(DBusError) { try check(name, "member name", dbus_validate_member) }
    static func errorName(_ name: String) -> Bool {
        !name.utf8.contains(0) && name.withCString { dbus_validate_error_name($0, nil) } != 0
    }
    static func path(_ path: String) throws(DBusError) {
        guard MessageCoding.isValidObjectPath(path) else { throw .invalidArgs("'\(path)' is not a valid object path") }
    }
}

extension DBusError {
    /// Takes over a filled-in libdbus error and frees it.
    init(consuming error: inout CDBus.DBusError, fallback: String) {
        if dbus_error_is_set(&error) != 0 {
            let name = error.name.map { String(cString: $0) } ?? DBusError.prefix + "Failed"
            let message = error.message.map { String(cString: $0) } ?? fallback
            self.init(name: name, message: message)
        } else {
            self = .failed(fallback)
        }
        dbus_error_free(&error)
    }
}
