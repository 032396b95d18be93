// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct State: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Show the agent's view of the network, the power supply and its installed handlers, and any repair of its database."
    )

    @OptionGroup var shared: SharedOptions

    func run() throws {
        let client = try AgentClient(shared)
        var properties = try client.properties()
        // The property has the counts only (any sandboxed app may read it); GetRepair has the
        // rest for an unconfined caller. An agent that repaired nothing has the property empty.
        if let repair = properties["Repair"]?.unwrappingVariants, case .dictionary(_, _, let entries) = repair,
            !entries.isEmpty, let details = try? client.call("GetRepair").first
        {
            properties["Repair"] = details
        }
        if shared.json {
            let order = ["Online", "Metered", "OnBattery", "PowerSaver", "Handlers", "Version", "Repair"]
            let members =
                order.compactMap { key in properties[key].map { (key, JSONText.text($0)) } }
                + properties.keys.filter { !order.contains($0) }.sorted().map { ($0, JSONText.text(properties[$0]!)) }
            print(JSONText.object(members))
            return
        }
        func show(_ key: String) -> String { properties[key].map(Human.value) ?? "?" }
        let handlers = properties["Handlers"]?.arrayValue?.compactMap(\.stringValue) ?? []
        print("online:    \(show("Online"))")
        print("metered:   \(show("Metered"))")
        // An agent from before power conditions has neither.
        if properties["OnBattery"] != nil { print("battery:   \(show("OnBattery"))") }
        if properties["PowerSaver"] != nil { print("saver:     \(show("PowerSaver"))") }
        print("handlers:  \(handlers.isEmpty ? "-" : handlers.joined(separator: ", "))")
        print("version:   \(show("Version"))")
        // An agent from before repairs has no Repair; one that repaired nothing has it empty.
        if let repair = properties["Repair"]?.unwrappingVariants, case .dictionary(_, _, let entries) = repair,
            !entries.isEmpty
        {
            var fields: [String: Value] = [:]
            for entry in entries { if let key = entry.key.stringValue { fields[key] = entry.value.unwrappingVariants } }
            func field(_ key: String) -> String { fields[key].map(Human.value) ?? "?" }
            let time = fields["time"]?.int64Value.map(Human.time) ?? "?"
            // Inside a sandbox (GetRepair's counts only) or from the property, without the damage and the file.
            let damage = fields["damage"].map { " (\(Human.value($0)))" } ?? ""
            print("repair:    \(time): the database was damaged\(damage); repaired at the agent's start")
            if fields["kept-as"] != nil { print("  kept as: \(field("kept-as"))") }
            print("  saved:   \(field("saved")) registrations")
            print("  lost:    \(field("lost")) known\(fields["lost-apps"].map { " " + Human.value($0) } ?? "")")
        }
    }
}
