// SPDX-License-Identifier: Apache-2.0
// Figures about stored registrations: an idle agent's system calls with 10,000 waiting hours
// away, and starting with 100,000 stored. The rows are written with sqlite3 into the database
// the agent itself created (its own schema and migrations), apps of 1,000 each.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// SQLiteRegistrationStore.fileName (the harness does not link the store).
let storeFileName = "registrations.sqlite3"

/// Lets the agent create its database, then fills it with `count` registrations waiting 3 h.
func prepareStateDirectory(setup: Setup, bus: PrivateBus, name: String, count: Int) throws -> String {
    let first = try AgentProcess(setup: setup, bus: bus, name: name, config: benchConfig, network: nil)
    first.stop()
    let path = first.stateDirectory + "/" + storeFileName
    guard FileManager.default.fileExists(atPath: path) else { throw BenchError("the agent left no \(path)") }
    let sql = """
        WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < \(count - 1))
        INSERT INTO registrations (app_id, kind, tag, handler, options, network, max_attempts, attempts, state,
                                   next_attempt, last_error, min_interval, interval_start, sequence)
        SELECT 'org.bench.Stored' || (x / 1000), 'one-off', 't' || (x % 1000), 'noop', '@a{sv} {}', 'any', 3, 1, 'waiting',
               unixepoch() + 10800, '', NULL, NULL, x + 1 FROM n;
        """
    let status = try run(["/usr/bin/sqlite3", path, sql])
    guard status == 0 else { throw BenchError("sqlite3 could not fill \(path) (exit \(status))") }
    return first.stateDirectory
}

/// System calls an idle agent makes in `window` seconds (strace -f -c), and its RSS.
func idleRows(setup: Setup, bus: PrivateBus, window: Int) throws -> (rows: [Row], agentRSSKiB: Int?) {
    let state = try prepareStateDirectory(setup: setup, bus: bus, name: "idle", count: 10_000)
    let agent = try AgentProcess(
        setup: setup, bus: bus, name: "idle", config: benchConfig, network: nil, stateDirectory: state)
    defer { agent.stop() }
    let client = try BusClient(address: bus.address)
    let tags = try client.getTags(app: "org.bench.Stored0")
    guard tags == 1000 else { throw BenchError("the idle agent lists \(tags) tags for org.bench.Stored0, not 1000") }
    // strace prints its summary on stderr when interrupted (with -o FILE and SIGINT it wrote
    // nothing here); with no system call at all it prints no table, only attached/detached.
    let summary = setup.workDirectory + "/idle-strace.txt"
    try Child(
        ["/usr/bin/timeout", "-s", "INT", "\(window)", "/usr/bin/strace", "-f", "-c", "-p", "\(agent.pid)"],
        outputPath: summary
    ).wait()
    let text = (try? String(contentsOfFile: summary, encoding: .utf8)) ?? ""
    let lines = text.split(separator: "\n")
    guard lines.contains(where: { $0.contains("attached") }) else {
        throw BenchError("strace could not attach to the agent: \(text.prefix(300))")
    }
    // The table's rows: % time, seconds, usecs/call, calls, [errors,] name; the last is "total".
    let tableRows = lines.filter { line in
        let fields = line.split(separator: " ")
        return fields.count >= 5 && Double(fields[0]) != nil
    }
    let calls = tableRows.last { $0.hasSuffix("total") }.flatMap { Int($0.split(separator: " ")[3]) } ?? 0
    let perCall = tableRows.filter { !$0.hasSuffix("total") }.map { row -> String in
        let fields = row.split(separator: " ")
        return "\(fields.last!) ×\(fields[3])"
    }
    let rss = procStatusKiB(pid: agent.pid, field: "VmRSS")
    log("idle: \(calls) system calls in \(window) s (\(perCall.joined(separator: ", ")))")
    return (
        [
            Row(
                figure: "Idle, \(window) s, 10,000 registrations due in 3 h: system calls (strace -f -c)",
                measured: calls == 0 ? "0" : "\(calls) (\(perCall.joined(separator: ", ")))", reference: "0",
                ratio: nil, goal: "0 wake-ups", met: calls == 0,
                note: "a poll/timerfd wake-up would show as a call; none means no timer woke the agent.")
        ], rss
    )
}

/// Start with 100,000 stored registrations until GetTags answers (best of 3), against the
/// sqlite3 shell reading the same rows (best of 3).
func startupRows(setup: Setup, bus: PrivateBus) throws -> [Row] {
    let state = try prepareStateDirectory(setup: setup, bus: bus, name: "startup", count: 100_000)
    let database = state + "/" + storeFileName
    var agentTimes: [Double] = []
    var peaks: [Int] = []
    for _ in 0..<3 {
        let client = try BusClient(address: bus.address)
        let start = now()
        let agent = try AgentProcess(
            setup: setup, bus: bus, name: "startup", config: benchConfig, network: nil, stateDirectory: state)
        let tags = try client.getTags(app: "org.bench.Stored99")
        agentTimes.append(seconds(since: start))
        peaks.append(procStatusKiB(pid: agent.pid, field: "VmHWM") ?? 0)
        agent.stop()
        guard tags == 1000 else {
            throw BenchError("after start, GetTags lists \(tags) tags for org.bench.Stored99, not 1000")
        }
    }
    var sqliteTimes: [Double] = []
    var sqlitePeaks: [Int] = []
    for _ in 0..<3 {
        let start = now()
        let (status, peak) = spawnAndWait(["/usr/bin/sqlite3", database, "SELECT * FROM registrations;"])
        sqliteTimes.append(seconds(since: start))
        sqlitePeaks.append(peak)
        guard status == 0 else { throw BenchError("sqlite3 could not read \(database)") }
    }
    let agentBest = agentTimes.min()!
    let sqliteBest = sqliteTimes.min()!
    log("start with 100k: \(agentTimes) s (peak RSS \(peaks) KiB); sqlite3: \(sqliteTimes) s (\(sqlitePeaks) KiB)")
    return [
        Row(
            figure: "Start with 100,000 stored until GetTags answers (best of 3)",
            measured: String(format: "%.2f s", agentBest),
            reference: String(format: "sqlite3 SELECT * of the same rows: %.2f s", sqliteBest),
            ratio: agentBest / sqliteBest, goal: "≤ 2×", met: agentBest / sqliteBest <= 2),
        Row(
            figure: "Peak RSS, starting with 100,000 stored", measured: formatBytes(peaks.max()!),
            reference: "sqlite3: \(formatBytes(sqlitePeaks.max()!))", ratio: nil, goal: "≤ 64 MiB",
            met: peaks.max()! <= 64 * 1024),
    ]
}
