// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncAgent
import BGSyncNetwork
import BGSyncPower

/// bgsyncd: the per-user Background Sync agent.
struct BGSyncDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bgsyncd",
        abstract: "Background Sync for desktop apps: runs registered syncs when the network allows.",
        discussion: """
            Owns org.bgsync on the session bus and exports org.bgsync.Manager. Usually started by
            systemd (bgsyncd.service) or by D-Bus activation; see bgsyncd(8).
            """)

    @Option(help: ArgumentHelp("Read only this configuration file.", valueName: "path"))
    var config: String?

    @Option(
        help: ArgumentHelp("Keep the registration database here (default: $XDG_STATE_HOME/bgsync).", valueName: "dir"))
    var stateDir: String?

    @Option(
        help: ArgumentHelp("Load handlers from this directory (repeatable; replaces the defaults).", valueName: "dir"))
    var pluginDir: [String] = []

    @Option(help: ArgumentHelp("The bgsync-worker executable.", valueName: "path"))
    var worker: String?

    @Option(
        help:
            "How to tell whether the machine is online: \(NetworkMode.allCases.map(\.rawValue).joined(separator: ", "))."
    )
    var network: NetworkMode = .automatic

    @Option(help: "How to tell the power supply: \(PowerMode.allCases.map(\.rawValue).joined(separator: ", ")).")
    var power: PowerMode = .upower

    @Option(help: ArgumentHelp("Connect to this D-Bus address instead of the session bus.", valueName: "address"))
    var address: String?

    @Flag(name: .shortAndLong, help: "Log debug messages too.")
    var verbose = false

    func run() throws {
        var options = AgentOptions()
        options.configFile = config
        options.stateDirectory = stateDir
        options.pluginDirectories = pluginDir
        options.workerExecutable = worker
        options.network = network
        options.power = power
        options.busAddress = address
        options.verbose = verbose
        let status = Agent(options: options).run()
        if status != 0 { throw ExitCode(status) }
    }
}

extension NetworkMode: ExpressibleByArgument {}
extension PowerMode: ExpressibleByArgument {}

BGSyncDaemon.main()
