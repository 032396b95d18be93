// SPDX-License-Identifier: Apache-2.0
// Send while online: a finished message is renamed into an outbox and registered for the
// `upload` handler while online; timed from Register until the POST reaches a real HTTP server
// on loopback (Tests/HandlerTestKit/http_server.py, which stamps each request as it arrives).
// Reference, same run and same server: a `curl` process posting the same body.
import DBusKit
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

func sendWhileOnlineRows(setup: Setup, bus: PrivateBus) throws -> [Row] {
    let messages = 12
    let work = setup.workDirectory + "/send"
    let outbox = work + "/outbox"
    try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
    // The shipped upload handler beside the no-op one.
    let upload = setup.pluginDirectory + "/upload.so"
    if !FileManager.default.fileExists(atPath: upload) {
        try FileManager.default.copyItem(atPath: setup.binDirectory + "/libbgsync-handler-upload.so", toPath: upload)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: upload)
    }
    let server = try InboxServer(setup: setup, work: work)
    defer { server.process.stop() }
    let agent = try AgentProcess(setup: setup, bus: bus, name: "send", config: benchConfig, systemBus: nil)
    defer { agent.stop() }
    let client = try BusClient(address: bus.address)
    var finished: [String] = []
    try client.onAgentSignal("SyncFinished") { signal in
        if signal.arguments.count > 2, case .string(let outcome) = signal.arguments[2] { finished.append(outcome) }
    }
    let body = Data(#"{"text": "a message sent while online"}"#.utf8)

    var agentTimes: [Double] = []
    for n in 0..<messages {
        let part = outbox + "/\(n).json.part"
        try body.write(to: URL(fileURLWithPath: part))
        guard rename(part, outbox + "/\(n).json") == 0 else { throw BenchError("cannot rename \(part)") }
        let before = server.requestCount()
        let start = Date().timeIntervalSince1970
        _ = try client.call(
            destination: BusClient.name, path: BusClient.path, interface: BusClient.interface, method: "Register",
            arguments: [
                .string("org.bench.Send"), .string("outbox"), .string("upload"),
                .stringVariantDictionary([("outbox", .string(outbox)), ("url", .string(server.url))]),
            ])
        try client.wait(timeout: 30, what: "SyncFinished of message \(n)") { finished.count > n }
        let arrived = try server.arrivalTime(index: before)
        agentTimes.append(arrived - start)
    }
    let retries = finished.filter { $0 != "succeeded" }.count

    let file = work + "/body.json"
    try body.write(to: URL(fileURLWithPath: file))
    var curlTimes: [Double] = []
    for _ in 0..<messages {
        let before = server.requestCount()
        let start = Date().timeIntervalSince1970
        guard
            try run([
                "/usr/bin/curl", "-s", "-o", "/dev/null", "-H", "Content-Type: application/octet-stream",
                "--data-binary", "@" + file, server.url,
            ]) == 0
        else { throw BenchError("curl could not post to \(server.url)") }
        curlTimes.append(try server.arrivalTime(index: before) - start)
    }
    let agentMedian = median(agentTimes)
    let curlMedian = median(curlTimes)
    log(
        String(
            format: "send while online: Register → POST median %.1f ms (%d not succeeded); curl %.1f ms",
            agentMedian * 1000, retries, curlMedian * 1000))
    let ratio = agentMedian / curlMedian
    return [
        Row(
            figure: "Send while online: Register → POST received, median of \(messages)",
            measured: formatDuration(nanoseconds: agentMedian * 1e9)
                + (retries == 0 ? "" : " (\(retries) not at attempt 1)"),
            reference: "curl process posting the same body: " + formatDuration(nanoseconds: curlMedian * 1e9),
            ratio: ratio, goal: "no slower than curl", met: ratio <= 1 && retries == 0,
            note: "ratio is agent ÷ curl; both timed to the server's arrival stamp.")
    ]
}

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

/// http_server.py on loopback; its requests (with arrival times) read back over HTTP.
private final class InboxServer {
    let process: Child
    let url: String
    private let control: String

    init(setup: Setup, work: String) throws {
        let output = work + "/server.out"
        process = try Child(
            ["/usr/bin/python3", setup.rootDirectory + "/Tests/HandlerTestKit/http_server.py", "--until-killed"],
            outputPath: output)
        let deadline = Date().addingTimeInterval(15)
        var port: String?
        while port == nil, Date() < deadline {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first, Int(line) != nil {
                port = String(line)
            } else {
                usleep(10_000)
            }
        }
        guard let port else { throw BenchError("http_server.py printed no port (see \(output))") }
        url = "http://127.0.0.1:\(port)/inbox"
        control = "http://127.0.0.1:\(port)/_control/requests"
    }

    private func requests() throws -> [[String: Any]] {
        let data = try fetch(control)
        guard let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw BenchError("http_server.py sent an unreadable request list")
        }
        return list
    }

    /// A GET on loopback, waited for (Foundation's Data(contentsOf:) reads only files here).
    private func fetch(_ address: String) throws -> Data {
        let result = Locked<Data?>(nil)
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: URL(string: address)!) { data, _, _ in
            result.with { $0 = data }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 10) == .success, let data = result.with({ $0 }) else {
            throw BenchError("no answer from \(address)")
        }
        return data
    }

    func requestCount() -> Int { (try? requests().count) ?? 0 }

    /// When request `index` (0-based) arrived (Unix seconds), waiting for it at most 10 s.
    func arrivalTime(index: Int) throws -> Double {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let list = try requests()
            if list.count > index, let time = list[index]["time"] as? Double { return time }
            usleep(2_000)
        }
        throw BenchError("no request \(index) at the server within 10 s")
    }
}
