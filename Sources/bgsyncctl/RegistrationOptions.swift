// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

/// The `a{sv}` options of a registration, from `-o key=value` and the reserved-key flags.
struct RegistrationOptions: ParsableArguments {
    /// An option for the handler. The value is read as `gsettings set` reads one: GVariant text
    /// when it parses (`-o "command=['sh','-c','echo hi']"`, `-o 'retries=uint32 5'`), a plain
    /// string otherwise (`-o url=https://example.org`).
    @Option(
        name: [.customShort("o"), .customLong("option")],
        help: ArgumentHelp(
            "A handler option, key=value; the value is GVariant text when it parses, else a string. Repeatable.",
            valueName: "key=value"))
    var options: [String] = []

    @Option(help: ArgumentHelp("Network to wait for: any or unmetered (reserved option 'network').", valueName: "kind"))
    var network: String?

    @Option(help: ArgumentHelp("Attempts before giving up (reserved option 'max-attempts').", valueName: "n"))
    var maxAttempts: UInt32?

    @Option(
        help: ArgumentHelp(
            "Power to wait for: any, ac or battery-not-low (reserved option 'power').", valueName: "kind"))
    var power: String?

    @Option(
        help: ArgumentHelp(
            "Give up, as 'expired', if not done within this many seconds (reserved option 'expires-after').",
            valueName: "seconds"))
    var expiresAfter: UInt64?

    @Option(
        help: ArgumentHelp(
            "Do not fire for this many seconds (reserved option 'not-before').", valueName: "seconds"))
    var notBefore: UInt64?

    func dictionary() throws(CLIFailure) -> Value {
        var entries: [(String, Value)] = []
        func set(_ key: String, _ value: Value) {
            entries.removeAll { $0.0 == key }
            entries.append((key, value))
        }
        for text in options {
            let (key, value) = try Self.parse(text)
            set(key, value)
        }
        if let network { set("network", .string(network)) }
        if let maxAttempts { set("max-attempts", .uint32(maxAttempts)) }
        if let power { set("power", .string(power)) }
        if let expiresAfter { set("expires-after", .uint64(expiresAfter)) }
        if let notBefore { set("not-before", .uint64(notBefore)) }
        if let current = entries.first(where: { $0.0 == "network" })?.1 {
            guard let kind = current.stringValue, ["any", "unmetered"].contains(kind) else {
                throw .usage("network must be 'any' or 'unmetered', not \(current.gvariantText)")
            }
        }
        return .stringVariantDictionary(entries)
    }

    /// One `key=value`. Values for reserved keys get the type the agent expects.
    static func parse(_ text: String) throws(CLIFailure) -> (String, Value) {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw .usage("option '\(text)' should be key=value")
        }
        let key = String(text[..<equals])
        let raw = String(text[text.index(after: equals)...])
        var value = (try? Value.parse(gvariantText: raw)) ?? .string(raw)
        if key == "max-attempts" {
            guard let count = value.int64Value, let fitting = UInt32(exactly: count) else {
                throw .usage("max-attempts must be a whole number, not '\(raw)'")
            }
            value = .uint32(fitting)
        }
        return (key, value)
    }
}
