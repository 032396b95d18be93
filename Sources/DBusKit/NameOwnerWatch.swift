// SPDX-License-Identifier: Apache-2.0
import CDBus

/// A watch on who owns a bus name, from `DBusConnection.watchNameOwner`. Cancel it when done:
/// the bus keeps the match rule until the last watch of that name is cancelled.
public final class NameOwnerWatch {
    public let name: String
    private let id: UInt64
    private weak var connection: DBusConnection?

    init(name: String, id: UInt64, connection: DBusConnection) {
        self.name = name
        self.id = id
        self.connection = connection
    }

    public func cancel() {
        connection?.removeOwnerWatch(name: name, id: id)
        connection = nil
    }
}

extension DBusConnection {
    /// Calls `onChange(oldOwner, newOwner)` for every NameOwnerChanged of `name` (unique names;
    /// "" for none) until the watch is cancelled. Does not block: the match rule is sent to the
    /// bus without waiting, and the bus handles it before any message sent after this call, so a
    /// call made next cannot outrun the watch. Changes arrive through dispatch (needs
    /// `attach(to:)`).
    public func watchNameOwner(
        _ name: String, _ onChange: @escaping (_ oldOwner: String, _ newOwner: String) -> Void
    ) throws(DBusError) -> NameOwnerWatch {
        guard isConnected else { throw .disconnected("the D-Bus connection is closed") }
        try Names.busName(name)
        if ownerWatchers[name] == nil {
            dbus_bus_add_match(raw, Self.ownerRule(name), nil)  // nil error: sent, not waited for
        }
        let id = nextOwnerWatchID
        nextOwnerWatchID += 1
        ownerWatchers[name, default: [:]][id] = onChange
        return NameOwnerWatch(name: name, id: id, connection: self)
    }

    func removeOwnerWatch(name: String, id: UInt64) {
        guard ownerWatchers[name]?.removeValue(forKey: id) != nil else { return }
        if ownerWatchers[name]?.isEmpty == true {
            ownerWatchers[name] = nil
            if isConnected { dbus_bus_remove_match(raw, Self.ownerRule(name), nil) }
        }
    }

    private static func ownerRule(_ name: String) -> String {
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
            + "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='\(name)'"
    }
}

/// Names as GApplication derives them.
public enum ApplicationNames {
    /// The object path of a GApplication with id `appID`: "/" then the id with each '.' made '/'
    /// and each '-' made '_' (GLib's gapplicationimpl-dbus.c, application_path_from_appid), so
    /// `org.example.Chat` is at `/org/example/Chat` and `org.example.my-app` at
    /// `/org/example/my_app`. Nil when the result is not a valid object path (an id that is not
    /// a valid application id: empty parts, characters other than
    /// letters, digits, '_', '-' and '.').
    public static func objectPath(forApplicationID appID: String) -> String? {
        let allowed = appID.utf8.allSatisfy {
            (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0)
                || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
        }
        guard allowed else { return nil }
        var path = "/"
        for character in appID.unicodeScalars {
            switch character {
            case ".": path.unicodeScalars.append("/")
            case "-": path.unicodeScalars.append("_")
            default: path.unicodeScalars.append(character)
            }
        }
        return MessageCoding.isValidObjectPath(path) && path != "/" ? path : nil
    }
}
