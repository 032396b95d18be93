// SPDX-License-Identifier: Apache-2.0
import CDBus

#if canImport(Glibc)
import Glibc
#endif

/// What the bus knows of a peer (org.freedesktop.DBus.GetConnectionCredentials), including the
/// `ProcessFD` that dbus-daemon ≥ 1.15.8 and dbus-broker send where the kernel has
/// SO_PEERPIDFD: a pidfd for the peer's process as it connected, which, unlike its PID, cannot
/// come to name another process.
public struct ConnectionCredentials: Sendable {
    public var processID: UInt32?
    /// A pidfd owned by whoever holds this value: close it (see `close()`).
    public var processFD: Int32?
    /// `LinuxSecurityLabel` without its trailing NUL (an AppArmor label, for instance).
    public var securityLabel: [UInt8]?

    /// Closes `processFD`, if any.
    public mutating func close() {
        if let fd = processFD { _ = Glibc.close(fd) }
        processFD = nil
    }
}

extension DBusConnection {
    /// Asks the bus about the connection `name`. Keys the bus adds later are ignored.
    public func connectionCredentials(of name: String, timeout: Double = 5) throws(DBusError) -> ConnectionCredentials {
        let reply = try callForMessage(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            method: "GetConnectionCredentials", arguments: [.string(name)], timeout: timeout)
        defer { dbus_message_unref(reply) }
        var credentials = ConnectionCredentials()
        var iter = DBusMessageIter()
        guard dbus_message_iter_init(reply, &iter) != 0, dbus_message_iter_get_arg_type(&iter) == DBUS_TYPE_ARRAY else {
            throw .invalidArgs("GetConnectionCredentials replied without an a{sv}")
        }
        var entries = DBusMessageIter()
        dbus_message_iter_recurse(&iter, &entries)
        var budget = MessageCoding.Budget(.none)  // the bus's own reply
        do throws(DBusError) {
            while dbus_message_iter_get_arg_type(&entries) == DBUS_TYPE_DICT_ENTRY {
                var entry = DBusMessageIter()
                dbus_message_iter_recurse(&entries, &entry)
                let key = try MessageCoding.string(&entry, &budget)
                dbus_message_iter_next(&entry)
                var variant = DBusMessageIter()
                dbus_message_iter_recurse(&entry, &variant)
                if dbus_message_iter_get_arg_type(&variant) == DBUS_TYPE_UNIX_FD {
                    // libdbus hands out a duplicate that the reader owns.
                    let fd = MessageCoding.basic(&variant, Int32(-1))
                    if key == "ProcessFD", fd >= 0, credentials.processFD == nil {
                        credentials.processFD = fd
                    } else if fd >= 0 {
                        _ = Glibc.close(fd)
                    }
                } else {
                    let value = try MessageCoding.read(&variant, &budget)
                    switch (key, value) {
                    case ("ProcessID", .uint32(let pid)): credentials.processID = pid
                    case ("LinuxSecurityLabel", .array(_, let bytes)):
                        var label = bytes.compactMap { if case .byte(let b) = $0 { b } else { nil } }
                        while label.last == 0 { label.removeLast() }
                        credentials.securityLabel = label
                    default: break
                    }
                }
                dbus_message_iter_next(&entries)
            }
        } catch {
            credentials.close()
            throw error
        }
        return credentials
    }
}
