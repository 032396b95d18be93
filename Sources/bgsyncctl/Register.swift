// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct Register: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register a one-off sync: the handler runs once when the network allows.",
        discussion: "Example: bgsyncctl register org.example.Mail outbox exec -o \"command=['sh','-c','send-outbox']\"")

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id, e.g. org.example.Mail.") var appID: String
    @Argument(help: "Tag naming the sync; registering it again replaces the earlier one.") var tag: String
    @Argument(help: "Handler that runs the sync (see `bgsyncctl state` for installed handlers).") var handler: String
    @OptionGroup var registration: RegistrationOptions

    func run() throws {
        let options = try registration.dictionary()
        let agent = try AgentClient(shared)
        _ = try agent.call("Register", [.string(appID), .string(tag), .string(handler), options])
        if shared.json {
            print(
                JSONText.object([
                    ("app_id", JSONText.string(appID)), ("tag", JSONText.string(tag)),
                    ("kind", JSONText.string("one-off")),
                ]))
        } else {
            print("Registered one-off sync '\(tag)' for \(appID) (handler \(handler)).")
        }
    }
}
