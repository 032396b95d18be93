// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

/// What `bgsync-worker --probe` prints: the handler's self-description, or why it is refused,
/// as one JSON line (a person runs `--probe` to check a plugin; the agent decodes the line with
/// `Decodable`). The worker writes it with `jsonLine`, not Foundation's encoder.
public struct ProbeReport: Codable, Sendable, Equatable {
    public var name: String?
    public var description: String?
    public var sandboxSafe: Bool?
    /// The options the plugin declares as paths and as URLs (absent from an older worker's report).
    public var pathOptions: [String]?
    public var urlOptions: [String]?
    /// Set when the plugin is refused; the other fields are then absent.
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case name, description, error
        case sandboxSafe = "sandbox_safe"
        case pathOptions = "path_options"
        case urlOptions = "url_options"
    }

    public init(name: String, description: String, sandboxSafe: Bool, pathOptions: [String], urlOptions: [String]) {
        self.name = name
        self.description = description
        self.sandboxSafe = sandboxSafe
        self.pathOptions = pathOptions
        self.urlOptions = urlOptions
    }

    public init(error: String) { self.error = error }

    /// The report as one line of JSON (no newline), keys in byte order, absent fields left out.
    public var jsonLine: [UInt8] {
        var members: [(String, String)] = []
        if let description { members.append(("description", JSONText.string(description))) }
        if let error { members.append(("error", JSONText.string(error))) }
        if let name { members.append(("name", JSONText.string(name))) }
        if let pathOptions { members.append(("path_options", Self.json(pathOptions))) }
        if let sandboxSafe { members.append(("sandbox_safe", sandboxSafe ? "true" : "false")) }
        if let urlOptions { members.append(("url_options", Self.json(urlOptions))) }
        return Array(JSONText.object(members).utf8)
    }

    private static func json(_ strings: [String]) -> String {
        "[" + strings.map(JSONText.string).joined(separator: ",") + "]"
    }
}
