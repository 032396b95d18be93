// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CDBus
import MainLoop

private let threadsInitialized: Bool = dbus_threads_init_default() != 0

/// A private connection to a message bus. Use it from one thread: the one running the MainLoop
/// it is attached to, or the only thread for a blocking client.
public final class DBusConnection {
    let raw: OpaquePointer
    /// This connection's unique name on the bus, e.g. ":1.42".
    public let uniqueName: String
    /// Called once when the bus connection is lost (needs `attach(to:)`: it comes through dispatch).
    public var onDisconnect: (() -> Void)?

    private var integration: LoopIntegration?
    private var closed = false
    private var disconnectReported = false
    private var subscriptions: [SignalSubscription] = []
    private var nameOwners: [String: String] = [:]  // tracked well-known name → unique name
    private var trackedNames: Set<String> = []
    private var exportedPaths: [String: ObjectIdentifier] = [:]
    private var filterInstalled = false
    /// Name-owner watches (NameOwnerWatch.swift): watched name → watch id → handler.
    var ownerWatchers: [String: [UInt64: (_ oldOwner: String, _ newOwner: String) -> Void]] = [:]
    var nextOwnerWatchID: UInt64 = 1
    /// Asynchronous calls in flight (PendingCall.swift), cancelled by `close()`: each holds a
    /// reference on the libdbus connection, so one left behind would keep both alive for good.
    var pendingCalls: [ObjectIdentifier: DBusPendingCall] = [:]

    /// Opens a private connection and registers it with the bus (Hello).
    public init(bus: BusAddress) throws(DBusError) {
        _ = threadsInitialized
        var error = CDBus.DBusError()
        dbus_error_init(&error)
        var connection: OpaquePointer?
        switch bus {
        case .session:
            connection = dbus_bus_get_private(DBUS_BUS_SESSION, &error)
        case .system:
            connection = dbus_bus_get_private(DBUS_BUS_SYSTEM, &error)
        case .address(let address):
            guard !address.utf8.contains(0) else { throw .invalidArgs("a bus address cannot contain NUL") }
            connection = dbus_connection_open_private(address, &error)
            if let opened = connection, dbus_bus_register(opened, &error) == 0 {
                dbus_connection_close(opened)
                dbus_connection_unref(opened)
                connection = nil
            }
        }
        guard let connection else { throw DBusError(consuming: &error, fallback: "cannot connect to the bus") }
        dbus_error_free(&error)
        dbus_connection_set_exit_on_disconnect(connection, 0)
        raw = connection
        uniqueName = dbus_bus_get_unique_name(connection).map { String(cString: $0) } ?? ""
        filterInstalled =
            dbus_connection_add_filter(
                raw, filterFunction, Unmanaged.passUnretained(self).toOpaque(), nil) != 0
    }

    deinit {
        if filterInstalled {
            dbus_connection_remove_filter(raw, filterFunction, Unmanaged.passUnretained(self).toOpaque())
        }
        close()
        dbus_connection_unref(raw)
    }

    /// Whether the transport is still up.
    public var isConnected: Bool { !closed && dbus_connection_get_is_connected(raw) != 0 }

    /// Returns true when we became the primary owner (or already were). Uses DBUS_NAME_FLAG_DO_NOT_QUEUE.
    public func requestName(_ name: String) throws(DBusError) -> Bool {
        try checkOpen()
        try Names.busName(name)
        var error = CDBus.DBusError()
        dbus_error_init(&error)
        let result = dbus_bus_request_name(raw, name, UInt32(DBUS_NAME_FLAG_DO_NOT_QUEUE), &error)
        guard result >= 0 else { throw DBusError(consuming: &error, fallback: "cannot request the name \(name)") }
        dbus_error_free(&error)
        return result == DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER || result == DBUS_REQUEST_NAME_REPLY_ALREADY_OWNER
    }

    /// Blocking method call (for clients and tests). Timeout in seconds (infinity waits forever).
    /// Messages arriving meanwhile are queued and dispatched afterwards.
    public func call(
        destination: String, path: String, interface: String, method: String,
        arguments: [Value] = [], timeout: Double = 25
    ) throws(DBusError) -> [Value] {
        let reply = try callForMessage(
            destination: destination, path: path, interface: interface, method: method, arguments: arguments,
            timeout: timeout)
        defer { dbus_message_unref(reply) }
        return try MessageCoding.arguments(of: reply)
    }

    /// `call`, returning the reply message itself (owned by the caller: unref it), for replies
    /// that carry what Value does not (file descriptors).
    func callForMessage(
        destination: String, path: String, interface: String, method: String,
        arguments: [Value], timeout: Double
    ) throws(DBusError) -> OpaquePointer {
        try checkOpen()
        let message = try Self.methodCall(
            destination: destination, path: path, interface: interface, method: method, arguments: arguments)
        defer { dbus_message_unref(message) }
        let milliseconds: Int32 =
            timeout.isFinite
            ? Int32(clamping: Int64(max(0, min(timeout, 1e9)) * 1000))
            : Int32.max  // DBUS_TIMEOUT_INFINITE
        var error = CDBus.DBusError()
        dbus_error_init(&error)
        let reply = dbus_connection_send_with_reply_and_block(raw, message, milliseconds, &error)
        integration?.scheduleDispatchIfNeeded()
        guard let reply else {
            throw DBusError(consuming: &error, fallback: "no reply from \(destination) for \(interface).\(method)")
        }
        dbus_error_free(&error)
        return reply
    }

