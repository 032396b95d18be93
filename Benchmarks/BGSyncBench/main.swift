// make bench: measures bgsyncd's figures against references taken in the same run and prints
// one table (see BENCHMARKS.md). A tool to look at, not a test: it fails only when it cannot
// measure.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

signal(SIGPIPE, SIG_IGN)
let machine = machineDescription()
var rows: [Row] = []
var status: Int32 = 0
var setupForCleanup: Setup?
do {
    let setup = try Setup(arguments: CommandLine.arguments)
    setupForCleanup = setup
    let bus = try PrivateBus()
    defer { bus.stop() }
    let network = try MockNetworkManager(state: MockNetworkManager.disconnected)
    defer { network.stop() }

    log("Register and Ping…")
    rows += try registerRows(setup: setup, bus: bus, network: network)

    log("network back…")
    rows += try networkRows(setup: setup, bus: bus, network: network)

    log("reconnect storm…")
    let storm = try stormRows(setup: setup, bus: bus, network: network)
    rows += storm.rows

    log("idle (30 s under strace)…")
    let idle = try idleRows(setup: setup, bus: bus, window: 30)
    rows += idle.rows

    log("start with 100,000 stored…")
    rows += try startupRows(setup: setup, bus: bus)

    let dispatcher = try dispatcherRSSKiB()
    rows.append(Row(
        figure: "Idle RSS: agent (10,000 stored) / one worker",
        measured: "\(idle.agentRSSKiB.map(formatBytes) ?? "?") / \(storm.workerRSSKiB.map(formatBytes) ?? "not seen")",
        reference: "nm-dispatcher: \(dispatcher.map(formatBytes) ?? "not installed")", ratio: nil, goal: "side by side", met: nil))
} catch {
    log("stopped: \(error)")
    status = 1
}
stopAllStarted()
setupForCleanup?.removeWorkDirectory()
printTable(rows, machine: machine)
exit(status)
