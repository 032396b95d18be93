// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one registration: state, attempts, next attempt, last error, options.",
        discussion: "Exits 4 when there is no such registration.")

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id.") var appID: String
    @Argument(help: "Tag.") var tag: String
    @Flag(help: "The tag is a periodic registration (the agent looks there anyway when no one-off has the tag).")
    var periodic = false

    /// Keys in the order people read them, with their labels.
    static let fields: [(key: String, label: String)] = [
        ("kind", "kind"), ("state", "state"), ("handler", "handler"), ("attempts", "attempts"),
        ("max-attempts", "max attempts"), ("next-attempt", "next attempt"), ("min-interval", "min interval"),
        ("network", "network"), ("power", "power"), ("not-before", "not before"), ("expires-at", "expires"),
        ("progress", "progress"), ("transfer", "transfer"), ("last-error", "last error"), ("allowed", "allowed"),
    ]

    func run() throws {
        let reply = try AgentClient(shared).call("GetRegistration", [.string(appID), .string(tag)])
        guard reply.count == 1, case .dictionary(_, _, let entries) = reply[0],
            let registration = reply[0].stringKeyedDictionary
        else {
            throw AgentClient.unexpected("GetRegistration", reply)
        }
        if shared.json {
            let members =
                [("app_id", JSONText.string(appID)), ("tag", JSONText.string(tag))]
                + entries.map { ($0.key.stringValue ?? "", JSONText.text($0.value)) }
            print(JSONText.object(members))
            return
        }
        var lines = [("app", appID), ("tag", tag)]
        for (key, label) in Self.fields {
            guard let value = registration[key] else { continue }
            switch key {
            case "next-attempt", "not-before", "expires-at": lines.append((label, Human.time(value.int64Value ?? 0)))
            case "progress": lines.append((label, Self.progress(value)))
            case "transfer":
                let transfer = TransferText(value)
                lines.append(
                    (label, transfer.map { TransferText.onTerminal ? $0.bar() : $0.plain } ?? Human.value(value)))
            case "min-interval": lines.append((label, DurationText.describe(Int64(clamping: value.uint64Value ?? 0))))
            case "last-error": lines.append((label, (value.stringValue ?? "").isEmpty ? "-" : Human.value(value)))
            default: lines.append((label, Human.value(value)))
            }
        }
        let known = Set(Self.fields.map(\.key)).union(["options"])
        for entry in entries {
            guard let key = entry.key.stringValue, !known.contains(key) else { continue }
            lines.append((key, Human.value(entry.value)))  // keys a newer agent adds
        }
        if let options = registration["options"]?.unwrappingVariants,
            case .dictionary(_, _, let optionEntries) = options, !optionEntries.isEmpty
        {
            for (index, option) in optionEntries.enumerated() {
                let text = "\(option.key.stringValue ?? "?")=\(option.value.unwrappingVariants.gvariantText)"
                lines.append((index == 0 ? "options" : "", text))
            }
        } else {
            lines.append(("options", "-"))
        }
        let width = (lines.map(\.0.count).max() ?? 0) + 2
        for (label, text) in lines {
            let head = label.isEmpty ? "" : label + ":"
            print(head + String(repeating: " ", count: width - head.count) + text)
        }
    }

    /// "3/10 (3 files sent, 1200 bytes)" from (done, total, text); "3" when the total is unknown.
    static func progress(_ value: Value) -> String {
        guard case .structure(let fields) = value.unwrappingVariants, fields.count == 3,
            let done = fields[0].uint64Value, let total = fields[1].uint64Value
        else { return Human.value(value) }
        let text = fields[2].stringValue ?? ""
        return (total > 0 ? "\(done)/\(total)" : "\(done)") + (text.isEmpty ? "" : " (\(text))")
    }
}
