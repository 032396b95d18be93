// SPDX-License-Identifier: Apache-2.0
// 10,000 fuzzed calls from 4 clients at once (random methods, valid and invalid arguments),
// while another client calls GetTags: its p99 beside its p99 with no fuzz, same agent, same run.
import BGSyncValue
import DBusKit
import Foundation
import Histogram

private let fuzzApps = [
    "org.fuzz.A", "org.fuzz.B", "", "not an app", "org.fuzz.C", String(repeating: "a.", count: 200),
]
private let fuzzHandlers = ["noop", "nope", "", "exec"]
private let fuzzMethods: [(name: String, signature: String)] = [
    ("Register", "sssa{sv}"), ("GetTags", "s"), ("Unregister", "ss"), ("GetRegistration", "ss"),
    ("RegisterPeriodic", "sssta{sv}"), ("GetPeriodicTags", "s"), ("UnregisterPeriodic", "ss"), ("Trigger", "ss"),
]

private func fuzzValue(_ code: Character, _ random: inout SystemRandomNumberGenerator) -> Value {
    switch code {
    case "s":
        let roll = Int.random(in: 0..<10, using: &random)
        if roll < 4 { return .string(fuzzApps.randomElement(using: &random)!) }
        if roll < 7 { return .string("t\(Int.random(in: 0..<200, using: &random))") }
        if roll < 9 { return .string(fuzzHandlers.randomElement(using: &random)!) }
        return .string(String(repeating: "x", count: Int.random(in: 0..<2000, using: &random)))
    case "t": return .uint64(UInt64.random(in: 0...UInt64.max, using: &random))
    default:
        var options: [(String, Value)] = []
        for n in 0..<Int.random(in: 0..<4, using: &random) {
            let value: Value = [.int32(Int32(n)), .string("v"), .bool(true), .double(.nan)].randomElement(
                using: &random)!
            options.append((["network", "max-attempts", "note", ""].randomElement(using: &random)!, value))
        }
        return .stringVariantDictionary(options)
    }
}

func fuzzRows(setup: Setup, bus: PrivateBus, network: MockNetworkManager) throws -> [Row] {
    try network.setState(MockNetworkManager.disconnected)
    let agent = try AgentProcess(setup: setup, bus: bus, name: "fuzz", config: benchConfig, network: network)
    defer { agent.stop() }
    let probe = try BusClient(address: bus.address)
    for tag in 0..<100 { try probe.register(app: "org.bench.Probe", tag: "t\(tag)") }
    var alone = makeLatencies()
    for _ in 0..<2000 {
        let start = now()
        _ = try probe.getTags(app: "org.bench.Probe")
        _ = alone.record(now() - start)
    }

    let calls = 10_000
    let clients = 4
    let address = bus.address
    let answered = Locked(0)
    let unanswered = Locked<[String]>([])
    let fuzzing = Locked(true)
    let during = Locked(makeLatencies())
    let probeDone = DispatchSemaphore(value: 0)
    Thread {
        defer { probeDone.signal() }
        guard let client = try? BusClient(address: address) else { return }
        while fuzzing.with({ $0 }) {
            let start = now()
            guard (try? client.getTags(app: "org.bench.Probe")) != nil else { break }
            let elapsed = now() - start
            during.with { _ = $0.record(elapsed) }
        }
    }.start()
    let start = now()
    onThreads(clients) { _ in
        guard let client = try? BusClient(address: address) else { return }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<(calls / clients) {
            let method = fuzzMethods.randomElement(using: &random)!
            // One call in five gets a signature of another method: refused as InvalidArgs.
            let signature =
                Int.random(in: 0..<5, using: &random) == 0
                ? fuzzMethods.randomElement(using: &random)!.signature : method.signature
            // The signatures here hold only s, t and a{sv}.
            let values = signature.replacingOccurrences(of: "a{sv}", with: "a").map { fuzzValue($0, &random) }
            do {
                _ = try client.call(
                    destination: BusClient.name, path: BusClient.path, interface: BusClient.interface,
                    method: method.name, arguments: values, timeout: 30)
                answered.with { $0 += 1 }
            } catch let error as DBusError {
                if error.name.hasSuffix(".NoReply") || error.name.hasSuffix(".Timeout")
                    || error.name.hasSuffix(".Disconnected")
                {
                    unanswered.with { $0.append(error.name) }
                } else {
                    answered.with { $0 += 1 }
                }
            } catch {
                unanswered.with { $0.append("\(error)") }
            }
        }
    }
    let elapsed = seconds(since: start)
    fuzzing.with { $0 = false }
    probeDone.wait()
    let probes = during.with { $0 }
    let lost = unanswered.with { $0 }
    let p99 = Double(probes.valueAtPercentile(99))
    let alone99 = Double(alone.valueAtPercentile(99))
    log(
        String(
            format: "fuzz: %d calls answered, %d not, in %.2f s; GetTags p99 %@ (alone %@) over %d calls",
            answered.with { $0 }, lost.count, elapsed, formatDuration(nanoseconds: p99),
            formatDuration(nanoseconds: alone99), Int(probes.totalCount)))
    return [
        Row(
            figure: "10,000 fuzzed calls from 4 clients: p99 of a concurrent GetTags",
            measured:
                "\(formatDuration(nanoseconds: p99)) (\(probes.totalCount) calls; \(answered.with { $0 }) fuzzed answered, \(lost.count) not)",
            reference: "GetTags p99 with no fuzz: \(formatDuration(nanoseconds: alone99))", ratio: p99 / alone99,
            goal: "printed, every call answered", met: lost.isEmpty,
            note: String(format: "the fuzz took %.2f s.", elapsed))
    ]
}

/// What dbus-daemon itself routes: one connection emits `count` signals of SyncFinished's shape
/// (four strings), another receives them through a match rule; from the first send to the last
/// signal received. The ceiling for an agent that sends two signals per event.
func busSignalRate(bus: PrivateBus, count: Int) throws -> Double {
    let listener = try BusClient(address: bus.address)
    var received = 0
    try listener.connection.addMatch("type='signal',interface='org.bench.Rate',member='Finished'") { _ in received += 1
    }
    let address = bus.address
    let failure = Locked<String?>(nil)
    let start = now()
    Thread {
        do {
            let emitter = try DBusConnection(bus: .address(address))
            defer { emitter.close() }
            for n in 0..<count {
                try emitter.sendSignal(
                    path: "/org/bench/Rate", interface: "org.bench.Rate", name: "Finished",
                    arguments: [
                        .string("org.bench.Storm\(n % 100)"), .string("t\(n % 100)"), .string("succeeded"), .string(""),
                    ])
                if n % 64 == 63 { emitter.flush() }
            }
            emitter.flush()
        } catch { failure.with { $0 = "\(error)" } }
    }.start()
    try listener.wait(timeout: 120, what: "\(count) signals through dbus-daemon") {
        received >= count || failure.with { $0 } != nil
    }
    if let failure = failure.with({ $0 }) { throw BenchError("emitting signals failed: \(failure)") }
    return Double(count) / seconds(since: start)
}
