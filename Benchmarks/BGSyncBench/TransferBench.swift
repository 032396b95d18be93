// SPDX-License-Identifier: Apache-2.0
// Transfers on loopback through the real agent and the shipped handlers, each against curl moving
// the same file to or from the same server in the same run (Benchmarks/transfer_server.py: a body
// is read into one buffer and counted, a file is sent with sendfile(2), so the server costs both
// sides alike):
//   upload: a file renamed into an outbox, Register for `upload` (PUT) → SyncFinished, against
//           `curl -T` of the same file;
//   fetch:  Register for `fetch` → SyncFinished (the file synced and in place), against `curl -o`;
//   the worker's peak RSS (VmHWM of the agent's bgsync-worker child) after 64 MiB and after 1 GiB.
// Files are sparse (truncate): nothing to write before. Each is read through once before the rounds
// (the first 1 GiB round over a fresh file took 4.3-6.3 s here, later ones 0.6-3.5 s, for curl and
// the agent alike), and the outbox gets a hard link to the very file curl sent: the same inode, the same
// cached pages (the handler deletes only the link). What `fetch` and `curl -o` write is real and
// is deleted after each round.
import DBusKit
import Foundation

#if canImport(Glibc)
import Glibc
#endif

private let mebibyte = 1 << 20
private let sizes = [64 * mebibyte, 1024 * mebibyte]

/// Rounds per size, alternating curl and the agent; the best of each side is kept: with other
/// builds on this machine, single 1 GiB rounds of one side varied by up to 1.7× in one run.
private let rounds = 3

func transferRows(setup: Setup, bus: PrivateBus) throws -> [Row] {
    let work = setup.workDirectory + "/transfer"
    let served = work + "/served"
    for directory in [work, served] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
    // What is written at once: one downloaded copy (curl's or the handler's) of the largest file;
    // twice that, so that the run does not fill the disk for others.
    var disk = statvfs()
    guard statvfs(work, &disk) == 0 else { throw BenchError("cannot statvfs \(work)") }
    let free = Int(disk.f_bavail) * Int(disk.f_frsize)
    let needed = 2 * sizes.max()!
    guard free >= needed else {
        return ["Upload", "Fetch", "Worker peak RSS"].map {
            Row(
                figure: "\($0), \(sizeName(sizes.max()!))", measured: "not measured",
                reference: "\(free / mebibyte) MiB free in \(work), \(needed / mebibyte) MiB needed", ratio: nil,
                goal: "–", met: nil)
        }
    }
    try installHandler(setup: setup, name: "upload")
    try installHandler(setup: setup, name: "fetch")
    let server = try TransferServer(setup: setup, work: work, served: served)
    defer { server.process.stop() }
    let upload = try uploadFigures(setup: setup, bus: bus, work: work, server: server)
    let fetch = try fetchFigures(setup: setup, bus: bus, work: work, server: server)
    try? FileManager.default.removeItem(atPath: work)

    let largest = sizes.max()!
    var rows: [Row] = []
    for (name, figures, reference, handler) in [
        ("Upload", upload, "curl -T", "upload"), ("Fetch", fetch, "curl -o", "fetch"),
    ] {
        let agent = figures.agentSeconds[largest]!
        let curl = figures.curlSeconds[largest]!
        let ratio = curl / agent
        rows.append(
            Row(
                figure:
                    "\(name) \(sizeName(largest)) on loopback, `\(handler)` handler, Register → SyncFinished, best of \(rounds)",
                measured: transferText(bytes: largest, seconds: agent),
                reference: "\(reference) of the same file, same server: " + transferText(bytes: largest, seconds: curl),
                ratio: ratio, goal: "≥ 0.9× curl's rate", met: ratio >= 0.9,
                note: figures.note))
    }
    let peaks = sizes.map { size in
        "\(sizeName(size)) \(upload.workerPeakKiB[size].map(formatBytes) ?? "?") / \(fetch.workerPeakKiB[size].map(formatBytes) ?? "?")"
    }
    let curlPeaks = "curl -T \(formatBytes(upload.curlPeakKiB)), curl -o \(formatBytes(fetch.curlPeakKiB))"
    let allPeaks = [upload, fetch].flatMap { $0.workerPeakKiB.values }
    let flat = [upload, fetch].allSatisfy { figures in
        guard let small = figures.workerPeakKiB[sizes.min()!], let large = figures.workerPeakKiB[largest] else {
            return false
        }
        return large - small <= 1024
    }
    rows.append(
        Row(
            figure: "Worker peak RSS (VmHWM), upload / fetch, after \(sizes.map(sizeName).joined(separator: " and "))",
            measured: peaks.joined(separator: "; "),
            reference: "peak RSS at \(sizeName(largest)): " + curlPeaks, ratio: nil,
            goal: "≤ 24 MiB, flat in the size",
            met: allPeaks.count == 2 * sizes.count && allPeaks.allSatisfy { $0 <= 24 * 1024 } && flat,
            note:
                "VmHWM of the agent's bgsync-worker child, one agent per handler (its worker's peak over its life, so the \(sizeName(largest)) figure covers the \(sizeName(sizes.min()!)) rounds too); flat means at most 1 MiB more at \(sizeName(largest)). curl's from wait4."
        ))
    return rows
}