    /// A method call message with checked names and `arguments` appended, owned by the caller
    /// (unref it): the one place blocking and asynchronous calls build their messages.
    static func methodCall(
        destination: String, path: String, interface: String, method: String, arguments: [Value]
    ) throws(DBusError) -> OpaquePointer {
        try Names.busName(destination)
        try Names.path(path)
        try Names.interface(interface)
        try Names.member(method)
        guard let message = dbus_message_new_method_call(destination, path, interface, method) else {
            throw .noMemory("out of memory")
        }
        do throws(DBusError) {
            try MessageCoding.append(arguments, to: message)
        } catch {
            dbus_message_unref(message)
            throw error
        }
        return message
    }

    /// Queues a signal; an attached connection writes it from the loop, otherwise call `flush()`.
    /// A value D-Bus cannot carry is reported on stderr and the signal dropped; use `sendSignal`
    /// to handle that yourself.
    public func emitSignal(
        path: String, interface: String, name: String, arguments: [Value], destination: String? = nil
    ) {
        do throws(DBusError) {
            try sendSignal(path: path, interface: interface, name: name, arguments: arguments, destination: destination)
        } catch {
            FileOutput.standardError("DBusKit: signal \(interface).\(name) not sent: \(error)\n")
        }
    }

    /// Sends a signal, throwing when the names or arguments are not valid for D-Bus. With a
    /// `destination` it is unicast: the bus delivers it to that connection only.
    public func sendSignal(
        path: String, interface: String, name: String, arguments: [Value], destination: String? = nil
    ) throws(DBusError) {
        try checkOpen()
        try Names.path(path)
        try Names.interface(interface)
        try Names.member(name)
        if let destination { try Names.busName(destination) }
        guard let message = dbus_message_new_signal(path, interface, name) else { throw .noMemory("out of memory") }
        defer { dbus_message_unref(message) }
        if let destination, dbus_message_set_destination(message, destination) == 0 { throw .noMemory("out of memory") }
        try MessageCoding.append(arguments, to: message)
        guard dbus_connection_send(raw, message, nil) != 0 else { throw .noMemory("out of memory") }
    }

    /// Exports `object` at `path`, replacing whatever was exported there.
    public func export(_ object: DBusExportedObject, at path: String) {
        guard !closed, MessageCoding.isValidObjectPath(path) else {
            FileOutput.standardError("DBusKit: cannot export an object at '\(path)': not a valid object path\n")
            return
        }
        if exportedPaths[path] != nil { unexport(at: path) }
        var vtable = DBusObjectPathVTable(
            unregister_function: { _, data in
                if let data { Unmanaged<DBusExportedObject>.fromOpaque(data).release() }
            },
            message_function: { connection, message, data in
                Unmanaged<DBusExportedObject>.fromOpaque(data!).takeUnretainedValue()
                    .handle(message!, on: connection!)
            },
            dbus_internal_pad1: nil, dbus_internal_pad2: nil, dbus_internal_pad3: nil, dbus_internal_pad4: nil)
        let context = Unmanaged.passRetained(object).toOpaque()
        guard dbus_connection_register_object_path(raw, path, &vtable, context) != 0 else {
            Unmanaged<DBusExportedObject>.fromOpaque(context).release()
            FileOutput.standardError("DBusKit: cannot export an object at '\(path)' (out of memory)\n")
            return
        }
        exportedPaths[path] = ObjectIdentifier(object)
        object.exported(on: self, at: path)
    }

    /// Stops exporting whatever object is at `path`.
    public func unexport(at path: String) {
        guard exportedPaths.removeValue(forKey: path) != nil else { return }
        _ = dbus_connection_unregister_object_path(raw, path)
    }

    /// Integrates the connection into a MainLoop (watches, timeouts, dispatch). Call once, on the loop thread.
    public func attach(to loop: MainLoop) {
        guard integration == nil, !closed else { return }
        integration = LoopIntegration.install(on: raw, loop: loop)
    }

    /// Subscribes to signals matching `rule` (AddMatch on the bus + a local filter that routes
    /// matching signals to `handler`). A well-known `sender` in the rule is followed to its owner.
    public func addMatch(_ rule: String, _ handler: @escaping (DBusSignal) -> Void) throws(DBusError) {
        try checkOpen()
        let parsed = try MatchRule(rule)
        if let sender = parsed.sender, !sender.hasPrefix(":"), sender != "org.freedesktop.DBus" {
            try track(sender)
        }
        try busAddMatch(rule)
        subscriptions.append(SignalSubscription(rule: parsed, handler: handler))
    }

