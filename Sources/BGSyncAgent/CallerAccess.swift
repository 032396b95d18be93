// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import DBusKit
import Logging

/// The gate every org.bgsync.Manager method passes after decoding its arguments: a sandboxed
/// caller may only name its own app id, use sandbox-safe handlers, and give path and URL
/// options (as each handler declares them) that stay inside its own data (SandboxPolicy).
/// Unsandboxed callers pass untouched.
final class CallerAccess {
    private let credentials: CallerCredentials
    private let handlers: () -> [String: HandlerInfo]
    private let home: String

    init(connection: DBusConnection, logger: Logger, handlers: @escaping () -> [String: HandlerInfo]) {
        credentials = CallerCredentials(connection: connection, logger: logger)
        self.handlers = handlers
        home = AgentPaths.home
    }

    /// Who `sender` is; AccessDenied when that cannot be told.
    func caller(_ sender: String) throws(SyncError) -> CallerSandbox {
        try credentials.sandbox(of: sender)
    }

    /// Drops what is known of a connection that left the bus.
    func forget(_ sender: String) {
        credentials.forget(sender)
    }

    /// A call naming `appID`.
    func check(_ sender: String, appID: String) throws(SyncError) {
        try SandboxPolicy.check(caller: caller(sender), appID: appID)
    }

    /// A decoded Register or RegisterPeriodic; returns it with the caller's confinement set.
    func check(_ sender: String, request: RegistrationRequest) throws(SyncError) -> RegistrationRequest {
        var checked = request
        checked.confinement = try SandboxPolicy.check(
            caller: caller(sender), request: request, handlers: handlers(), home: home,
            resolve: CallerCredentials.resolve)
        return checked
    }
}
