// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CDBus

#if canImport(Glibc)
import Glibc
#endif

extension DBusConnection {
    /// A blocking call whose reply is a single file descriptor (signature `h`, such as logind's
    /// Inhibit), returned to the caller, who owns it and must close it. The connection must
    /// allow descriptors (a Unix socket: the system and session buses do).
    public func callReturningFileDescriptor(
        destination: String, path: String, interface: String, method: String, arguments: [Value] = [],
        timeout: Double = 25
    ) throws(DBusError) -> Int32 {
        let reply = try callForMessage(
            destination: destination, path: path, interface: interface, method: method, arguments: arguments,
            timeout: timeout)
        defer { dbus_message_unref(reply) }
        var iter = DBusMessageIter()
        guard dbus_message_iter_init(reply, &iter) != 0, dbus_message_iter_get_arg_type(&iter) == DBUS_TYPE_UNIX_FD
        else {
            throw .invalidArgs("\(interface).\(method) did not reply with a file descriptor")
        }
        // libdbus hands out a duplicate that the reader owns.
        let fd = MessageCoding.basic(&iter, Int32(-1))
        guard fd >= 0 else { throw .invalidArgs("\(interface).\(method) replied with no usable file descriptor") }
        return fd
    }
}
