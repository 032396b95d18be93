// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CDBus
import MainLoop

/// An object exported at a path. Handles org.freedesktop.DBus.Introspectable (returns exactly the
/// XML document it was given), org.freedesktop.DBus.Properties (Get, GetAll, Set) and dispatches
/// methods to handlers. org.freedesktop.DBus.Peer is answered by libdbus itself.
///
/// On a connection attached to a MainLoop, calls are served fairly between callers: each waits
/// in its sender's queue, and the loop serves one call per sender in turn, at most
/// `callsPerTurn` per loop iteration, reading the socket again in between. One client with
/// hundreds of calls in flight then delays another's call by about one turn, not by all of its
/// own calls (test_one_app_flooding_does_not_starve_another).
public final class DBusExportedObject {
    public typealias MethodHandler = (DBusMethodCall) throws(DBusError) -> [Value]
    public typealias PropertySetter = (Value) throws(DBusError) -> Void
    /// A handler that answers later, through `reply` (a thrown error is sent at once instead).
    public typealias DeferredMethodHandler = (DBusMethodCall, DBusPendingReply) throws(DBusError) -> Void

    static let introspectable = "org.freedesktop.DBus.Introspectable"
    static let properties = "org.freedesktop.DBus.Properties"
    static let peer = "org.freedesktop.DBus.Peer"
    /// The standard interfaces take names only: far less than this.
    static let standardLimit = DecodingLimit(
        bytes: 64 * 1024, error: .invalidArgs("The arguments take more than 64 KiB; Properties calls take names."))

    private struct Method {
        enum Body {
            case immediate(MethodHandler)
            case deferred(DeferredMethodHandler)
        }
        var inSignature: String
        var argumentLimit: DecodingLimit
        var body: Body
    }

    private struct Property {
        var name: String
        var signature: String
        var get: () -> Value
        var set: PropertySetter?
    }

    private let introspectionXML: String
    private var methods: [String: [String: Method]] = [:]  // interface → name → method
    private var properties: [String: [Property]] = [:]  // interface → properties, in order
    private var exports: [(connection: Weak<DBusConnection>, path: String)] = []

    /// Calls served per loop iteration before the loop reads and polls again.
    static let callsPerTurn = 8
    private struct WaitingCall {
        var message: OpaquePointer
        var connection: OpaquePointer
    }
    /// Calls waiting their turn, by sender, and the senders in serving order.
    private var waiting: [String: [WaitingCall]] = [:]
    private var turns: [String] = []
    private var turnsHead = 0
    private var serveScheduled = false

    public init(introspectionXML: String) {
        self.introspectionXML = introspectionXML
    }

    /// Adds a method; calls whose signature is not `inSignature` get InvalidArgs without reaching `handler`,
    /// and calls whose arguments exceed `argumentLimit` get its error, before their values are built.
    public func addMethod(
        interface: String, name: String, inSignature: String, argumentLimit: DecodingLimit = .none,
        _ handler: @escaping MethodHandler
    ) {
        methods[interface, default: [:]][name] = Method(
            inSignature: inSignature, argumentLimit: argumentLimit, body: .immediate(handler))
    }

    /// Adds a method whose reply is sent later, through the `DBusPendingReply` its handler gets
    /// (say, once a write is on the disk); the loop serves other calls meanwhile.
    public func addDeferredMethod(
        interface: String, name: String, inSignature: String, argumentLimit: DecodingLimit = .none,
        _ handler: @escaping DeferredMethodHandler
    ) {
        methods[interface, default: [:]][name] = Method(
            inSignature: inSignature, argumentLimit: argumentLimit, body: .deferred(handler))
    }

    /// Adds a property. Without `set` it is read-only: Set answers PropertyReadOnly.
    public func addProperty(
        interface: String, name: String, signature: String,
        get: @escaping () -> Value, set: PropertySetter? = nil
    ) {
        properties[interface, default: []].removeAll { $0.name == name }
        properties[interface, default: []].append(Property(name: name, signature: signature, get: get, set: set))
    }

    /// Emits org.freedesktop.DBus.Properties.PropertiesChanged with the current values of `names`.
    public func propertiesChanged(interface: String, names: [String]) {
        let known = properties[interface] ?? []
        let changed = names.compactMap { name in known.first { $0.name == name } }
            .map { Value.DictEntry(key: .string($0.name), value: .variant($0.get())) }
        let arguments: [Value] = [
            .string(interface),
            .dictionary(keySignature: "s", valueSignature: "v", changed),
            .array(elementSignature: "s", []),
        ]
        exports.removeAll { $0.connection.value == nil }
        for export in exports {
            guard let connection = export.connection.value, connection.isExporting(self, at: export.path) else {
                continue
            }
            connection.emitSignal(
                path: export.path, interface: Self.properties, name: "PropertiesChanged", arguments: arguments)
        }
    }

