// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// Who receives which sync signals. SyncStarted and SyncFinished are never broadcast: each is
/// sent to every connection that asked about its app id (a call naming it, or Subscribe) and
/// to unsandboxed connections that subscribed to every app (`Subscribe("")`). A sandboxed
/// caller can only ever name its own app id, so it hears of no other app's syncs, whatever its
/// match rules (a broadcast would pass xdg-dbus-proxy's `--talk=org.bgsync` to every app).
/// Bounded: a connection that leaves the bus is forgotten, and the tables have caps.
struct SignalSubscribers {
    static let maxConnections = 4096
    static let maxAppsPerConnection = 256

    /// App ids as bytes (`ExactText`), as the registrations they are about are keyed.
    private var appsByConnection: [String: Set<ExactText>] = [:]
    private var connectionsByApp: [ExactText: Set<String>] = [:]
    private var everything: Set<String> = []

    /// Returns false when a cap was reached (the caller may say so in the log).
    @discardableResult
    mutating func add(_ connection: String, appID: String) -> Bool {
        let appID = ExactText(appID)
        if appsByConnection[connection]?.contains(appID) == true { return true }
        guard appsByConnection[connection] != nil || appsByConnection.count < Self.maxConnections,
            appsByConnection[connection, default: []].count < Self.maxAppsPerConnection
        else { return false }
        appsByConnection[connection, default: []].insert(appID)
        connectionsByApp[appID, default: []].insert(connection)
        return true
    }

    @discardableResult
    mutating func addEverything(_ connection: String) -> Bool {
        guard everything.contains(connection) || everything.count < Self.maxConnections else { return false }
        everything.insert(connection)
        return true
    }

    mutating func remove(_ connection: String) {
        everything.remove(connection)
        for appID in appsByConnection.removeValue(forKey: connection) ?? [] {
            connectionsByApp[appID]?.remove(connection)
            if connectionsByApp[appID]?.isEmpty == true { connectionsByApp[appID] = nil }
        }
    }

    /// The connections to send a signal about `appID` to, each once, in a stable order.
    func recipients(of appID: String) -> [String] {
        everything.union(connectionsByApp[ExactText(appID)] ?? []).sorted()
    }
}