private struct TransferFigures {
    var agentSeconds: [Int: Double] = [:]
    var curlSeconds: [Int: Double] = [:]
    var workerPeakKiB: [Int: Int] = [:]
    var curlPeakKiB = 0
    var note = ""
}

private func uploadFigures(setup: Setup, bus: PrivateBus, work: String, server: TransferServer) throws
    -> TransferFigures
{
    let outbox = work + "/outbox"
    try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
    let agent = try AgentProcess(setup: setup, bus: bus, name: "upload", config: benchConfig, systemBus: nil)
    defer { agent.stop() }
    let sampler = WorkerPeakSampler(agentPID: agent.pid)
    defer { sampler.stop() }
    let client = try BusClient(address: bus.address)
    let finished = try finishedSignals(client)
    var figures = TransferFigures()
    var serial = 0
    var notes: [String] = []
    for size in sizes {
        let source = work + "/upload-\(size)"
        try makeSparseFile(source, size: size)
        try readThrough(source)
        var agentTimes: [Double] = []
        var curlTimes: [Double] = []
        for _ in 0..<rounds {
            let url = server.url + "/upload/curl-\(serial)"
            let start = now()
            let curl = spawnAndWait(["/usr/bin/curl", "-s", "-f", "-o", "/dev/null", "-T", source, url])
            curlTimes.append(seconds(since: start))
            guard curl.status == 0 else { throw BenchError("curl -T to \(url) failed (status \(curl.status))") }
            figures.curlPeakKiB = max(figures.curlPeakKiB, curl.maxRSSKiB)
            try server.expectBody(path: "/upload/curl-\(serial)", length: size)

            // Complete when it appears (a link, like the app's rename, is atomic).
            guard link(source, outbox + "/\(serial).bin") == 0 else { throw BenchError("cannot link \(source)") }
            let tag = "up\(serial)"
            let agentStart = now()
            try client.register(
                app: "org.bench.Transfer", tag: tag, handler: "upload",
                options: [
                    ("outbox", .string(outbox)), ("url", .string(server.url + "/upload/agent-\(serial)")),
                    ("method", .string("PUT")),
                ])
            try client.wait(timeout: 120, what: "SyncFinished of upload \(tag)") { finished.with { $0[tag] != nil } }
            agentTimes.append(seconds(since: agentStart))
            let outcome = finished.with { $0[tag]! }
            guard outcome.outcome == "succeeded" else {
                throw BenchError(
                    "upload \(tag) ended \(outcome.outcome): \(outcome.detail) (see \(work)/upload/agent.log)")
            }
            try server.expectBody(path: "/upload/agent-\(serial)", length: size)
            serial += 1
        }
        try? FileManager.default.removeItem(atPath: source)
        figures.agentSeconds[size] = agentTimes.min()
        figures.curlSeconds[size] = curlTimes.min()
        figures.workerPeakKiB[size] = sampler.peakKiB()
        let line = "\(sizeName(size)): agent \(secondsList(agentTimes)), curl \(secondsList(curlTimes))"
        log("upload " + line + ", worker peak \(sampler.peakKiB().map(formatBytes) ?? "?")")
        notes.append(line)
    }
    figures.note =
        "every round (agent / curl -T): " + notes.joined(separator: "; ") + "; ratio is curl's time ÷ the agent's."
    return figures
}

