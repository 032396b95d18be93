// SPDX-License-Identifier: Apache-2.0
// The designed stored and wire forms of values: GVariant text, never Swift's synthesised
// Codable of an enum (unreadable in sqlite3 and tied to Swift's case names).

/// A value encodes as one string: its GVariant text with GLib's type annotations, which reads
/// back with the same type (`"'/home/u/outbox'"`, `"uint32 5"`, `"@as []"`).
extension Value: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do throws(ValueError) {
            self = try Value.parse(gvariantText: text)
        } catch {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not GVariant text: \(error.message)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(gvariantText)
    }
}

extension Value {
    /// Named options as one `a{sv}` in GVariant text, keys in byte order:
    /// `{'outbox': <'/home/u/outbox'>, 'retries': <uint32 3>}`, or `@a{sv} {}` for none.
    /// What `gdbus` and `bgsyncctl` print, and what the store keeps.
    public static func optionsText(_ options: [String: Value]) -> String {
        vardict(options).gvariantText
    }

    /// Reads `optionsText` back: the text must be an `a{sv}`. A value the caller sent inside a
    /// variant of its own comes back as sent (the outer variant of the a{sv} is removed).
    public static func parseOptionsText(_ text: String) throws(ValueError) -> [String: Value] {
        if text == "@a{sv} {}" || text == "{}" { return [:] }  // most registrations: skip the parser
        guard case .dictionary(_, _, let entries) = try parse(gvariantText: text, as: "a{sv}") else {
            throw ValueError(.type, "options are not an a{sv}")
        }
        var options: [String: Value] = [:]
        for entry in entries {
            guard case .string(let name) = entry.key, case .variant(let value) = entry.value else { continue }
            options[name] = value
        }
        return options
    }
}
