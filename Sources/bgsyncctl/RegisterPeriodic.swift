// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit

struct RegisterPeriodic: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register a periodic sync: the handler runs at most once per interval while the network allows.",
        discussion:
            "Example: bgsyncctl register-periodic org.example.News headlines exec --every 1h -o \"command=['fetch-news']\""
    )

    @OptionGroup var shared: SharedOptions
    @Argument(help: "Application id, e.g. org.example.News.") var appID: String
    @Argument(help: "Tag naming the periodic sync.") var tag: String
    @Argument(help: "Handler that runs the sync.") var handler: String
    @Option(help: ArgumentHelp("Minimum interval between runs: 90, 90s, 15m, 1h, 1d, 1h30m.", valueName: "duration"))
    var every: String
    @OptionGroup var registration: RegistrationOptions

    func run() throws {
        let interval = try DurationText.seconds(every)
        let options = try registration.dictionary()
        let agent = try AgentClient(shared)
        _ = try agent.call(
            "RegisterPeriodic", [.string(appID), .string(tag), .string(handler), .uint64(interval), options])
        if shared.json {
            print(
                JSONText.object([
                    ("app_id", JSONText.string(appID)), ("tag", JSONText.string(tag)),
                    ("kind", JSONText.string("periodic")),
                    ("min-interval", "\(interval)"),
                ]))
        } else {
            print(
                "Registered periodic sync '\(tag)' for \(appID) every \(DurationText.describe(Int64(interval))) (handler \(handler))."
            )
        }
    }
}
