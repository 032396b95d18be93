// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct State: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the agent's view of the network, the power supply and its installed handlers.")

    @OptionGroup var shared: SharedOptions

    func run() throws {
        let properties = try AgentClient(shared).properties()
        if shared.json {
            let order = ["Online", "Metered", "OnBattery", "PowerSaver", "Handlers", "Version"]
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
    }
}
