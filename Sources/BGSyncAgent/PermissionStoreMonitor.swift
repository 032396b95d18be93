// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import DBusKit
import Logging

/// The desktop's permission store (xdg-permission-store, `org.freedesktop.impl.portal.PermissionStore`
/// on the session bus), read over the agent's own connection. Two entries count: table
/// `background`, id `background` (GNOME Settings' "Run in background" switch) and table `bgsync`,
/// id `bgsync` (`bgsyncctl deny`, `flatpak permission-set bgsync bgsync APP no`). An app whose
/// permissions in either are `["no"]` is switched off; any other entry, none, or no store at all
/// leaves it allowed (the Background Sync spec asks for no permission by default).
///
/// Followed live: the store's `Changed` signal (only from the name's owner: DBusKit follows the
/// well-known sender), and its owner changing (a restart, or a first activation) re-reads both
/// tables. No polling.
final class PermissionStoreMonitor: AppPermissions {
    static let busName = "org.freedesktop.impl.portal.PermissionStore"
    static let objectPath = "/org/freedesktop/impl/portal/PermissionStore"
    static let interface = busName
    /// (table, id) of each entry read.
    static let entries: [(table: String, id: String)] = [("background", "background"), ("bgsync", "bgsync")]
    /// How long the first read may take, activation included, before the agent starts with
    /// every app allowed (and re-reads when the store appears).
    static let startTimeout = 5.0
    static let callTimeout = 25.0

    private(set) var denied: Set<String> = []
    var onChange: ((Set<String>) -> Void)?

    private let connection: DBusConnection
    private let logger: Logger
    /// What each table says, by app (only the apps whose entry is `["no"]` matter).
    private var deniedByTable: [String: Set<String>] = [:]
    private var ownerWatch: NameOwnerWatch?
    private var saidAbsent = false

    init(connection: DBusConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    deinit { ownerWatch?.cancel() }

    /// Subscribes first, then reads (blocking, before the loop runs: no sync may start that the
    /// user switched off), so no change falls between the two.
    func start() {
        do {
            try connection.addMatch(
                "type='signal',sender='\(Self.busName)',path='\(Self.objectPath)',interface='\(Self.interface)',"
                    + "member='Changed'"
            ) { [weak self] signal in self?.changed(signal) }
            ownerWatch = try connection.watchNameOwner(Self.busName) { [weak self] _, _ in self?.reread() }
        } catch {
            logger.warning("cannot follow the permission store (\(error.message)); changes apply after a restart")
        }
        for entry in Self.entries {
            do {
                let reply = try connection.call(
                    destination: Self.busName, path: Self.objectPath, interface: Self.interface, method: "Lookup",
                    arguments: [.string(entry.table), .string(entry.id)], timeout: Self.startTimeout)
                deniedByTable[entry.table] = Self.deniedApps(reply.first)
            } catch  where Self.isTimeout(error) {
                // A store that does not answer in time is not waited for twice: the agent starts
                // with every app allowed, and the answers apply when they come.
                logger.warning(
                    "the permission store did not answer within \(Self.startTimeout) s; every app may sync until it does"
                )
                reread()
                break
            } catch {
                apply(error, table: entry.table)
            }
        }
        update(notify: false)
    }

    /// The store's owner changed (restarted, or first started): both tables again. Asking
    /// activates the store when it went away, so its later changes are heard.
    private func reread() {
        for entry in Self.entries {
            do {
                try connection.callAsync(
                    destination: Self.busName, path: Self.objectPath, interface: Self.interface, method: "Lookup",
                    arguments: [.string(entry.table), .string(entry.id)], timeout: Self.callTimeout,
                    replySignature: "a{sas}v"
                ) { [weak self] reply in
                    guard let self else { return }
                    switch reply.result {
                    case .success(let values): deniedByTable[entry.table] = Self.deniedApps(values.first)
                    case .failure(let error): apply(error, table: entry.table)
                    }
                    update(notify: true)
                }
            } catch {
                apply(error, table: entry.table)
            }
        }
    }

    /// Changed(s table, s id, b deleted, v data, a{sas} permissions).
    private func changed(_ signal: DBusSignal) {
        let arguments = signal.arguments
        guard arguments.count == 5, let table = arguments[0].stringValue, let id = arguments[1].stringValue,
            Self.entries.contains(where: { $0.table == table && $0.id == id })
        else { return }
        let deleted = arguments[2].boolValue ?? false
        deniedByTable[table] = deleted ? [] : Self.deniedApps(arguments[4])
        update(notify: true)
    }

    /// A failed Lookup: no entry, or no store, means nobody is switched off by that table; any
    /// other failure keeps what was known.
    private func apply(_ error: DBusError, table: String) {
        switch error.name {
        case "org.freedesktop.portal.Error.NotFound":
            deniedByTable[table] = []
        case _ where Self.isAbsent(error):
            if !saidAbsent {
                logger.info("no permission store on the session bus (\(error.message)); every app may sync")
            }
            saidAbsent = true
            deniedByTable[table] = []
        default:
            logger.warning(
                "cannot read table '\(table)' of the permission store: \(error.message); keeping what was known")
        }
    }

    /// No store on this bus: not activatable, or its activation failed (Spawn.*).
    static func isAbsent(_ error: DBusError) -> Bool {
        ["org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"].contains(error.name)
            || error.name.hasPrefix("org.freedesktop.DBus.Error.Spawn.")
    }

    static func isTimeout(_ error: DBusError) -> Bool {
        [
            "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout",
            "org.freedesktop.DBus.Error.TimedOut",
        ]
        .contains(error.name)
    }

    private func update(notify: Bool) {
        let now = deniedByTable.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        guard now != denied else { return }
        let off = now.subtracting(denied).sorted()
        let on = denied.subtracting(now).sorted()
        denied = now
        if !off.isEmpty { logger.info("switched off by the user: \(off.joined(separator: ", "))") }
        if !on.isEmpty { logger.info("switched on again by the user: \(on.joined(separator: ", "))") }
        if notify { onChange?(now) }
    }

    /// The apps whose permissions are exactly `["no"]` in an `a{sas}`; anything malformed counts
    /// for nothing.
    static func deniedApps(_ permissions: Value?) -> Set<String> {
        guard case .dictionary(_, _, let entries)? = permissions?.unwrappingVariants else { return [] }
        var denied: Set<String> = []
        for entry in entries {
            guard let app = entry.key.stringValue, entry.value.stringsValue == ["no"] else { continue }
            denied.insert(app)
        }
        return denied
    }
}
