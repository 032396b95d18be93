// SPDX-License-Identifier: Apache-2.0
// Cold first event: the agent is started afresh (no worker, no plugin loaded yet) with the mocked
// NetworkManager offline and one message waiting in an outbox for `upload`; timed from the mock
// going online (just before SetGlobalConnectionState, whose StateChanged the agent follows) until
// the POST arrives at the loopback server (its arrival stamp).
// Reference, same rounds, same server, same start: what nm-dispatcher does with a script, with
// the harness in the dispatcher's place: it hears the same StateChanged on the mock's bus and
// starts a shell script that posts the same body with curl. (NetworkManager calls nm-dispatcher
// itself; the mock cannot, so the dispatcher's own hop is not in the reference: the "network back"
// row with the real NetworkManager measures it.)
import DBusKit
import Foundation

#if canImport(Glibc)
import Glibc
#endif

func coldStartRows(setup: Setup, bus: PrivateBus, network: MockNetworkManager) throws -> [Row] {
    let rounds = 5
    let work = setup.workDirectory + "/cold"
    let outbox = work + "/outbox"
    let served = work + "/served"
    for directory in [outbox, served] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
    try installHandler(setup: setup, name: "upload")
    let server = try TransferServer(setup: setup, work: work, served: served)
    defer { server.process.stop() }
    let body = Data(#"{"text": "a message written while offline"}"#.utf8)
    let bodyFile = work + "/body.json"
    try body.write(to: URL(fileURLWithPath: bodyFile))
    let script = work + "/50-post"
    try """
    #!/bin/sh
    exec /usr/bin/curl -s -o /dev/null -H 'Content-Type: application/octet-stream' --data-binary @\(bodyFile) "$1"
    """.write(toFile: script, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)

    // The dispatcher's stand-in: one connection to the mock's bus, for every round.
    let listener = try BusClient(address: network.systemBus.address)
    var armed: String?
    var started: Child?
    var spawnError: String?
    try listener.connection.addMatch(
        "type='signal',interface='org.freedesktop.NetworkManager',member='StateChanged'"
    ) { signal in
        guard let url = armed, case .uint32(MockNetworkManager.connectedGlobal) = signal.arguments.first else { return }
        armed = nil
        do { started = try Child([script, url]) } catch { spawnError = "\(error)" }
    }

    var agentTimes: [Double] = []
    var warmTimes: [Double] = []
    var referenceTimes: [Double] = []
    for round in 0..<rounds {
        try network.setState(MockNetworkManager.disconnected)
        let agent = try AgentProcess(
            setup: setup, bus: bus, name: "cold\(round)", config: benchConfig, network: network)
        defer { agent.stop() }
        let client = try BusClient(address: bus.address)
        try client.wait(timeout: 30, what: "the fresh agent to say it is offline") { (try? isOnline(client)) == false }
        var finished: String?
        try client.onAgentSignal("SyncFinished") { signal in
            if signal.arguments.count > 2, case .string(let outcome) = signal.arguments[2] { finished = outcome }
        }
        // Cold, then the same once more on the same agent, its worker now running: the difference
        // is what the first event's worker start costs.
        for warm in [false, true] {
            if warm {
                try network.setState(MockNetworkManager.disconnected)
                try client.wait(timeout: 30, what: "the agent to see the network go away") {
                    (try? isOnline(client)) == false
                }
            }
            let name = "\(round)\(warm ? "-warm" : "")"
            let part = outbox + "/\(name).json.part"
            try body.write(to: URL(fileURLWithPath: part))
            guard rename(part, outbox + "/\(name).json") == 0 else { throw BenchError("cannot rename \(part)") }
            let agentPath = "/cold/agent-\(name)"
            finished = nil
            try client.register(
                app: "org.bench.Cold", tag: "message", handler: "upload",
                options: [("outbox", .string(outbox)), ("url", .string(server.url + agentPath))])
            let start = Date().timeIntervalSince1970
            try network.setState(MockNetworkManager.connectedGlobal)
            let time = try server.body(path: agentPath).arrived - start
            if warm { warmTimes.append(time) } else { agentTimes.append(time) }
            try client.wait(timeout: 30, what: "SyncFinished of the round \(name)") { finished != nil }
            guard finished == "succeeded" else { throw BenchError("the round \(name) ended \(finished!)") }
        }
        agent.stop()

        try network.setState(MockNetworkManager.disconnected)
        let referencePath = "/cold/reference-\(round)"
        armed = server.url + referencePath
        started = nil
        let referenceStart = Date().timeIntervalSince1970
        try network.setState(MockNetworkManager.connectedGlobal)
        try listener.wait(timeout: 30, what: "StateChanged(70) on the mock's bus") {
            started != nil || spawnError != nil
        }
        if let spawnError { throw BenchError("cannot start the reference script: \(spawnError)") }
        referenceTimes.append(try server.body(path: referencePath).arrived - referenceStart)
        guard started!.wait() == 0 else { throw BenchError("the reference script's curl failed") }
    }
    try network.setState(MockNetworkManager.disconnected)

    let agentMedian = median(agentTimes)
    let referenceMedian = median(referenceTimes)
    log(
        "cold first event: agent \(agentTimes.map { formatDuration(nanoseconds: $0 * 1e9) }), warm \(warmTimes.map { formatDuration(nanoseconds: $0 * 1e9) }), reference \(referenceTimes.map { formatDuration(nanoseconds: $0 * 1e9) })"
    )
    let ratio = agentMedian / referenceMedian
    return [
        Row(
            figure:
                "Cold first event: agent just started, mocked NetworkManager goes online → POST received, median of \(rounds)",
            measured: formatDuration(nanoseconds: agentMedian * 1e9),
            reference: "StateChanged heard on the bus → script running curl (nm-dispatcher's way): "
                + formatDuration(nanoseconds: referenceMedian * 1e9),
            ratio: ratio, goal: "≤ 1×", met: ratio <= 1,
            note:
                "a fresh agent per round (its first worker and the upload plugin start with the event); both timed from just before SetGlobalConnectionState to the server's arrival stamp; the reference leaves out nm-dispatcher's own hop from NetworkManager (the real-NetworkManager row measures it). The same agent's second event, its worker running, offline → online → POST: median \(formatDuration(nanoseconds: median(warmTimes) * 1e9)). Every round: agent \(agentTimes.map { formatDuration(nanoseconds: $0 * 1e9) }.joined(separator: ", ")); reference \(referenceTimes.map { formatDuration(nanoseconds: $0 * 1e9) }.joined(separator: ", "))."
        )
    ]
}

private func isOnline(_ client: BusClient) throws -> Bool? {
    let reply = try client.call(
        destination: BusClient.name, path: BusClient.path, interface: "org.freedesktop.DBus.Properties",
        method: "Get", arguments: [.string(BusClient.interface), .string("Online")])
    if case .bool(let online) = reply.first?.unwrappingVariants { return online }
    return nil
}

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}
