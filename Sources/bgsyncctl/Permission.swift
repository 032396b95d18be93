// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

/// The desktop's permission store (xdg-permission-store), where the user's choice lives: the
/// agent reads it, GNOME Settings writes table `background`, `bgsyncctl allow`/`deny` and
/// `flatpak permission-set bgsync bgsync APP no` write table `bgsync`. Written here directly, so
/// all of them agree, and the choice holds even while the agent is not running.
struct PermissionStoreClient {
    static let busName = "org.freedesktop.impl.portal.PermissionStore"
    static let path = "/org/freedesktop/impl/portal/PermissionStore"
    static let interface = busName

    let connection: DBusConnection

    init(_ options: SharedOptions) throws(CLIFailure) {
        do throws(DBusError) {
            connection = try DBusConnection(bus: options.bus)
        } catch {
            let bus = options.address.map { "the bus at \($0)" } ?? "the session bus"
            throw CLIFailure(exitCode: ExitStatus.unreachable, message: "cannot connect to \(bus): \(error.message)")
        }
    }

    /// SetPermission(table, create, id, app, permissions).
    func set(table: String, id: String, app: String, _ permissions: [String]) throws(CLIFailure) {
        do throws(DBusError) {
            _ = try connection.call(
                destination: Self.busName, path: Self.path, interface: Self.interface, method: "SetPermission",
                arguments: [.string(table), .bool(true), .string(id), .string(app), .stringArray(permissions)])
        } catch {
            throw Self.failure(error)
        }
    }

    /// The app's permissions in (table, id); nil when there is no entry for it.
    func lookup(table: String, id: String, app: String) throws(CLIFailure) -> [String]? {
        do throws(DBusError) {
            let reply = try connection.call(
                destination: Self.busName, path: Self.path, interface: Self.interface, method: "Lookup",
                arguments: [.string(table), .string(id)])
            return reply.first?.stringKeyedDictionary?[app]?.stringsValue
        } catch  where error.name == "org.freedesktop.portal.Error.NotFound" {
            return nil
        } catch {
            throw Self.failure(error)
        }
    }

    static func failure(_ error: DBusError) -> CLIFailure {
        switch error.name {
        case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Disconnected":
            CLIFailure(
                exitCode: ExitStatus.unreachable,
                message:
                    "the desktop's permission store (\(busName), xdg-permission-store from xdg-desktop-portal) is "
                    + "not reachable: \(error.message)")
        default:
            CLIFailure(exitCode: ExitStatus.agentError, message: "\(error.name): \(error.message)")
        }
    }
}

/// `allow` and `deny`: the same command with another answer.
protocol PermissionCommand: ParsableCommand {
    var shared: SharedOptions { get }
    var appID: String { get }
    static var allowed: Bool { get }
}

extension PermissionCommand {
    func run() throws {
        guard !appID.isEmpty, !appID.contains(where: \.isNewline) else {
            throw CLIFailure.usage("the application id must not be empty")
        }
        let store = try PermissionStoreClient(shared)
        try store.set(table: "bgsync", id: "bgsync", app: appID, [Self.allowed ? "yes" : "no"])
        // GNOME Settings' own switch still counts: say so rather than pretend it is on.
        let desktop = Self.allowed ? try store.lookup(table: "background", id: "background", app: appID) : nil
        let stillOff = desktop == ["no"]
        if shared.json {
            print(
                JSONText.object([
                    ("app_id", JSONText.string(appID)), ("allowed", Self.allowed && !stillOff ? "true" : "false"),
                ]))
        } else if Self.allowed {
            print("\(appID) may sync in the background.")
        } else {
            print("\(appID) is switched off: it does not sync in the background until `bgsyncctl allow \(appID)`.")
        }
        if stillOff {
            FileHandleOutput.standardError(
                "bgsyncctl: \(appID) is still switched off by the desktop's \"Run in background\" setting "
                    + "(permission store table 'background'); switch it on there too.\n")
        }
    }
}

struct Allow: PermissionCommand {
    static let configuration = CommandConfiguration(
        abstract: "Let an app sync in the background again (permission store table 'bgsync').")
    static let allowed = true

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id.") var appID: String
}

struct Deny: PermissionCommand {
    static let configuration = CommandConfiguration(
        abstract: "Switch an app off: its syncs are held and it may not register new ones (permission store "
            + "table 'bgsync').")
    static let allowed = false

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id.") var appID: String
}
