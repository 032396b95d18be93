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
    /// A Snap, known by its snap name.
    case snap(name: String)

    /// The only app id this caller may use, nil when it may use any (unsandboxed) or none.
    var ownAppID: String? {
        switch self {
        case .unsandboxed: nil
        case .flatpak(let appID): appID
        case .snap(let name): "snap." + name
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

    /// The part of the user's home the app's sandbox is given to write: its own data directory.
    func dataDirectory(home: String) -> String? {
        switch self {
        case .unsandboxed: nil
        case .flatpak(let appID): appID.map { home + "/.var/app/" + $0 }
        case .snap(let name): home + "/snap/" + name
        }
    }
}

/// The rules for sandboxed callers, and the parsers for what identifies a sandbox. Pure: the
/// reading of /proc and the bus is in CallerCredentials.
enum SandboxPolicy {
    /// Handler options naming a file or directory the handler will read, write or delete.
    static let pathOptions: Set<String> = ["outbox", "file"]
    /// Handler options naming where the handler sends data.
    static let urlOptions: Set<String> = ["url"]

    /// Checks one call of `member` by `caller`. `appID` is the call's first argument; `handler`
    /// and `options` are given for Register and RegisterPeriodic.
    static func check(
        caller: CallerSandbox, member: String, appID: String, handler: String?, options: [String: Value],
        handlers: [String: HandlerInfo], home: String, resolve: (String) -> String? = { _ in nil }
    ) throws(SyncError) {
        guard caller.isSandboxed else { return }
        guard let own = caller.ownAppID else {
            throw SyncError(
                .accessDenied,
                "This \(caller.kindName) sandbox has no app id (no [Application] name in its .flatpak-info), so it may not use bgsync.")
        }
        guard appID == own else {
            throw SyncError(
                .accessDenied,
                "A \(caller.kindName) app may only use its own app id: this caller is \(own), not \(appID).")
        }
        if let handler {
            if let info = handlers[handler], !info.sandboxSafe {
                throw SyncError(
                    .accessDenied,
                    "The handler '\(handler)' is not available to sandboxed apps (\(own) is a \(caller.kindName) app); use one marked sandbox-safe, such as 'upload'.")
            }
        }
        let dataDirectory = caller.dataDirectory(home: home) ?? "/nonexistent"
        for (name, wrapped) in options {
            var value = wrapped
            while case .variant(let inner) = value { value = inner }
            if pathOptions.contains(name) {
                // Lexically inside, and (where the path exists) still inside once symbolic links
                // are followed, so a link cannot point the handler elsewhere.
                guard case .string(let path) = value, isInside(path, directory: dataDirectory),
                    resolve(path).map({ isInside($0, directory: resolve(dataDirectory) ?? dataDirectory) }) ?? true
                else {
                    throw SyncError(
                        .accessDenied,
                        "Option '\(name)' must be a path inside \(dataDirectory)/, the data directory of \(own); sandboxed apps may not name other files.")
                }
            }
            if urlOptions.contains(name) {
                guard case .string(let url) = value, isWebURL(url) else {
                    throw SyncError(
                        .accessDenied, "Option '\(name)' must be an http:// or https:// URL for a sandboxed app (\(own)).")
                }
            }
        }
    }

    /// Whether `path`, taken lexically, is `directory` or below it: absolute, and without `.` or
    /// `..` parts that could climb out. (Symbolic links are the app's own to make inside its own
    /// directory; CallerCredentials also resolves paths that exist.)
    static func isInside(_ path: String, directory: String) -> Bool {
        guard path.hasPrefix("/"), !path.utf8.contains(0) else { return false }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.contains(where: { $0 == "." || $0 == ".." }) else { return false }
        let normalised = "/" + parts.joined(separator: "/")
        let base = "/" + directory.split(separator: "/").joined(separator: "/")
        return normalised == base || normalised.hasPrefix(base + "/")
    }

    static func isWebURL(_ url: String) -> Bool {
        let lower = url.lowercased()
        return (lower.hasPrefix("https://") || lower.hasPrefix("http://")) && url.utf8.count > 8
            && !url.utf8.contains(where: { $0 <= 0x20 })
    }

    // MARK: - Parsers

    /// The app id in a `.flatpak-info` key file: `name=` in the `[Application]` group. Returns
    /// nil when there is no such key (a runtime's sandbox has `[Runtime]` instead).
    static func flatpakAppID(fromInfo text: String) -> String? {
        var group = ""
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                group = String(line.dropFirst().dropLast())
                continue
            }
            guard group == "Application", let equals = line.firstIndex(of: "=") else { continue }
            guard line[..<equals].trimmingWhitespace() == "name" else { continue }
            let value = line[line.index(after: equals)...].trimmingWhitespace()
            return value.isEmpty ? nil : String(value)
        }
        return nil
    }

    /// The snap name in `/proc/PID/cgroup`: a path element `snap.NAME.APP-….scope` (or
    /// `snap.NAME.hook.…`), as systemd names the scope snapd puts each snap's processes in.
    static func snapName(fromCgroup text: String) -> String? {
        for line in text.split(separator: "\n") {
            // hierarchy-ID:controllers:path; the path may itself contain ':'.
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            for element in fields[2].split(separator: "/") where element.hasPrefix("snap.") {
                let parts = element.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.count >= 3, element.hasSuffix(".scope") || element.hasSuffix(".service") else { continue }
                if isSnapName(parts[1]) { return String(parts[1]) }
            }
        }
        return nil
    }

    /// The snap name in an AppArmor label such as `snap.chat.chat (enforce)`; nil for
    /// `unconfined` and other profiles. The label may end with NUL, as the bus sends it.
    static func snapName(fromAppArmorLabel label: String) -> String? {
        var text = Substring(label)
        while text.last == "\0" || text.last == "\n" { text = text.dropLast() }
        if let space = text.firstIndex(of: " ") { text = text[..<space] }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "snap", isSnapName(parts[1]) else { return nil }
        return String(parts[1])
    }

    /// Snap names: lowercase letters, digits and '-', at most 40 characters.
    private static func isSnapName(_ name: Substring) -> Bool {
        !name.isEmpty && name.utf8.count <= 40
            && name.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" || first == "\r" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" || last == "\r" { text = text.dropLast() }
        return text
    }
}
