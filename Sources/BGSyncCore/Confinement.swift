// SPDX-License-Identifier: Apache-2.0
/// Who registered a registration: recorded at Register from the caller's credentials and kept
/// with the registration for its whole life, so that every event runs inside the boundary the
/// registering app had, whatever that app does afterwards.
public enum Confinement: Sendable, Equatable, Hashable, Codable {
    /// An ordinary desktop app: handlers may open any path the user can.
    case unconfined
    /// A Flatpak or Snap app, held to `appID` and to the paths beneath `root` (its own data
    /// directory, with links resolved once at Register).
    /// Boxed (indirect): most registrations are unconfined, and the table holds one value per
    /// registration, so the two strings would cost every one of them 26 bytes more.
    indirect case sandboxed(kind: SandboxKind, appID: String, root: String)

    /// The directory every app-named path must stay beneath, or nil when unconfined.
    public var root: String? {
        if case .sandboxed(_, _, let root) = self { return root }
        return nil
    }

    public var isSandboxed: Bool { self != .unconfined }
}

/// The kinds of sandbox bgsync can identify. Anything that looks like a sandbox but cannot be
/// identified is refused, never trusted as unconfined.
public enum SandboxKind: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
    case flatpak
    case snap
}