private func fetchFigures(setup: Setup, bus: PrivateBus, work: String, server: TransferServer) throws
    -> TransferFigures
{
    let fetched = work + "/fetched"
    let curlCopy = work + "/curl-copy"
    let agent = try AgentProcess(setup: setup, bus: bus, name: "fetch", config: benchConfig, systemBus: nil)
    defer { agent.stop() }
    let sampler = WorkerPeakSampler(agentPID: agent.pid)
    defer { sampler.stop() }
    let client = try BusClient(address: bus.address)
    let finished = try finishedSignals(client)
    var figures = TransferFigures()
    var serial = 0
    var notes: [String] = []
    var syncedCurl: [Int: Double] = [:]
    for size in sizes {
        let name = "download-\(size)"
        try makeSparseFile(server.served + "/" + name, size: size)
        try readThrough(server.served + "/" + name)
        let url = server.url + "/files/" + name
        var agentTimes: [Double] = []
        var curlTimes: [Double] = []
        var curlSyncTimes: [Double] = []
        for _ in 0..<rounds {
            let start = now()
            let curl = spawnAndWait(["/usr/bin/curl", "-s", "-f", "-o", curlCopy, url])
            curlTimes.append(seconds(since: start))
            guard curl.status == 0 else { throw BenchError("curl -o from \(url) failed (status \(curl.status))") }
            figures.curlPeakKiB = max(figures.curlPeakKiB, curl.maxRSSKiB)
            try expectFile(curlCopy, size: size)
            // For the note: what curl's copy costs to make durable, as the handler does before
            // its rename (and so that its write-back does not fall on the agent's round).
            let syncStart = now()
            guard try run(["/usr/bin/sync", "--data", curlCopy]) == 0 else { throw BenchError("sync --data failed") }
            curlSyncTimes.append(curlTimes.last! + seconds(since: syncStart))
            try FileManager.default.removeItem(atPath: curlCopy)

            let tag = "down\(serial)"
            let agentStart = now()
            try client.register(
                app: "org.bench.Transfer", tag: tag, handler: "fetch",
                options: [("url", .string(url)), ("directory", .string(fetched))])
            try client.wait(timeout: 120, what: "SyncFinished of fetch \(tag)") { finished.with { $0[tag] != nil } }
            agentTimes.append(seconds(since: agentStart))
            let outcome = finished.with { $0[tag]! }
            guard outcome.outcome == "succeeded" else {
                throw BenchError(
                    "fetch \(tag) ended \(outcome.outcome): \(outcome.detail) (see \(work)/fetch/agent.log)")
            }
            try expectFile(fetched + "/" + name, size: size)
            // The whole directory, with the handler's record of the file: the next round fetches anew.
            try FileManager.default.removeItem(atPath: fetched)
            serial += 1
        }
        try? FileManager.default.removeItem(atPath: server.served + "/" + name)
        figures.agentSeconds[size] = agentTimes.min()
        figures.curlSeconds[size] = curlTimes.min()
        figures.workerPeakKiB[size] = sampler.peakKiB()
        syncedCurl[size] = curlSyncTimes.min()
        let line =
            "\(sizeName(size)): agent \(secondsList(agentTimes)), curl \(secondsList(curlTimes)) (with sync --data \(secondsList(curlSyncTimes)))"
        log("fetch " + line + ", worker peak \(sampler.peakKiB().map(formatBytes) ?? "?")")
        notes.append(line)
    }
    let largest = sizes.max()!
    figures.note =
        "the handler syncs the file before renaming it into place, curl -o does not: curl followed by `sync --data` of its copy took "
        + transferText(bytes: largest, seconds: syncedCurl[largest]!)
        + String(format: " (the agent's rate is %.2f× that). ", syncedCurl[largest]! / figures.agentSeconds[largest]!)
        + "Every round (agent / curl -o): " + notes.joined(separator: "; ") + "."
    return figures
}

/// SyncFinished signals by tag, for all apps (the client subscribes to every app).
private func finishedSignals(_ client: BusClient) throws -> Locked<[String: (outcome: String, detail: String)]> {
    let finished = Locked<[String: (outcome: String, detail: String)]>([:])
    try client.onAgentSignal("SyncFinished") { signal in
        guard signal.arguments.count > 3, case .string(let tag) = signal.arguments[1],
            case .string(let outcome) = signal.arguments[2], case .string(let detail) = signal.arguments[3]
        else { return }
        finished.with { $0[tag] = (outcome, detail) }
    }
    return finished
}

