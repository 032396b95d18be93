import CDBus
import Foundation

/// What Notify takes.
struct Notification {
    var appName: String
    var icon: String
    var summary: String
    var body: String
    var desktopEntry: String
}

struct NotifyFailure: Error {
    enum Code: String {
        case noBus = "no-session-bus"
        case noDaemon = "no-notification-daemon"
        case noReply = "no-reply"
        case rejected = "rejected"
    }

    var code: Code
    var message: String
}

/// One blocking Notify call over a private session-bus connection (libdbus), closed after.
/// Private, so nothing else in the worker shares or is disturbed by it.
enum NotificationSender {
    static func send(_ notification: Notification, busAddress: String?, timeout: Double) -> Result<UInt32, NotifyFailure> {
        dbus_threads_init_default()  // libdbus locks only once told to; harmless if again
        var error = DBusError()
        dbus_error_init(&error)
        defer { dbus_error_free(&error) }
        guard let connection = connectToSessionBus(busAddress, &error) else {
            return .failure(NotifyFailure(code: .noBus, message: "no session bus: \(message(of: error))"))
        }
        // The default would _exit the worker when the bus goes away.
        dbus_connection_set_exit_on_disconnect(connection, 0)
        defer {
            dbus_connection_close(connection)
            dbus_connection_unref(connection)
        }
        guard let call = dbus_message_new_method_call(
            "org.freedesktop.Notifications", "/org/freedesktop/Notifications", "org.freedesktop.Notifications", "Notify")
        else {
            return .failure(NotifyFailure(code: .noReply, message: "out of memory"))
        }
        defer { dbus_message_unref(call) }
        append(notification, to: call)

        let milliseconds = Int32(max(100, min(timeout, 25) * 1000))
        guard let reply = dbus_connection_send_with_reply_and_block(connection, call, milliseconds, &error) else {
            let name = error.name.map { String(cString: $0) } ?? ""
            switch name {
            case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
                return .failure(NotifyFailure(code: .noDaemon, message: "no notification daemon on the session bus"))
            case "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout", "org.freedesktop.DBus.Error.Disconnected":
                return .failure(NotifyFailure(code: .noReply, message: "the notification daemon did not answer: \(message(of: error))"))
            default:
                return .failure(NotifyFailure(code: .rejected, message: "the notification daemon refused: \(message(of: error))"))
            }
        }
        defer { dbus_message_unref(reply) }
        var iterator = DBusMessageIter()
        var id: UInt32 = 0
        if dbus_message_iter_init(reply, &iterator) != 0, dbus_message_iter_get_arg_type(&iterator) == type("u") {
            dbus_message_iter_get_basic(&iterator, &id)
        }
        return .success(id)
    }

    /// A private connection to `address`, or to the bus DBUS_SESSION_BUS_ADDRESS names now
    /// (dbus_bus_get_private reads that variable once per process and caches it).
    private static func connectToSessionBus(_ address: String?, _ error: inout DBusError) -> OpaquePointer? {
        guard let address = address ?? ProcessInfo.processInfo.environment["DBUS_SESSION_BUS_ADDRESS"] else {
            return dbus_bus_get_private(DBUS_BUS_SESSION, &error)  // libdbus's defaults
        }
        guard let connection = dbus_connection_open_private(address, &error) else { return nil }
        guard dbus_bus_register(connection, &error) != 0 else {
            dbus_connection_close(connection)
            dbus_connection_unref(connection)
            return nil
        }
        return connection
    }

    /// Notify(s app_name, u replaces_id, s app_icon, s summary, s body, as actions,
    /// a{sv} hints, i expire_timeout).
    private static func append(_ n: Notification, to message: OpaquePointer) {
        var args = DBusMessageIter()
        dbus_message_iter_init_append(message, &args)
        appendString(n.appName, to: &args)
        var replaces: UInt32 = 0
        dbus_message_iter_append_basic(&args, type("u"), &replaces)
        appendString(n.icon, to: &args)
        appendString(n.summary, to: &args)
        appendString(n.body, to: &args)

        var actions = DBusMessageIter()
        dbus_message_iter_open_container(&args, type("a"), "s", &actions)
        dbus_message_iter_close_container(&args, &actions)

        var hints = DBusMessageIter()
        dbus_message_iter_open_container(&args, type("a"), "{sv}", &hints)
        var entry = DBusMessageIter()
        dbus_message_iter_open_container(&hints, type("e"), nil, &entry)
        appendString("desktop-entry", to: &entry)
        var variant = DBusMessageIter()
        dbus_message_iter_open_container(&entry, type("v"), "s", &variant)
        appendString(n.desktopEntry, to: &variant)
        dbus_message_iter_close_container(&entry, &variant)
        dbus_message_iter_close_container(&hints, &entry)
        dbus_message_iter_close_container(&args, &hints)

        var expire: Int32 = -1  // the server's default
        dbus_message_iter_append_basic(&args, type("i"), &expire)
    }

    private static func appendString(_ text: String, to iterator: inout DBusMessageIter) {
        // libdbus rejects (and aborts on) invalid UTF-8; Swift strings are valid, but an
        // embedded NUL would cut the text short, which is harmless.
        text.withCString { pointer in
            var value: UnsafePointer<CChar>? = pointer
            _ = dbus_message_iter_append_basic(&iterator, type("s"), &value)
        }
    }

    private static func type(_ code: Character) -> Int32 { Int32(code.asciiValue!) }

    private static func message(of error: DBusError) -> String {
        error.message.map { String(cString: $0) } ?? "unknown error"
    }
}
