// SPDX-License-Identifier: Apache-2.0
// Register against Peer.Ping on the same agent and bus: one client's round trips, then 16
// clients at once. The agent is offline (mocked NetworkManager), so nothing fires meanwhile.
import Foundation
import Histogram

func registerRows(setup: Setup, bus: PrivateBus, network: MockNetworkManager) throws -> [Row] {
    let agent = try AgentProcess(setup: setup, bus: bus, name: "register", config: benchConfig, network: network)
    defer { agent.stop() }
    let client = try BusClient(address: bus.address)

    // One client: ping and Register alternate, so both see the same machine at the same time.
    let rounds = 3000
    for i in 0..<200 {
        try client.ping()
        try client.register(app: "org.bench.Warm", tag: "w\(i)")
    }
    var pings = makeLatencies()
    var registers = makeLatencies()
    for i in 0..<rounds {
        var start = now()
        try client.ping()
        _ = pings.record(now() - start)
        start = now()
        try client.register(app: "org.bench.Latency\(i / 1000)", tag: "t\(i % 1000)")
        _ = registers.record(now() - start)
    }
    let p50 = Double(registers.valueAtPercentile(50))
    let p99 = Double(registers.valueAtPercentile(99))
    let ping50 = Double(pings.valueAtPercentile(50))
    let ping99 = Double(pings.valueAtPercentile(99))
    log(
        "Register p50 \(formatDuration(nanoseconds: p50)) p99 \(formatDuration(nanoseconds: p99)); Ping p50 \(formatDuration(nanoseconds: ping50)) p99 \(formatDuration(nanoseconds: ping99))"
    )

    // 16 clients, each on its own thread and connection: Ping, Register, Ping again (the two
    // Ping phases bracket the Register one; their mean is the reference).
    let clients = 16
    let perClient = 300
    let address = bus.address
    let errors = Locked<[String]>([])
    func phase(_ body: @escaping @Sendable (BusClient, Int, Int) throws -> Void) -> Double {
        let connections = Locked<[Int: BusClient]>([:])
        onThreads(clients) { index in
            do {
                let own = try BusClient(address: address)
                connections.with { $0[index] = own }
            } catch { errors.with { $0.append("\(error)") } }
        }
        let start = now()
        onThreads(clients) { index in
            guard let own = connections.with({ $0[index] }) else { return }
            do {
                for k in 0..<perClient { try body(own, index, k) }
            } catch { errors.with { $0.append("\(error)") } }
        }
        let elapsed = seconds(since: start)
        connections.with { $0.removeAll() }
        return Double(clients * perClient) / elapsed
    }
    let ping1 = phase { own, _, _ in try own.ping() }
    let registerRate = phase { own, index, k in try own.register(app: "org.bench.Clients\(index)", tag: "t\(k)") }
    let ping2 = phase { own, _, _ in try own.ping() }
    if let first = errors.with({ $0.first }) { throw BenchError("a concurrent client failed: \(first)") }
    let pingRate = (ping1 + ping2) / 2
    log(String(format: "Register %.0f/s, Ping %.0f/s and %.0f/s with %d clients", registerRate, ping1, ping2, clients))

    return [
        Row(
            figure: "Register round trip p50 (1 client)", measured: formatDuration(nanoseconds: p50),
            reference: "Ping p50 \(formatDuration(nanoseconds: ping50))", ratio: p50 / ping50,
            goal: "≤ 2.5×, durable at the reply", met: p50 / ping50 <= 2.5),
        Row(
            figure: "Register round trip p99 (1 client)", measured: formatDuration(nanoseconds: p99),
            reference: "Ping p99 \(formatDuration(nanoseconds: ping99))", ratio: p99 / ping99, goal: "≤ 5×",
            met: p99 / ping99 <= 5),
        Row(
            figure: "Register throughput, 16 clients", measured: String(format: "%.0f/s", registerRate),
            reference: String(format: "Ping %.0f/s", pingRate), ratio: registerRate / pingRate, goal: "≥ 0.5×",
            met: registerRate / pingRate >= 0.5),
    ]
}
