// SPDX-License-Identifier: Apache-2.0
import BGSyncStore
import BGSyncValue

/// How a repair of the registration database reads in the log and in the Repair property.
enum StoreRepairReport {
    /// App ids named in the log line at most; the property has them all.
    static let appsInLog = 10

    /// One warning: what was damaged, where the file is kept, what was saved and lost. App ids
    /// come from the damaged file, so they are cut to the length of a detail and escaped.
    static func logLine(_ repair: StoreRepair, path: String) -> String {
        let kept = repair.keptFiles.joined(separator: ", ")
        var line =
            "The registration database \(path) was damaged (\(repair.damage)); kept it as \(kept) and started "
            + "from what could be read: \(repair.saved) registrations saved, \(repair.lost) \(repair.lossFullyKnown ? "lost" : "known lost")"
        let apps = repair.lostByApp.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        if !apps.isEmpty {
            let named = apps.prefix(appsInLog).map { "\(AppContract.sanitized($0.key, limit: 255)) (\($0.value))" }
            line += " (" + named.joined(separator: ", ")
            line += apps.count > appsInLog ? " and \(apps.count - appsInLog) more apps)" : ")"
        }
        return line
            + (repair.lossFullyKnown ? "." : ". Rows on pages so damaged that nothing names them are lost uncounted.")
    }

    /// The Repair property (see dbus/org.bgsync.Manager.xml): only what names no app and no
    /// path, since a property has no caller check and any sandboxed app may read it.
    static func property(_ repair: StoreRepair?) -> [String: Value] {
        guard let repair else { return [:] }
        return [
            "time": .uint64(UInt64(max(0, repair.time.timeIntervalSince1970))),
            "saved": .uint32(UInt32(clamping: repair.saved)),
            "lost": .uint32(UInt32(clamping: repair.lost)),
        ]
    }

    /// GetRepair's answer: everything for an unconfined caller; for a sandboxed one (`onlyApp`,
    /// its own app id) the property's facts and its own app's losses, nothing that names another
    /// app (`damage` may name one, with a tag) or a path in the home.
    static func details(_ repair: StoreRepair?, onlyApp: String?) -> [String: Value] {
        guard let repair else { return [:] }
        var fields = property(repair)
        let lostApps = repair.lostByApp.filter { onlyApp == nil || $0.key == onlyApp }
            .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        fields["lost-apps"] = .dictionary(
            keySignature: "s", valueSignature: "u",
            lostApps.map { .init(key: .string($0.key), value: .uint32(UInt32(clamping: $0.value))) })
        guard onlyApp == nil else { return fields }
        fields["damage"] = .string(repair.damage)
        fields["kept-as"] = .string(repair.keptAs)
        fields["kept-files"] = .stringArray(repair.keptFiles)
        return fields
    }
}
