// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct Tags: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List an application's registered tags, one a line.")

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id.") var appID: String
    @Flag(help: "List periodic registrations instead of one-off ones.") var periodic = false

    func run() throws {
        let method = periodic ? "GetPeriodicTags" : "GetTags"
        let reply = try AgentClient(shared).call(method, [.string(appID)])
        guard reply.count == 1, let items = reply[0].arrayValue else { throw AgentClient.unexpected(method, reply) }
        let tags = items.compactMap(\.stringValue)
        if shared.json {
            print("[" + tags.map(JSONText.string).joined(separator: ",") + "]")
        } else {
            for tag in tags { print(tag) }
        }
    }
}
