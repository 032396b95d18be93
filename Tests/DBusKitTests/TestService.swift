// SPDX-License-Identifier: Apache-2.0
import DBusKit
import MainLoop
import TestKit

/// The object the tests export: org.example.Test at /org/example/Test, owned as org.example.Test.
enum TestService {
    static let name = "org.example.Test"
    static let path = "/org/example/Test"
    static let interface = "org.example.Test"

    static let xml = """
        <!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
         "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
        <node>
          <interface name="org.example.Test">
            <method name="Echo"><arg name="value" type="v" direction="in"/><arg type="v" direction="out"/></method>
            <method name="Concat"><arg name="a" type="s" direction="in"/><arg name="b" type="s" direction="in"/><arg type="s" direction="out"/></method>
            <method name="Length"><arg name="bytes" type="ay" direction="in"/><arg type="u" direction="out"/></method>
            <method name="Nothing"/>
            <method name="Fail"><arg name="message" type="s" direction="in"/></method>
            <method name="Emit"><arg name="text" type="s" direction="in"/></method>
            <method name="BadReply"/>
            <method name="Later"><arg name="text" type="s" direction="in"/><arg type="s" direction="out"/></method>
            <method name="Dropped"/>
            <property name="Count" type="u" access="read"/>
            <property name="Label" type="s" access="readwrite"/>
            <signal name="Said"><arg name="text" type="s"/><arg name="number" type="u"/></signal>
          </interface>
        </node>
        """

    /// Mutable state behind the properties; lives on the loop thread.
    final class State {
        var count: UInt32 = 7
        var label = "start"
        var lastSender = ""
    }

    /// Connects to `address`, takes the name and exports the object. Call on the loop thread.
    static func start(address: String, loop: MainLoop) throws -> (DBusConnection, DBusExportedObject, State) {
        let connection = try DBusConnection(bus: .address(address))
        let state = State()
        let object = DBusExportedObject(introspectionXML: xml)
        object.addMethod(interface: interface, name: "Echo", inSignature: "v") { call in
            state.lastSender = call.sender
            return call.arguments
        }
        object.addMethod(interface: interface, name: "Concat", inSignature: "ss") { call in
            [.string((call.arguments[0].stringValue ?? "") + (call.arguments[1].stringValue ?? ""))]
        }
        object.addMethod(interface: interface, name: "Length", inSignature: "ay") { call in
            [.uint32(UInt32(call.arguments[0].bytesValue?.count ?? 0))]
        }
        // Arguments of at most 4 KiB; says whether a byte array arrived compact (as bytes).
        object.addMethod(
            interface: interface, name: "Limited", inSignature: "sv",
            argumentLimit: DecodingLimit(
                bytes: 4096, error: DBusError(name: "org.example.Error.TooBig", message: "too big"))
        ) { call in
            if case .variant(.bytes) = call.arguments[1] { return [.string("bytes")] }
            return [.string(call.arguments[1].signature)]
        }
        object.addMethod(interface: interface, name: "Nothing", inSignature: "") { _ in [] }
        object.addMethod(interface: interface, name: "Fail", inSignature: "s") { call throws(DBusError) in
            throw DBusError(name: "org.example.Error.Custom", message: call.arguments[0].stringValue ?? "")
        }
        object.addMethod(interface: interface, name: "Emit", inSignature: "s") { [weak connection] call in
            connection?.emitSignal(
                path: path, interface: interface, name: "Said",
                arguments: [call.arguments[0], .uint32(42)])
            state.count += 1
            object.propertiesChanged(interface: interface, names: ["Count"])
            return []
        }
        object.addMethod(interface: interface, name: "BadReply", inSignature: "") { _ in
            [.array(elementSignature: "s", [.uint32(1)])]  // an `as` holding a number: cannot be sent
        }
        // Answered after the handler returned, from a block the loop runs later.
        object.addDeferredMethod(interface: interface, name: "Later", inSignature: "s") { call, reply in
            let text = call.arguments[0].stringValue ?? ""
            let answer = Unchecked(value: reply)
            loop.post { answer.value.send(.success([.string(text + " later")])) }
        }
        object.addDeferredMethod(interface: interface, name: "Dropped", inSignature: "") { _, _ in }
        object.addProperty(interface: interface, name: "Count", signature: "u") { .uint32(state.count) }
        object.addProperty(
            interface: interface, name: "Label", signature: "s", get: { .string(state.label) },
            set: { value in state.label = value.stringValue ?? "" })
        connection.export(object, at: path)
        connection.attach(to: loop)
        guard try connection.requestName(name) else { throw DBusError.failed("could not own \(name)") }
        return (connection, object, state)
    }
}
