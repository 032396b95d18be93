// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct Unregister: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a registration.",
        discussion: "Exits 4 when nothing was registered under that tag.")

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id.") var appID: String
    @Argument(help: "Tag.") var tag: String
    @Flag(help: "Remove a periodic registration instead of a one-off one.") var periodic = false

    func run() throws {
        let method = periodic ? "UnregisterPeriodic" : "Unregister"
        let reply = try AgentClient(shared).call(method, [.string(appID), .string(tag)])
        guard reply.count == 1, let removed = reply[0].boolValue else { throw AgentClient.unexpected(method, reply) }
        if shared.json {
            print(
                JSONText.object([
                    ("app_id", JSONText.string(appID)), ("tag", JSONText.string(tag)),
                    ("removed", removed ? "true" : "false"),
                ]))
        } else if removed {
            print("Unregistered \(periodic ? "periodic" : "one-off") sync '\(tag)' for \(appID).")
        }
        if !removed {
            throw CLIFailure.notFound("no \(periodic ? "periodic" : "one-off") registration '\(tag)' for \(appID)")
        }
    }
}
