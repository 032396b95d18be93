// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct Trigger: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the agent to run a registration now (when the network allows), without waiting for its time.")

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id.") var appID: String
    @Argument(help: "Tag.") var tag: String

    func run() throws {
        _ = try AgentClient(shared).call("Trigger", [.string(appID), .string(tag)])
        if shared.json {
            print(
                JSONText.object([
                    ("app_id", JSONText.string(appID)), ("tag", JSONText.string(tag)), ("triggered", "true"),
                ]))
        } else {
            print("Triggered '\(tag)' for \(appID).")
        }
    }
}
