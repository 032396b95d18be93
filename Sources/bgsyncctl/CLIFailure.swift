// SPDX-License-Identifier: Apache-2.0
import DBusKit

/// A failure that ends the command with one of the documented exit codes.
struct CLIFailure: Error {
    var exitCode: Int32
    var message: String

    init(exitCode: Int32, message: String) {
        self.exitCode = exitCode
        self.message = message
    }

    func report() {
        FileHandleOutput.standardError("bgsyncctl: \(message)\n")
    }

    static func usage(_ message: String) -> CLIFailure { CLIFailure(exitCode: ExitStatus.usage, message: message) }
    static func notFound(_ message: String) -> CLIFailure {
        CLIFailure(exitCode: ExitStatus.notFound, message: message)
    }

    /// Sorts a D-Bus error: the agent missing (3), a NotFound answer (4), any other answer (1).
    init(_ error: DBusError) {
        let shortName = error.name.split(separator: ".").last.map(String.init) ?? error.name
        switch shortName {
        case "ServiceUnknown", "NameHasNoOwner", "NoServer", "Disconnected", "NoReply", "Timeout", "TimedOut",
            "FileNotFound", "NoSocket":
            self.init(
                exitCode: ExitStatus.unreachable,
                message: "bgsyncd is not reachable (\(error.name): \(error.message))")
        case "NotFound":
            self.init(exitCode: ExitStatus.notFound, message: "\(error.name): \(error.message)")
        default:
            self.init(exitCode: ExitStatus.agentError, message: "\(error.name): \(error.message)")
        }
    }
}