    /// Sends what is queued and waits until it is written.
    public func flush() {
        guard !closed else { return }
        dbus_connection_flush(raw)
    }

    /// Closes the connection (a private connection must be closed before its last unref).
    /// onDisconnect is not called for this.
    public func close() {
        guard !closed else { return }
        closed = true
        for call in Array(pendingCalls.values) { call.cancel() }
        pendingCalls.removeAll()
        integration?.invalidated = true
        for path in exportedPaths.keys { _ = dbus_connection_unregister_object_path(raw, path) }
        exportedPaths.removeAll()
        dbus_connection_close(raw)
        if integration != nil { LoopIntegration.uninstall(from: raw) }
        integration = nil
    }

    // MARK: Internals

    /// The loop the connection is attached to, if any.
    var loop: MainLoop? { integration?.loop }

    func isExporting(_ object: DBusExportedObject, at path: String) -> Bool {
        !closed && exportedPaths[path] == ObjectIdentifier(object)
    }

    private func checkOpen() throws(DBusError) {
        guard !closed else { throw .disconnected("the D-Bus connection is closed") }
    }

    private func busAddMatch(_ rule: String) throws(DBusError) {
        guard !rule.utf8.contains(0) else { throw .invalidArgs("a match rule cannot contain NUL") }
        var error = CDBus.DBusError()
        dbus_error_init(&error)
        dbus_bus_add_match(raw, rule, &error)
        if dbus_error_is_set(&error) != 0 {
            throw DBusError(consuming: &error, fallback: "the bus refused the match rule \(rule)")
        }
    }

    /// Follows who owns a well-known name, so rules naming it match signals from its unique name.
    private func track(_ name: String) throws(DBusError) {
        guard !trackedNames.contains(name) else { return }
        try Names.busName(name)
        try busAddMatch(
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                + "member='NameOwnerChanged',arg0='\(name)'")
        trackedNames.insert(name)
        do throws(DBusError) {
            let reply = try call(
                destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus", method: "GetNameOwner", arguments: [.string(name)])
            nameOwners[name] = reply.first?.stringValue
        } catch  where error.name == DBusError.prefix + "NameHasNoOwner" {
            nameOwners[name] = nil
        }
    }

    fileprivate func filter(_ message: OpaquePointer) -> DBusHandlerResult {
        if dbus_message_is_signal(message, "org.freedesktop.DBus.Local", "Disconnected") != 0 {
            reportDisconnect()
            return DBUS_HANDLER_RESULT_HANDLED
        }
        guard dbus_message_get_type(message) == DBUS_MESSAGE_TYPE_SIGNAL else {
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }
        let header = MessageHeader(message)
        guard let interface = header.interface else { return DBUS_HANDLER_RESULT_NOT_YET_HANDLED }
        var arguments: [Value]?
        func decoded() -> [Value]? {
            if arguments == nil { arguments = try? MessageCoding.arguments(of: message) }
            return arguments
        }
        if header.sender == "org.freedesktop.DBus", interface == "org.freedesktop.DBus",
            header.member == "NameOwnerChanged", let args = decoded(), args.count == 3,
            let name = args[0].stringValue, trackedNames.contains(name)
        {
            let owner = args[2].stringValue ?? ""
            nameOwners[name] = owner.isEmpty ? nil : owner
        }
        if header.sender == "org.freedesktop.DBus", interface == "org.freedesktop.DBus",
            header.member == "NameOwnerChanged", let args = decoded(), args.count == 3,
            let name = args[0].stringValue, let watchers = ownerWatchers[name]
        {
            let (old, new) = (args[1].stringValue ?? "", args[2].stringValue ?? "")
            for (id, handler) in watchers.sorted(by: { $0.key < $1.key }) where ownerWatchers[name]?[id] != nil {
                handler(old, new)  // may cancel watches, this one or others
            }
        }
        let candidates = subscriptions.filter {
            $0.rule.matchesHeader(
                sender: header.sender, path: header.path, interface: interface,
                member: header.member, owners: nameOwners)
        }
        guard !candidates.isEmpty, let args = decoded() else { return DBUS_HANDLER_RESULT_NOT_YET_HANDLED }
        let signal = DBusSignal(
            sender: header.sender, path: header.path, interface: interface,
            member: header.member, arguments: args)
        for subscription in candidates where subscription.rule.matchesArguments(args) {
            subscription.handler(signal)
        }
        return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
    }

    private func reportDisconnect() {
        guard !disconnectReported, !closed else { return }
        disconnectReported = true
        onDisconnect?()
    }
}

private let filterFunction: DBusHandleMessageFunction = { _, message, data in
    Unmanaged<DBusConnection>.fromOpaque(data!).takeUnretainedValue().filter(message!)
}

private struct SignalSubscription {
    var rule: MatchRule
    var handler: (DBusSignal) -> Void
}
