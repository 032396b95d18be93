// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue

/// What the agent knows of a caller's confinement, found from its process (see CallerCredentials).
/// Apps of one user share the session bus, so the app id a caller passes is trusted only as far
/// as it can be checked: a sandboxed caller is held to its own app id; an unsandboxed one can
/// already do anything the user can, and is trusted.
enum CallerSandbox: Equatable, Sendable {
    case unsandboxed
    /// A Flatpak app; `appID` is nil for a sandbox without an `[Application] name=` (a runtime),
    /// which is then refused everything.
    case flatpak(appID: String?)
    /// A Snap, known by its instance name (`chat`, or `chat_x` for a parallel install).
    case snap(instance: String)

    /// The only app id this caller may use, nil when it may use any (unsandboxed) or none.
    var ownAppID: String? {
        switch self {
        case .unsandboxed: nil
        case .flatpak(let appID): appID
        case .snap(let instance): "snap." + instance
        }
    }

    var isSandboxed: Bool { self != .unsandboxed }

    var kindName: String {
        switch self {
        case .unsandboxed: "unsandboxed"
        case .flatpak: "Flatpak"
        case .snap: "Snap"
        }
    }

    /// The part of the user's home the app's sandbox is given to write: its own data directory
    /// (`$SNAP_USER_DATA`'s parent for a snap instance is `~/snap/INSTANCE`).
    func dataDirectory(home: String) -> String? {
        switch self {
        case .unsandboxed: nil
        case .flatpak(let appID): appID.map { home + "/.var/app/" + $0 }
        case .snap(let instance): home + "/snap/" + instance
        }
    }
}

/// The rules for sandboxed callers, checked on each method's decoded request. Which options are
/// paths and which are URLs is what each handler's plugin declares (`HandlerInfo`), so the rules
/// cover third-party handlers too. Pure: the identification is in CallerCredentials.
enum SandboxPolicy {
    /// A call naming `appID` (every method but Register and RegisterPeriodic, which bring a
    /// whole request).
    static func check(caller: CallerSandbox, appID: String) throws(SyncError) {
        guard caller.isSandboxed else { return }
        let own = try ownAppID(of: caller)
        guard ExactText.sameBytes(appID, own) else {
            throw SyncError(
                .accessDenied,
                "A \(caller.kindName) app may only use its own app id: this caller is \(own), not \(appID).")
        }
    }

    /// A Register or RegisterPeriodic: the app id, the handler, and every option the handler
    /// declares as a path (inside the app's data directory, also once links are followed) or a
    /// URL (http or https). Returns the confinement to record with the registration.
    static func check(
        caller: CallerSandbox, request: RegistrationRequest, handlers: [String: HandlerInfo], home: String,
        resolve: (String) -> String? = { _ in nil }
    ) throws(SyncError) -> Confinement {
        guard caller.isSandboxed else { return .unconfined }
        try check(caller: caller, appID: request.key.appID)
        let own = try ownAppID(of: caller)
        let dataDirectory = caller.dataDirectory(home: home) ?? "/nonexistent"
        let root = resolve(dataDirectory) ?? dataDirectory
        // The directory itself must not be a link (its parents may be: /home may be one).
        if let resolved = resolve(dataDirectory), let slash = dataDirectory.lastIndex(of: "/"),
            let parent = resolve(String(dataDirectory[..<slash])),
            !ExactText.sameBytes(resolved, parent + dataDirectory[slash...])
        {
            throw SyncError(
                .accessDenied,
                "\(dataDirectory), the data directory of \(own), is a symbolic link (to \(resolved)); "
                    + "bgsync keeps a sandboxed app to the directory itself.")
        }
        let confinement = Confinement.sandboxed(kind: caller.kind, appID: own, root: root)
        // An unknown handler is the scheduler's to refuse (UnknownHandler), with its list.
        guard let info = handlers[request.handler] else { return confinement }
        guard info.sandboxSafe else {
            throw SyncError(
                .accessDenied,
                "The handler '\(request.handler)' is not available to sandboxed apps (\(own) is a \(caller.kindName) "
                    + "app); use one marked sandbox-safe, such as 'upload'.")
        }
        for name in info.pathOptions {
            guard let wrapped = request.options[name] else { continue }
            // Lexically inside, and (where the path exists) still inside once symbolic links are
            // followed. Links swapped in later are the host's open functions' to refuse.
            guard case .string(let path) = unwrapped(wrapped), isInside(path, directory: dataDirectory),
                resolve(path).map({ isInside($0, directory: root) }) ?? true
            else {
                throw SyncError(
                    .accessDenied,
                    "Option '\(name)' must be a path inside \(dataDirectory)/, the data directory of \(own); "
                        + "sandboxed apps may not name other files.")
            }
        }
        for name in info.urlOptions {
            guard let wrapped = request.options[name] else { continue }
            // One URL (s), or a list of them (as: `fetch`'s `urls`), every one http(s).
            let urls: [String]?
            switch unwrapped(wrapped) {
            case .string(let url): urls = [url]
            case .array("s", let items): urls = items.compactMap { $0.stringValue }
            default: urls = nil
            }
            guard let urls, urls.allSatisfy(isWebURL) else {
                throw SyncError(
                    .accessDenied,
                    "Option '\(name)' must be an http:// or https:// URL (or an array of them) for a sandboxed app "
                        + "(\(own)).")
            }
        }
        return confinement
    }

    static func ownAppID(of caller: CallerSandbox) throws(SyncError) -> String {
        guard let own = caller.ownAppID else {
            throw SyncError(
                .accessDenied,
                "This \(caller.kindName) sandbox has no app id (no [Application] name in its .flatpak-info), "
                    + "so it may not use bgsync.")
        }
        return own
    }

    private static func unwrapped(_ value: Value) -> Value {
        var value = value
        while case .variant(let inner) = value { value = inner }
        return value
    }

    /// Whether `path`, taken lexically, is `directory` or below it: absolute, and without `.` or
    /// `..` parts that could climb out.
    static func isInside(_ path: String, directory: String) -> Bool {
        guard path.hasPrefix("/"), !path.utf8.contains(0) else { return false }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.contains(where: { $0 == "." || $0 == ".." }) else { return false }
        let normalised = "/" + parts.joined(separator: "/")
        let base = "/" + directory.split(separator: "/").joined(separator: "/")
        // As bytes, as the kernel reads paths: by Unicode equivalence "/home/u/.var/app/org.kde.\u{212A}ate"
        // (a Kelvin sign) would be inside org.kde.Kate's directory.
        return ExactText.sameBytes(normalised, base) || ExactText.hasPrefix(normalised, base + "/")
    }

    static func isWebURL(_ url: String) -> Bool {
        let lower = url.lowercased()
        return (lower.hasPrefix("https://") || lower.hasPrefix("http://")) && url.utf8.count > 8
            && !url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f })
    }
}

extension CallerSandbox {
    /// The kind recorded in a registration's confinement (only asked of sandboxed callers).
    var kind: SandboxKind {
        if case .snap = self { return .snap }
        return .flatpak
    }
}
