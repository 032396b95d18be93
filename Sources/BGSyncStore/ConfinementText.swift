// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// The stored form of a registration's confinement: `unconfined`, or `KIND:APP-ID:ROOT` such as
/// `flatpak:org.example.Chat:/home/me/.var/app/org.example.Chat` (app ids hold no ':'; the root
/// comes last and may).
enum ConfinementText {
    static func text(_ confinement: Confinement) -> String {
        switch confinement {
        case .unconfined: "unconfined"
        case .sandboxed(let kind, let appID, let root): "\(kind.rawValue):\(appID):\(root)"
        }
    }

    /// Nil for anything else, which the store reports as a bad column rather than trusting.
    static func confinement(from text: String) -> Confinement? {
        if text == "unconfined" { return .unconfined }
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let kind = SandboxKind(rawValue: String(parts[0])), !parts[1].isEmpty,
            parts[2].hasPrefix("/")
        else { return nil }
        return .sandboxed(kind: kind, appID: String(parts[1]), root: String(parts[2]))
    }
}
