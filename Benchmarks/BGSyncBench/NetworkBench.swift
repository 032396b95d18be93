// SPDX-License-Identifier: Apache-2.0
// Network back → handler done: the mocked NetworkManager goes from disconnected to connected
// with one registration due; timed until the agent reports the no-op handler's SyncFinished.
import DBusKit
import Foundation
import Histogram

/// The agent's side, measured against python-dbusmock (its signal leaves the mock when the
/// SetGlobalConnectionState call returns; the time counts from just before that call).
func networkBackLatencies(setup: Setup, bus: PrivateBus, network: MockNetworkManager, rounds: Int) throws -> (
    started: Latencies, finished: Latencies
) {
    try network.setState(MockNetworkManager.disconnected)
    let agent = try AgentProcess(setup: setup, bus: bus, name: "network", config: benchConfig, network: network)
    defer { agent.stop() }
    let client = try BusClient(address: bus.address)
    var online: Bool?
    var startedAt: [String: UInt64] = [:]
    var finishedAt: [String: UInt64] = [:]
    try client.connection.addMatch(
        "type='signal',path='\(BusClient.path)',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"
    ) { signal in
        guard signal.arguments.count >= 2, case .dictionary(_, _, let entries) = signal.arguments[1] else { return }
        for entry in entries where entry.key == .string("Online") {
            if case .bool(let value) = entry.value.unwrappingVariants { online = value }
        }
    }
    try client.onAgentSignal("SyncStarted") { signal in
        if case .string(let tag) = signal.arguments[1] { startedAt[tag] = now() }
    }
    try client.onAgentSignal("SyncFinished") { signal in
        if case .string(let tag) = signal.arguments[1] { finishedAt[tag] = now() }
    }
    var started = makeLatencies()
    var finished = makeLatencies()
    for round in 0..<rounds {
        let tag = "net\(round)"
        try client.register(app: "org.bench.Network", tag: tag)
        let start = now()
        try network.setState(MockNetworkManager.connectedGlobal)
        try client.wait(timeout: 30, what: "SyncFinished for \(tag) after going online") { finishedAt[tag] != nil }
        let end = finishedAt[tag]!
        _ = started.record((startedAt[tag] ?? end) - start)
        _ = finished.record(end - start)
        try network.setState(MockNetworkManager.disconnected)
        try client.wait(timeout: 30, what: "the agent to see the network go away") { online == false }
    }
    return (started, finished)
}

func networkRows(setup: Setup, bus: PrivateBus, network: MockNetworkManager) throws -> [Row] {
    let rounds = 30
    let (started, finished) = try networkBackLatencies(setup: setup, bus: bus, network: network, rounds: rounds)
    let p50 = Double(finished.valueAtPercentile(50))
    let p99 = Double(finished.valueAtPercentile(99))
    log(
        "network back (mock): SyncStarted p50 \(formatDuration(nanoseconds: Double(started.valueAtPercentile(50)))), SyncFinished p50 \(formatDuration(nanoseconds: p50)) p99 \(formatDuration(nanoseconds: p99))"
    )
    return [
        Row(
            figure: "Network back → no-op handler done, mocked NetworkManager, p50 / p99 (\(rounds) rounds)",
            measured: "\(formatDuration(nanoseconds: p50)) / \(formatDuration(nanoseconds: p99))",
            reference: "(no dispatcher with the mock; see the next row)", ratio: nil, goal: "for context", met: nil)
    ]
        + (try dispatcherRows(setup: setup, bus: bus, rounds: 20))
}
