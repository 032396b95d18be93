import BGSyncCore
import BGSyncValue
import DBusKit
import Logging

/// The gate in front of every org.bgsync.Manager method: a sandboxed caller may only name its
/// own app id, use sandbox-safe handlers, and give options that stay inside its own data
/// (SandboxPolicy). Unsandboxed callers pass untouched.
final class CallerAccess {
    private let credentials: CallerCredentials
    private let handlers: () -> [String: HandlerInfo]
    private let home: String

    init(connection: DBusConnection, logger: Logger, handlers: @escaping () -> [String: HandlerInfo]) {
        credentials = CallerCredentials(connection: connection, logger: logger)
        self.handlers = handlers
        home = AgentPaths.home
    }

    /// Throws AccessDenied when `call` reaches beyond what its caller may. Arguments of the wrong
    /// type are left for the method to refuse as InvalidArgs.
    func check(_ call: DBusMethodCall) throws(SyncError) {
        guard case .string(let appID)? = call.arguments.first else { return }
        let sandbox = try credentials.sandbox(of: call.sender)
        guard sandbox.isSandboxed else { return }
        var handler: String?
        var options: [String: Value] = [:]
        let optionsIndex = ["Register": 3, "RegisterPeriodic": 4][call.member]
        if let optionsIndex {
            if call.arguments.count > 2, case .string(let name) = call.arguments[2] { handler = name }
            if optionsIndex < call.arguments.count, case .dictionary(_, _, let entries) = call.arguments[optionsIndex] {
                for entry in entries {
                    guard case .string(let name) = entry.key else { continue }
                    options[name] = entry.value
                }
            }
        }
        try SandboxPolicy.check(
            caller: sandbox, member: call.member, appID: appID, handler: handler, options: options,
            handlers: handlers(), home: home, resolve: CallerCredentials.resolve)
    }
}
