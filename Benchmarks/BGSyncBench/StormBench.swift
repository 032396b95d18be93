// SPDX-License-Identifier: Apache-2.0
// Reconnect storm: 10,000 registrations over 100 apps, registered offline, all due when the
// mocked NetworkManager comes online; timed until the last SyncFinished. Meanwhile another
// client keeps calling GetTags. Reference: 10,000 processes (/bin/true), as many at a time as
// the agent runs events (concurrent-events).
import Foundation
import Histogram

struct StormResult {
    var rows: [Row]
    var workerRSSKiB: Int?
}

func stormRows(setup: Setup, bus: PrivateBus, network: MockNetworkManager) throws -> StormResult {
    let apps = 100
    let perApp = 100
    let total = apps * perApp
    let concurrency = 4
    try network.setState(MockNetworkManager.disconnected)
    let agent = try AgentProcess(setup: setup, bus: bus, name: "storm", config: benchConfig, network: network)
    defer { agent.stop() }

    // Register everything from 16 clients (the agent is offline: nothing fires yet).
    let address = bus.address
    let errors = Locked<[String]>([])
    onThreads(16) { index in
        do {
            let client = try BusClient(address: address)
            for app in stride(from: index, to: apps, by: 16) {
                for tag in 0..<perApp { try client.register(app: "org.bench.Storm\(app)", tag: "t\(tag)") }
            }
        } catch { errors.with { $0.append("\(error)") } }
    }
    if let first = errors.with({ $0.first }) { throw BenchError("registering the storm failed: \(first)") }

    let listener = try BusClient(address: bus.address)
    var finished = 0
    var succeeded = 0
    try listener.onAgentSignal("SyncFinished") { signal in
        finished += 1
        if signal.arguments.count > 2, case .string("succeeded") = signal.arguments[2] { succeeded += 1 }
    }
    // GetTags from another client all along, on its own thread. It asks about an app outside
    // the storm: a connection that names an app id hears that app's sync signals (unicast, which
    // no match rule filters), so asking about the storm's apps would time the probe's own
    // backlog of 20,000 signals (p99 ~100 ms) and double dbus-daemon's routing. The bystander
    // has registrations of its own that wait (not-before a day), so each answer scans the table.
    let bystander = try BusClient(address: bus.address)
    for tag in 0..<3 {
        try bystander.register(app: "org.bench.Bystander", tag: "b\(tag)", options: [("not-before", .uint32(86_400))])
    }
    let stormOver = Locked(false)
    let getTags = Locked(makeLatencies())
    let probeDone = DispatchSemaphore(value: 0)
    Thread {
        defer { probeDone.signal() }
        guard let probe = try? BusClient(address: address) else { return }
        while !stormOver.with({ $0 }) {
            let start = now()
            guard (try? probe.getTags(app: "org.bench.Bystander")) != nil else { break }
            let elapsed = now() - start
            getTags.with { _ = $0.record(elapsed) }
        }
    }.start()

    let start = now()
    try network.setState(MockNetworkManager.connectedGlobal)
    var workerRSS: Int?
    try listener.wait(timeout: 600, what: "\(total) SyncFinished signals in the storm") {
        if workerRSS == nil, finished > total / 2 {
            workerRSS = childPIDs(of: agent.pid).compactMap { procStatusKiB(pid: $0, field: "VmRSS") }.first
        }
        return finished >= total
    }
    let agentTime = seconds(since: start)
    stormOver.with { $0 = true }
    probeDone.wait()
    let probes = getTags.with { $0 }
    log(
        String(
            format: "storm: %d finished (%d succeeded) in %.2f s; GetTags p99 %@ over %d calls", finished, succeeded,
            agentTime,
            formatDuration(nanoseconds: Double(probes.valueAtPercentile(99))), Int(probes.totalCount)))

    // The reference: one process per event.
    let next = Locked(0)
    let referenceStart = now()
    onThreads(concurrency) { _ in
        while next.with({ (n: inout Int) -> Bool in
            n += 1
            return n <= total
        }) { _ = spawnAndWait(["/bin/true"]) }
    }
    let referenceTime = seconds(since: referenceStart)
    log(String(format: "reference: %d × /bin/true, %d at a time, in %.2f s", total, concurrency, referenceTime))

    // The limit named by the goal: dbus-daemon routing the two signals of each event.
    let agentSignalRate = Double(2 * finished) / agentTime
    let busRate = try busSignalRate(bus: bus, count: 20_000)
    log(
        String(
            format:
                "storm: the agent sent %.0f signals/s; dbus-daemon routes %.0f signals/s (one emitter, one listener)",
            agentSignalRate, busRate))

    let speedup = referenceTime / agentTime
    return StormResult(
        rows: [
            Row(
                figure: "Reconnect storm, 10,000 due over 100 apps, until all finished",
                measured: String(format: "%.2f s (%d succeeded)", agentTime, succeeded),
                reference: String(format: "10,000 × /bin/true, %d at a time: %.2f s", concurrency, referenceTime),
                ratio: speedup, goal: "≥ 10× faster", met: speedup >= 10,
                note: "ratio is how many times faster the agent is."),
            Row(
                figure: "Storm: the agent's signals per second (SyncStarted + SyncFinished)",
                measured: String(format: "%.0f/s", agentSignalRate),
                reference: String(
                    format: "dbus-daemon routing 20,000 signals, one emitter to one listener: %.0f/s", busRate),
                ratio: agentSignalRate / busRate, goal: "printed (the storm's limit)", met: nil),
            Row(
                figure: "GetTags during the storm, p50 / p99",
                measured:
                    "\(formatDuration(nanoseconds: Double(probes.valueAtPercentile(50)))) / \(formatDuration(nanoseconds: Double(probes.valueAtPercentile(99))))",
                reference: "\(probes.totalCount) calls answered", ratio: nil, goal: "answered, p99 printed",
                met: probes.totalCount > 0),
        ], workerRSSKiB: workerRSS)
}
