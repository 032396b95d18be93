// SPDX-License-Identifier: Apache-2.0
// make bench: measures bgsyncd's figures against references taken in the same run and prints
// one table (see BENCHMARKS.md). A tool to look at, not a test: it fails only when it cannot
// measure.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

signal(SIGPIPE, SIG_IGN)
// Ctrl-C or SIGTERM still stops every process the harness started: the signals are blocked
// here (before any thread starts, so all threads inherit that) and one thread waits for them.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGINT)
sigaddset(&stopSignals, SIGTERM)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
Thread {
    var received: Int32 = 0
    var wanted = sigset_t()
    sigemptyset(&wanted)
    sigaddset(&wanted, SIGINT)
    sigaddset(&wanted, SIGTERM)
    sigwait(&wanted, &received)
    log("stopping on signal \(received): stopping the processes started")
    stopAllStarted()
    exit(128 + received)
}.start()
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

    if setup.wants("register") {
        log("Register and Ping…")
        rows += try registerRows(setup: setup, bus: bus, network: network)
    }
    if setup.wants("network") {
        log("network back…")
        rows += try networkRows(setup: setup, bus: bus, network: network)
    }
    if setup.wants("send") {
        log("send while online…")
        rows += try sendWhileOnlineRows(setup: setup, bus: bus)
    }
    if setup.wants("cold") {
        log("cold first event…")
        rows += try coldStartRows(setup: setup, bus: bus, network: network)
    }
    if setup.wants("transfer") {
        log("1 GiB upload and fetch…")
        rows += try transferRows(setup: setup, bus: bus)
    }
    var workerRSS: Int?
    var agentRSS: Int?
    if setup.wants("storm") {
        log("reconnect storm…")
        let storm = try stormRows(setup: setup, bus: bus, network: network)
        rows += storm.rows
        workerRSS = storm.workerRSSKiB
    }
    if setup.wants("idle") {
        log("idle (30 s under strace)…")
        let idle = try idleRows(setup: setup, bus: bus, window: 30)
        rows += idle.rows
        agentRSS = idle.agentRSSKiB
    }
    if setup.wants("startup") {
        log("start with 100,000 stored…")
        rows += try startupRows(setup: setup, bus: bus)
    }
    if setup.wants("fuzz") {
        log("10,000 fuzzed calls…")
        rows += try fuzzRows(setup: setup, bus: bus, network: network)
    }
    if setup.wants("rss") {
        let dispatcher = try dispatcherRSSKiB()
        rows.append(
            Row(
                figure: "Idle RSS: agent (10,000 stored) / one worker",
                measured:
                    "\(agentRSS.map(formatBytes) ?? "not measured") / \(workerRSS.map(formatBytes) ?? "not measured")",
                reference: "nm-dispatcher: \(dispatcher.map(formatBytes) ?? "not installed")", ratio: nil,
                goal: "worker ≤ nm-dispatcher", met: workerRSS.flatMap { worker in dispatcher.map { worker <= $0 } },
                note: "agent RSS is read after the idle window, a worker's halfway through the storm."))
    }
} catch {
    log("stopped: \(error)")
    status = 1
}
stopAllStarted()
setupForCleanup?.removeWorkDirectory()
printTable(rows, machine: machine)
exit(status)
