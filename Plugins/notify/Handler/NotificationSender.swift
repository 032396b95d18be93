// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit
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

/// One blocking Notify call over a private session-bus connection, closed after. Through DBusKit,
/// the one module that touches libdbus (Package.swift's rule): its connection already handles
/// libdbus's thread set-up and exit-on-disconnect, which this file used to repeat.
enum NotificationSender {
    static func send(_ notification: Notification, busAddress: String?, timeout: Double) -> Result<
        UInt32, NotifyFailure
    > {
        let connection: DBusConnection
        do {
            connection = try DBusConnection(bus: sessionBus(busAddress))
        } catch {
            return .failure(NotifyFailure(code: .noBus, message: "no session bus: \(error.message)"))
        }
        defer { connection.close() }
        let reply: [Value]
        do {
            reply = try connection.call(
                destination: "org.freedesktop.Notifications", path: "/org/freedesktop/Notifications",
                interface: "org.freedesktop.Notifications", method: "Notify", arguments: arguments(notification),
                timeout: max(0.1, min(timeout, 25)))
        } catch {
            switch error.name {
            case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
                return .failure(NotifyFailure(code: .noDaemon, message: "no notification daemon on the session bus"))
            case "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout",
                "org.freedesktop.DBus.Error.Disconnected":
                return .failure(
                    NotifyFailure(code: .noReply, message: "the notification daemon did not answer: \(error.message)"))
            default:
                return .failure(
                    NotifyFailure(code: .rejected, message: "the notification daemon refused: \(error.message)"))
            }
        }
        if case .uint32(let id)? = reply.first { return .success(id) }
        return .success(0)
    }

    /// `address`, or the bus DBUS_SESSION_BUS_ADDRESS names now (libdbus's own session lookup
    /// reads that variable once per process and caches it).
    private static func sessionBus(_ address: String?) -> BusAddress {
        guard let address = address ?? ProcessInfo.processInfo.environment["DBUS_SESSION_BUS_ADDRESS"] else {
            return .session
        }
        return .address(address)
    }

    /// Notify(s app_name, u replaces_id, s app_icon, s summary, s body, as actions,
    /// a{sv} hints, i expire_timeout); expire -1 is the server's default.
    private static func arguments(_ n: Notification) -> [Value] {
        let hints = [Value.DictEntry(key: .string("desktop-entry"), value: .variant(.string(n.desktopEntry)))]
        return [
            .string(n.appName), .uint32(0), .string(n.icon), .string(n.summary), .string(n.body),
            .array(elementSignature: "s", []), .dictionary(keySignature: "s", valueSignature: "v", hints), .int32(-1),
        ]
    }
}
