import BGSyncValue
import CDBus

/// An object exported at a path. Handles org.freedesktop.DBus.Introspectable (returns exactly the
/// XML document it was given), org.freedesktop.DBus.Properties (Get, GetAll, Set) and dispatches
/// methods to handlers. org.freedesktop.DBus.Peer is answered by libdbus itself.
public final class DBusExportedObject {
    public typealias MethodHandler = (DBusMethodCall) throws(DBusError) -> [Value]
    public typealias PropertySetter = (Value) throws(DBusError) -> Void

    static let introspectable = "org.freedesktop.DBus.Introspectable"
    static let properties = "org.freedesktop.DBus.Properties"
    static let peer = "org.freedesktop.DBus.Peer"
    /// The standard interfaces take names only: far less than this.
    static let standardLimit = DecodingLimit(
        bytes: 64 * 1024, error: .invalidArgs("The arguments take more than 64 KiB; Properties calls take names."))

    private struct Method {
        var inSignature: String
        var argumentLimit: DecodingLimit
        var handler: MethodHandler
    }

    private struct Property {
        var name: String
        var signature: String
        var get: () -> Value
        var set: PropertySetter?
    }

    private let introspectionXML: String
    private var methods: [String: [String: Method]] = [:]       // interface → name → method
    private var properties: [String: [Property]] = [:]          // interface → properties, in order
    private var exports: [(connection: Weak<DBusConnection>, path: String)] = []

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
            inSignature: inSignature, argumentLimit: argumentLimit, handler: handler)
    }

    /// Adds a property. Without `set` it is read-only: Set answers PropertyReadOnly.
    public func addProperty(interface: String, name: String, signature: String,
                            get: @escaping () -> Value, set: PropertySetter? = nil) {
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
            guard let connection = export.connection.value, connection.isExporting(self, at: export.path) else { continue }
            connection.emitSignal(path: export.path, interface: Self.properties, name: "PropertiesChanged", arguments: arguments)
        }
    }

    func exported(on connection: DBusConnection, at path: String) {
        exports.removeAll { $0.connection.value === connection && $0.path == path }
        exports.append((Weak(connection), path))
    }

    // MARK: Handling calls

    func handle(_ message: OpaquePointer, on connection: OpaquePointer) -> DBusHandlerResult {
        guard dbus_message_get_type(message) == DBUS_MESSAGE_TYPE_METHOD_CALL else {
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }
        let header = MessageHeader(message)
        let result: Result<[Value], DBusError>
        do throws(DBusError) {
            result = .success(try respond(to: message, header))
        } catch {
            result = .failure(error)
        }
        if dbus_message_get_no_reply(message) == 0 {
            Self.sendReply(result, to: message, on: connection)
        }
        return DBUS_HANDLER_RESULT_HANDLED
    }

    private static func sendReply(_ result: Result<[Value], DBusError>, to message: OpaquePointer, on connection: OpaquePointer) {
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

    private func respond(to message: OpaquePointer, _ header: MessageHeader) throws(DBusError) -> [Value] {
        let member = header.member
        let where_ = "at object path '\(header.path)'"
        if let interface = header.interface, !interfaces.contains(interface) {
            throw .unknownInterface("No interface '\(interface)' \(where_)")
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
            guard interfaces.contains(interface) else { throw .unknownInterface("No interface '\(interface)' \(where_)") }
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
                throw .invalidArgs("Property '\(interface).\(property.name)' has type '\(property.signature)', "
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
            throw .unknownMethod("No method '\(member)' in interface '\(header.interface ?? "")' \(where_)")
        }
        try expect(method.inSignature, for: "\(interface).\(member)", header)
        let call = DBusMethodCall(sender: header.sender, path: header.path, interface: header.interface,
                                  member: member, signature: header.signature,
                                  arguments: try MessageCoding.arguments(of: message, limit: method.argumentLimit))
        return try method.handler(call)
    }

    private func expect(_ signature: String, for method: String, _ header: MessageHeader) throws(DBusError) {
        guard header.signature == signature else {
            throw .invalidArgs("\(method) expects arguments of signature '\(signature)', got '\(header.signature)'")
        }
    }

    /// Finds a property; an empty interface name searches all interfaces (as the specification allows).
    private func lookUp(_ interface: String, _ name: String, _ header: MessageHeader) throws(DBusError) -> (String, Property) {
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
            throw .failed("Property '\(property.name)' should have type '\(property.signature)' but its value has '\(value.signature)'")
        }
        return value
    }
}

struct Weak<T: AnyObject> {
    weak var value: T?
    init(_ value: T) { self.value = value }
}
