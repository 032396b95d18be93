// SPDX-License-Identifier: Apache-2.0

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
        if let description { members.append(("description", Self.json(description))) }
        if let error { members.append(("error", Self.json(error))) }
        if let name { members.append(("name", Self.json(name))) }
        if let pathOptions { members.append(("path_options", Self.json(pathOptions))) }
        if let sandboxSafe { members.append(("sandbox_safe", sandboxSafe ? "true" : "false")) }
        if let urlOptions { members.append(("url_options", Self.json(urlOptions))) }
        let body = members.map { Self.json($0.0) + ":" + $0.1 }.joined(separator: ",")
        return Array(("{" + body + "}").utf8)
    }

    static func json(_ strings: [String]) -> String {
        "[" + strings.map(json).joined(separator: ",") + "]"
    }

    /// A JSON string (RFC 8259): quotes, backslashes and control characters escaped.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
