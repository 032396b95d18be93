// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct Apps: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the apps that sync in the background: on or off, what they have waiting, their last sync "
            + "and their traffic over 30 days.")

    @OptionGroup var shared: SharedOptions

    func run() throws {
        let reply = try AgentClient(shared).call("ListApps")
        guard reply.count == 1, case .dictionary(_, _, let entries) = reply[0] else {
            throw AgentClient.unexpected("ListApps", reply)
        }
        if shared.json {
            let members = entries.map { entry -> (String, String) in
                let fields = entry.value.unwrappingVariants
                let inner: [(String, String)] =
                    if case .dictionary(_, _, let items) = fields {
                        items.map { ($0.key.stringValue ?? "", JSONText.text($0.value)) }
                    } else { [] }
                return (entry.key.stringValue ?? "", JSONText.object(inner))
            }
            print(JSONText.object(members))
            return
        }
        for entry in entries {
            guard let app = entry.key.stringValue, let fields = entry.value.stringKeyedDictionary else { continue }
            print(Self.line(app: app, fields))
        }
    }

    /// "org.example.Chat  on  2 registrations (1 waiting, 1 running); last sync … succeeded; 30 days: 12 kB sent, 3 kB received"
    static func line(app: String, _ fields: [String: Value]) -> String {
        func number(_ key: String) -> UInt64 { fields[key]?.uint64Value ?? 0 }
        let allowed = fields["allowed"]?.boolValue ?? true
        let registrations = number("registrations")
        var text = "\(app)  \(allowed ? "on " : "off")  \(registrations) registration\(registrations == 1 ? "" : "s")"
        text += " (\(number("waiting")) waiting, \(number("running")) running)"
        let last = fields["last-sync"]?.int64Value ?? 0
        if last > 0 {
            text += "; last sync \(Human.time(last)): \(fields["last-outcome"]?.stringValue ?? "?")"
        } else {
            text += "; never synced"
        }
        text += "; 30 days: \(bytes(number("bytes-sent"))) sent, \(bytes(number("bytes-received"))) received"
        return text
    }

    /// Bytes for people: "512 B", "1.5 kB", "12.0 MB" (powers of 1000).
    static func bytes(_ count: UInt64) -> String {
        guard count >= 1000 else { return "\(count) B" }
        var value = Double(count)
        for unit in ["kB", "MB", "GB", "TB", "PB"] {
            value /= 1000
            if value < 1000 || unit == "PB" {
                let tenths = (value * 10).rounded() / 10
                return "\(tenths) \(unit)"
            }
        }
        return "\(count) B"
    }
}
