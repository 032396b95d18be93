// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit

/// The agent's bus surface: org.bgsync at /org/bgsync/Manager, interface org.bgsync.Manager.
struct AgentClient {
    static let busName = "org.bgsync"
    static let path = "/org/bgsync/Manager"
    static let interface = "org.bgsync.Manager"

    let connection: DBusConnection

    init(_ options: SharedOptions) throws(CLIFailure) {
        do throws(DBusError) {
            connection = try DBusConnection(bus: options.bus)
        } catch {
            let bus = options.address.map { "the bus at \($0)" } ?? "the session bus"
            throw CLIFailure(exitCode: ExitStatus.unreachable, message: "cannot connect to \(bus): \(error.message)")
        }
    }

    func call(_ method: String, _ arguments: [Value] = []) throws(CLIFailure) -> [Value] {
        do throws(DBusError) {
            return try connection.call(
                destination: Self.busName, path: Self.path, interface: Self.interface,
                method: method, arguments: arguments)
        } catch {
            throw CLIFailure(error)
        }
    }

    /// All org.bgsync.Manager properties.
    func properties() throws(CLIFailure) -> [String: Value] {
        let reply: [Value]
        do throws(DBusError) {
            reply = try connection.call(
                destination: Self.busName, path: Self.path,
                interface: "org.freedesktop.DBus.Properties", method: "GetAll",
                arguments: [.string(Self.interface)])
        } catch {
            throw CLIFailure(error)
        }
        guard let properties = reply.first?.stringKeyedDictionary else { throw Self.unexpected("GetAll", reply) }
        return properties
    }

    static func unexpected(_ method: String, _ reply: [Value]) -> CLIFailure {
        CLIFailure(
            exitCode: ExitStatus.agentError,
            message:
                "unexpected reply to \(method) from bgsyncd: (\(reply.map(\.gvariantText).joined(separator: ", ")))")
    }
}
