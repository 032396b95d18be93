// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CDBus

/// The answer to an asynchronous call: who sent it, the body's signature, and either the
/// decoded arguments or the error. An error carries its sender too, because the same error name
/// means different things by origin: `NoReply` made up by libdbus is the call's own timeout,
/// while `NoReply` from the bus (`org.freedesktop.DBus`) means the peer left without answering.
public struct DBusReply: Sendable {
    /// The unique name of whoever answered, "org.freedesktop.DBus" for the bus itself, and ""
    /// for a reply libdbus made up (the timeout, or a lost connection).
    public var sender: String
    public var signature: String
    public var result: Result<[Value], DBusError>

    public init(sender: String, signature: String, result: Result<[Value], DBusError>) {
        self.sender = sender
        self.signature = signature
        self.result = result
    }

    public static let busName = "org.freedesktop.DBus"
}

/// A method call in flight, started by `DBusConnection.callAsync`. Its completion runs once, on
/// the loop's thread, unless the call is cancelled first (closing the connection cancels every
/// call in flight). Keep it to cancel; dropping it does not cancel (the connection holds it until
/// the answer or the timeout).
public final class DBusPendingCall {
    private var pending: OpaquePointer?
    private var completion: ((DBusReply) -> Void)?
    private weak var connection: DBusConnection?
    private let replySignature: String?

    init(replySignature: String?, completion: @escaping (DBusReply) -> Void) {
        self.replySignature = replySignature
        self.completion = completion
    }

    /// Whether the completion has run or the call was cancelled.
    public var isDone: Bool { completion == nil }

    /// Forgets the call: its completion will not run, and a late answer is dropped by libdbus.
    public func cancel() {
        completion = nil
        release(cancelling: true)
    }

    func attach(_ pending: OpaquePointer, to connection: DBusConnection) -> Bool {
        self.pending = pending
        self.connection = connection
        let context = Unmanaged.passRetained(self).toOpaque()
        let free: DBusFreeFunction = { data in
            if let data { Unmanaged<DBusPendingCall>.fromOpaque(data).release() }
        }
        guard dbus_pending_call_set_notify(pending, pendingCallNotify, context, free) != 0 else {
            Unmanaged<DBusPendingCall>.fromOpaque(context).release()
            return false
        }
        connection.pendingCalls[ObjectIdentifier(self)] = self
        return true
    }

    /// Called by libdbus (from dispatch, or the timeout) with the answer ready.
    fileprivate func answered() {
        withExtendedLifetime(self) { readAnswer() }  // `release` drops libdbus's hold on us
    }

    private func readAnswer() {
        guard let pending else { return }
        let message = dbus_pending_call_steal_reply(pending)
        let reply: DBusReply
        if let message {
            reply = Self.decode(message, expecting: replySignature)
            dbus_message_unref(message)
        } else {
            reply = DBusReply(sender: "", signature: "", result: .failure(.noReply("no reply")))
        }
        finish(reply)
    }

    private func finish(_ reply: DBusReply) {
        let completion = self.completion
        self.completion = nil
        release(cancelling: false)
        completion?(reply)
    }

    private func release(cancelling: Bool) {
        guard let pending else { return }
        self.pending = nil
        connection?.pendingCalls[ObjectIdentifier(self)] = nil
        if cancelling { dbus_pending_call_cancel(pending) }
        dbus_pending_call_set_notify(pending, nil, nil, nil)  // releases our retain, through `free`
        dbus_pending_call_unref(pending)
    }

    /// Reads a reply or error message. A reply whose signature is not `expected` is reported
    /// as InvalidSignature without decoding its body (it may come from a hostile peer).
    static func decode(_ message: OpaquePointer, expecting expected: String?) -> DBusReply {
        let header = MessageHeader(message)
        if dbus_message_get_type(message) == DBUS_MESSAGE_TYPE_ERROR {
            let name = dbus_message_get_error_name(message).map { String(cString: $0) } ?? DBusError.prefix + "Failed"
            var text = ""
            if header.signature.hasPrefix("s"), let arguments = try? MessageCoding.arguments(of: message) {
                text = arguments.first?.stringValue ?? ""
            }
            return DBusReply(
                sender: header.sender, signature: header.signature,
                result: .failure(DBusError(name: name, message: text)))
        }
        if let expected, header.signature != expected {
            return DBusReply(
                sender: header.sender, signature: header.signature,
                result: .failure(
                    .invalidSignature("the reply has signature '\(header.signature)', not '\(expected)'")))
        }
        do throws(DBusError) {
            return DBusReply(
                sender: header.sender, signature: header.signature,
                result: .success(try MessageCoding.arguments(of: message)))
        } catch {
            return DBusReply(sender: header.sender, signature: header.signature, result: .failure(error))
        }
    }
}

private let pendingCallNotify: DBusPendingCallNotifyFunction = { _, data in
    Unmanaged<DBusPendingCall>.fromOpaque(data!).takeUnretainedValue().answered()
}

extension DBusConnection {
    /// Starts a method call without waiting for it; `completion` gets the answer, or a
    /// `NoReply` error from libdbus (sender "") once `timeout` seconds have passed. The
    /// connection must be attached to a MainLoop (`attach(to:)`) for answers and timeouts to
    /// arrive; a call started before that is sent once it is. `autoStart: false` asks the bus not
    /// to start an activatable service for `destination`. With `replySignature`, a reply of
    /// another signature is an InvalidSignature error, its body left unread.
    /// Throws only for names and arguments that cannot be sent at all.
    @discardableResult
    public func callAsync(
        destination: String, path: String, interface: String, method: String, arguments: [Value] = [],
        timeout: Double, autoStart: Bool = true, replySignature: String? = nil,
        completion: @escaping (DBusReply) -> Void
    ) throws(DBusError) -> DBusPendingCall {
        guard isConnected else { throw .disconnected("the D-Bus connection is closed") }
        let message = try Self.methodCall(
            destination: destination, path: path, interface: interface, method: method, arguments: arguments)
        defer { dbus_message_unref(message) }
        dbus_message_set_auto_start(message, autoStart ? 1 : 0)
        // libdbus takes milliseconds as an int; INT32_MAX means "never". At least 1 ms: 0 would
        // make the bus default (25 s) apply.
        let milliseconds = timeout.isFinite ? Int32(clamping: Int64(max(0.001, min(timeout, 2e6)) * 1000)) : Int32.max
        let call = DBusPendingCall(replySignature: replySignature, completion: completion)
        var pending: OpaquePointer?
        guard dbus_connection_send_with_reply(raw, message, &pending, milliseconds) != 0 else {
            throw .noMemory("out of memory")
        }
        guard let pending else {
            throw .disconnected("the D-Bus connection is closed")
        }
        guard call.attach(pending, to: self) else {
            dbus_pending_call_cancel(pending)
            dbus_pending_call_unref(pending)
            throw .noMemory("out of memory")
        }
        return call
    }
}