/// A shipped handler copied beside the no-op one (as the send-while-online part does).
func installHandler(setup: Setup, name: String) throws {
    let plugin = setup.pluginDirectory + "/\(name).so"
    guard !FileManager.default.fileExists(atPath: plugin) else { return }
    try FileManager.default.copyItem(atPath: setup.binDirectory + "/libbgsync-handler-\(name).so", toPath: plugin)
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: plugin)
}

private func makeSparseFile(_ path: String, size: Int) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil), truncate(path, off_t(size)) == 0 else {
        throw BenchError("cannot make the \(size)-byte file \(path)")
    }
}

/// Reads a file to its end, so that the rounds find its pages cached.
private func readThrough(_ path: String) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw BenchError("cannot open \(path)") }
    defer { close(fd) }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4 << 20, alignment: 4096)
    defer { buffer.deallocate() }
    while read(fd, buffer, 4 << 20) > 0 {}
}

private func expectFile(_ path: String, size: Int) throws {
    let actual = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
    guard actual == size else { throw BenchError("\(path) has \(actual.map(String.init) ?? "no") bytes, not \(size)") }
}

private func sizeName(_ bytes: Int) -> String {
    bytes >= 1 << 30 ? "\(bytes >> 30) GiB" : "\(bytes >> 20) MiB"
}

private func transferText(bytes: Int, seconds: Double) -> String {
    String(format: "%.2f s (%.0f MiB/s)", seconds, Double(bytes) / Double(mebibyte) / seconds)
}

private func secondsList(_ times: [Double]) -> String {
    times.map { String(format: "%.2f", $0) }.joined(separator: ", ") + " s"
}

/// The highest VmHWM of the agent's bgsync-worker children, sampled every 10 ms on a thread of
/// its own (a worker that exits between samples keeps the last value seen).
private final class WorkerPeakSampler: @unchecked Sendable {
    private let peaks = Locked<[Int32: Int]>([:])
    private let running = Locked(true)
    private let done = DispatchSemaphore(value: 0)
    private let agentPID: Int32

    init(agentPID: Int32) {
        self.agentPID = agentPID
        Thread { [self] in
            while running.with({ $0 }) {
                sample()
                usleep(10_000)
            }
            done.signal()
        }.start()
    }

    private func sample() {
        for pid in childPIDs(of: agentPID) {
            let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            guard comm.hasPrefix("bgsync-worker"), let hwm = procStatusKiB(pid: pid, field: "VmHWM") else { continue }
            peaks.with { $0[pid] = max($0[pid] ?? 0, hwm) }
        }
    }

    func peakKiB() -> Int? {
        sample()
        return peaks.with { $0.values.max() }
    }

    func stop() {
        guard running.with({ $0 }) else { return }
        running.with { $0 = false }
        done.wait()
    }
}

/// Benchmarks/transfer_server.py on loopback; the bodies it received, read from its output.
final class TransferServer {
    let process: Child
    let url: String
    let served: String
    private let output: String

    init(setup: Setup, work: String, served: String) throws {
        self.served = served
        output = work + "/server.out"
        process = try Child(
            ["/usr/bin/python3", setup.rootDirectory + "/Benchmarks/transfer_server.py", "--dir", served],
            outputPath: output)
        let deadline = Date().addingTimeInterval(15)
        var port: String?
        while port == nil, Date() < deadline, process.isRunning {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first, Int(line) != nil {
                port = String(line)
            } else {
                usleep(10_000)
            }
        }
        guard let port else { throw BenchError("transfer_server.py printed no port (see \(output))") }
        url = "http://127.0.0.1:\(port)"
    }

    /// The bodies received so far, in order: path, arrived and done (Unix seconds), length.
    func bodies() -> [(path: String, arrived: Double, done: Double, length: Int)] {
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").dropFirst().compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let path = object["path"] as? String, let arrived = object["arrived"] as? Double,
                let done = object["done"] as? Double, let length = object["length"] as? Int
            else { return nil }
            return (path, arrived, done, length)
        }
    }

    /// The body sent to `path`, waited for at most 10 s.
    func body(path: String) throws -> (path: String, arrived: Double, done: Double, length: Int) {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let body = bodies().last(where: { $0.path == path }) { return body }
            usleep(1_000)
        }
        throw BenchError("no body for \(path) at the server within 10 s (see \(output))")
    }

    func expectBody(path: String, length: Int) throws {
        let received = try body(path: path).length
        guard received == length else {
            throw BenchError("the server got \(received) bytes for \(path), not \(length)")
        }
    }
}