    func exported(on connection: DBusConnection, at path: String) {
        exports.removeAll { $0.connection.value === connection && $0.path == path }
        exports.append((Weak(connection), path))
    }

    deinit {
        for calls in waiting.values {
            for call in calls {
                dbus_message_unref(call.message)
                dbus_connection_unref(call.connection)
            }
        }
    }

    // MARK: Handling calls

    func handle(_ message: OpaquePointer, on connection: OpaquePointer) -> DBusHandlerResult {
        guard dbus_message_get_type(message) == DBUS_MESSAGE_TYPE_METHOD_CALL else {
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }
        guard let loop = exports.lazy.compactMap({ $0.connection.value }).first(where: { $0.raw == connection })?.loop
        else {
            serve(message, on: connection)  // a blocking connection: no loop to take turns on
            return DBUS_HANDLER_RESULT_HANDLED
        }
        let sender = dbus_message_get_sender(message).map { String(cString: $0) } ?? ""
        if waiting[sender] == nil { turns.append(sender) }
        waiting[sender, default: []].append(
            WaitingCall(message: dbus_message_ref(message), connection: dbus_connection_ref(connection)))
        if !serveScheduled {
            serveScheduled = true
            loop.addTimer(after: 0) { [weak self] in self?.serveTurn(loop: loop) }
        }
        return DBUS_HANDLER_RESULT_HANDLED
    }

    /// Serves up to `callsPerTurn` waiting calls, one per sender in turn; schedules the rest.
    private func serveTurn(loop: MainLoop) {
        serveScheduled = false
        var budget = Self.callsPerTurn
        while budget > 0, turnsHead < turns.count {
            let sender = turns[turnsHead]
            turnsHead += 1
            guard var calls = waiting.removeValue(forKey: sender), !calls.isEmpty else { continue }
            let call = calls.removeFirst()
            if !calls.isEmpty {
                waiting[sender] = calls
                turns.append(sender)
            }
            serve(call.message, on: call.connection)
            dbus_message_unref(call.message)
            dbus_connection_unref(call.connection)
            budget -= 1
        }
        if turnsHead > 64, turnsHead * 2 > turns.count {
            turns.removeFirst(turnsHead)
            turnsHead = 0
        }
        if turnsHead < turns.count, !serveScheduled {
            serveScheduled = true
            loop.addTimer(after: 0) { [weak self] in self?.serveTurn(loop: loop) }
        }
    }

    private func serve(_ message: OpaquePointer, on connection: OpaquePointer) {
        let header = MessageHeader(message)
        let result: Result<[Value], DBusError>
        do throws(DBusError) {
            guard let values = try respond(to: message, header, on: connection) else {
                return  // a deferred method's reply owns the answer
            }
            result = .success(values)
        } catch {
            result = .failure(error)
        }
        if dbus_message_get_no_reply(message) == 0 {
            Self.sendReply(result, to: message, on: connection)
        }
    }

    static func sendReply(
        _ result: Result<[Value], DBusError>, to message: OpaquePointer, on connection: OpaquePointer
    ) {
        var failure: DBusError
        switch result {
        case .success(let values):
            guard let reply = dbus_message_new_method_return(message) else { return }
            defer { dbus_message_unref(reply) }
            do throws(DBusError) {
                try MessageCoding.append(values, to: reply)
                _ = dbus_connection_send(connection, reply, nil)
                return
            } catch {
                failure = .failed("the service produced a reply D-Bus cannot carry: \(error.message)")
            }
        case .failure(let error):
            failure = error
        }
        if !Names.errorName(failure.name) {
            failure = .failed("\(failure.name): \(failure.message)")
        }
        let text = String(failure.message.unicodeScalars.filter { $0 != "\0" })
        guard let reply = dbus_message_new_error(message, failure.name, text) else { return }
        _ = dbus_connection_send(connection, reply, nil)
        dbus_message_unref(reply)
    }

    private var interfaces: Set<String> {
        Set(methods.keys).union(properties.keys).union([Self.introspectable, Self.properties, Self.peer])
    }

    /// The reply's values, or nil when a deferred method took the call over.
    private func respond(
        to message: OpaquePointer, _ header: MessageHeader, on connection: OpaquePointer
    ) throws(DBusError) -> [Value]? {
        let member = header.member
        let location = "at object path '\(header.path)'"
        if let interface = header.interface, !interfaces.contains(interface) {
            throw .unknownInterface("No interface '\(interface)' \(location)")
        }
        switch (header.interface, member) {
        case (Self.introspectable?, "Introspect"):
            try expect("", for: "Introspect", header)
            return [.string(introspectionXML)]
        case (Self.properties?, "Get"):
            try expect("ss", for: "Get", header)
            let args = try MessageCoding.arguments(of: message, limit: Self.standardLimit)
            let property = try lookUp(args[0].stringValue ?? "", args[1].stringValue ?? "", header)
            return [.variant(try value(of: property.1))]
        case (Self.properties?, "GetAll"):
            try expect("s", for: "GetAll", header)
            let interface = try MessageCoding.arguments(of: message, limit: Self.standardLimit)[0].stringValue ?? ""
            guard interfaces.contains(interface) else {
                throw .unknownInterface("No interface '\(interface)' \(location)")
            }
            var entries: [Value.DictEntry] = []
            for property in properties[interface] ?? [] {
                entries.append(Value.DictEntry(key: .string(property.name), value: .variant(try value(of: property))))
            }
            return [.dictionary(keySignature: "s", valueSignature: "v", entries)]
        case (Self.properties?, "Set"):
            try expect("ssv", for: "Set", header)
            let args = try MessageCoding.arguments(of: message, limit: Self.standardLimit)
            let (interface, property) = try lookUp(args[0].stringValue ?? "", args[1].stringValue ?? "", header)
            guard let set = property.set else {
                throw .propertyReadOnly("Property '\(interface).\(property.name)' is read-only")
            }
            guard case .variant(let newValue) = args[2], newValue.signature == property.signature else {
                throw .invalidArgs(
                    "Property '\(interface).\(property.name)' has type '\(property.signature)', "
                        + "got '\(args[2].unwrappingVariants.signature)'")
            }
            try set(newValue)
            return []
        default:
            break
        }
        let found: (String, Method)?
        if let interface = header.interface {
            found = methods[interface]?[member].map { (interface, $0) }
        } else {
            found = methods.sorted { $0.key < $1.key }.lazy.compactMap { i, m in m[member].map { (i, $0) } }.first
        }
        guard let (interface, method) = found else {
            throw .unknownMethod("No method '\(member)' in interface '\(header.interface ?? "")' \(location)")
        }
        try expect(method.inSignature, for: "\(interface).\(member)", header)
        let call = DBusMethodCall(
            sender: header.sender, path: header.path, interface: header.interface,
            member: member, signature: header.signature,
            arguments: try MessageCoding.arguments(of: message, limit: method.argumentLimit))
        switch method.body {
        case .immediate(let handler):
            return try handler(call)
        case .deferred(let handler):
            let reply = DBusPendingReply(message: message, connection: connection)
            do throws(DBusError) {
                try handler(call, reply)
            } catch {
                reply.send(.failure(error))
            }
            return nil
        }
    }

    private func expect(_ signature: String, for method: String, _ header: MessageHeader) throws(DBusError) {
        guard header.signature == signature else {
            throw .invalidArgs("\(method) expects arguments of signature '\(signature)', got '\(header.signature)'")
        }
    }

    /// Finds a property; an empty interface name searches all interfaces (as the specification allows).
    private func lookUp(_ interface: String, _ name: String, _ header: MessageHeader) throws(DBusError) -> (
        String, Property
    ) {
        if interface.isEmpty {
            for (i, list) in properties.sorted(by: { $0.key < $1.key }) {
                if let property = list.first(where: { $0.name == name }) { return (i, property) }
            }
        } else {
            guard interfaces.contains(interface) else {
                throw .unknownInterface("No interface '\(interface)' at object path '\(header.path)'")
            }
            if let property = properties[interface]?.first(where: { $0.name == name }) { return (interface, property) }
        }
        throw .unknownProperty("No property '\(name)' in interface '\(interface)' at object path '\(header.path)'")
    }

    private func value(of property: Property) throws(DBusError) -> Value {
        let value = property.get()
        guard value.signature == property.signature else {
            throw .failed(
                "Property '\(property.name)' should have type '\(property.signature)' but its value has '\(value.signature)'"
            )
        }
        return value
    }
}

/// The answer to one call of a deferred method. Send it once, on the connection's loop thread;
/// one released unsent answers the caller with org.freedesktop.DBus.Error.Failed, so no call is
/// left waiting for its timeout.
public final class DBusPendingReply {
    private let message: OpaquePointer
    private let connection: OpaquePointer
    public private(set) var sent = false

    init(message: OpaquePointer, connection: OpaquePointer) {
        self.message = dbus_message_ref(message)
        self.connection = dbus_connection_ref(connection)
    }

    deinit {
        if !sent { send(.failure(.failed("the service dropped this call without answering it"))) }
        dbus_message_unref(message)
        dbus_connection_unref(connection)
    }

    /// The unique name of the caller.
    public var sender: String { dbus_message_get_sender(message).map { String(cString: $0) } ?? "" }

    /// Sends the reply (once; later calls do nothing). A caller that asked for no reply gets none.
    public func send(_ result: Result<[Value], DBusError>) {
        guard !sent else { return }
        sent = true
        guard dbus_message_get_no_reply(message) == 0, dbus_connection_get_is_connected(connection) != 0 else { return }
        DBusExportedObject.sendReply(result, to: message, on: connection)
    }
}

struct Weak<T: AnyObject> {
    weak var value: T?
    init(_ value: T) { self.value = value }
}
