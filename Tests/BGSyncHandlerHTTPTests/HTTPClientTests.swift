// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import Foundation
import HandlerTestKit
import TestKit
import Testing

/// HTTPClient against a real HTTP server on loopback (http_server.py): bodies stream from and to
/// file descriptors, connections are kept, a stop ends a transfer at once, and what a caller or a
/// server sends cannot turn a request into something else.
@Suite(.serialized) struct HTTPClientTests {
    let server: TestHTTPServer
    let directory: TemporaryDirectory

    init() throws {
        server = try TestHTTPServer()
        directory = try TemporaryDirectory()
    }

    /// A file of `size` bytes of a pattern, opened for reading, and its sha256.
    func patternFile(_ name: String, size: Int) throws -> (fd: Int32, sha256: String) {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        try Data(bytes).write(to: URL(fileURLWithPath: directory.path + "/" + name))
        let fd = open(directory.path + "/" + name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TestFailure("cannot open \(name)") }
        return (fd, try sha256(directory.path + "/" + name))
    }

    func sha256(_ path: String) throws -> String {
        let child = try ChildProcess(["/usr/bin/sha256sum", path])
        guard let line = try child.readLine(timeout: 30) else { throw TestFailure("sha256sum printed nothing") }
        return String(line.prefix(64))
    }

    @Test func aFileBodyStreamsFromItsOffsetAndArrivesWhole() throws {
        defer { directory.remove() }
        let size = 5 * 1024 * 1024 + 17
        let (fd, _) = try patternFile("body", size: size)
        defer { close(fd) }
        // The part after the first 1000 bytes, as a resumed upload sends it.
        let tail = try Data(contentsOf: URL(fileURLWithPath: directory.path + "/body")).dropFirst(1000)
        try tail.write(to: URL(fileURLWithPath: directory.path + "/tail"))
        var reports: [HTTPProgress] = []
        var request = HTTPRequest(
            method: "POST", url: server.url("/upload"), headers: [("Content-Type", "application/octet-stream")],
            body: .file(fd: fd, offset: 1000, length: Int64(size - 1000)), response: .discard,
            timeLeft: { 30 })
        request.onProgress = { reports.append($0) }
        let result = HTTPClient.shared.send(request)

        guard case .success(let response) = result else {
            Issue.record("expected a response, got \(result)")
            return
        }
        #expect(response.status == 200)
        #expect(response.bytesSent == UInt64(size - 1000))
        let received = try server.received()
        #expect(received.map(\.length) == [size - 1000])
        #expect(received.first?.sha256 == (try sha256(directory.path + "/tail")))
        #expect(received.first?.headers["expect"] == nil, "no 100-continue wait")
        // Progress went up as it moved, and ended with all of it.
        #expect(reports.count >= 2)
        #expect(zip(reports, reports.dropFirst()).allSatisfy { $0.sent <= $1.sent })
        #expect(reports.last?.sent == UInt64(size - 1000))
    }

    @Test func aResponseStreamsToAFileAndItsHeadComesFirst() throws {
        defer { directory.remove() }
        let size = 3 * 1024 * 1024 + 5
        let fd = open(directory.path + "/download", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        var heads: [(Int, String?)] = []
        var request = HTTPRequest(
            url: server.url("/_control/blob?size=\(size)"), response: .file(fd: fd), timeLeft: { 30 })
        request.onResponseHead = { status, headers in
            heads.append((status, headers.last { $0.name == "content-length" }?.value))
            return true
        }
        let result = HTTPClient.shared.send(request)
        close(fd)

        guard case .success(let response) = result else {
            Issue.record("expected a response, got \(result)")
            return
        }
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(response.bytesReceived == UInt64(size))
        #expect(heads.count == 1 && heads[0].0 == 200 && heads[0].1 == String(size))
        let written = try Data(contentsOf: URL(fileURLWithPath: directory.path + "/download"))
        #expect(written.count == size)
        #expect(written.enumerated().allSatisfy { $0.element == UInt8($0.offset % 251) })
    }

    @Test func aBufferedResponseOverItsLimitFails() throws {
        defer { directory.remove() }
        let request = HTTPRequest(
            url: server.url("/_control/blob?size=\(2 << 20)"), response: .buffer(limit: 1 << 20), timeout: 30)
        let result = HTTPClient.shared.send(request)
        guard case .failure(let failure) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(failure.code == .responseTooLarge)
    }

    @Test func aFileResponseOverItsLimitFailsAndStopsWriting() throws {
        defer { directory.remove() }
        let fd = open(directory.path + "/capped", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        defer { close(fd) }
        let request = HTTPRequest(
            url: server.url("/_control/blob?size=\(4 << 20)"), response: .file(fd: fd, limit: 1 << 20), timeout: 30)
        let result = HTTPClient.shared.send(request)
        guard case .failure(let failure) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(failure.code == .responseTooLarge)
        var info = stat()
        #expect(fstat(fd, &info) == 0 && info.st_size <= 1 << 20)
    }

    @Test func connectionsAreKeptAcrossRequests() throws {
        defer { directory.remove() }
        for _ in 0..<3 {
            let result = HTTPClient.shared.send(
                HTTPRequest(method: "POST", url: server.url("/a"), body: .bytes([1, 2, 3]), timeout: 10))
            guard case .success(let response) = result, response.status == 200 else {
                Issue.record("expected 200, got \(result)")
                return
            }
        }
        let peers = try server.received().map(\.peer)
        #expect(peers.count == 3)
        #expect(Set(peers).count == 1, "one connection for all three: \(peers)")
    }

    @Test func aHeaderWithALineBreakIsRefusedAndNothingIsSent() throws {
        defer { directory.remove() }
        for header in [("X-Note", "a\r\nX-Evil: 1"), ("X-Note", "a\nb"), ("Bad Name", "x"), ("", "x")] {
            let result = HTTPClient.shared.send(
                HTTPRequest(method: "POST", url: server.url("/a"), headers: [header], body: .bytes([1]), timeout: 10))
            guard case .failure(let failure) = result else {
                Issue.record("expected a refusal for \(header), got \(result)")
                continue
            }
            #expect(failure.code == .invalidRequest)
        }
        #expect(try server.received().isEmpty)
    }

    @Test func aRedirectLeadsOnlyToHTTP() throws {
        defer { directory.remove() }
        try server.program(responses: [["status": 302, "headers": ["Location": "file:///etc/passwd"]]])
        let result = HTTPClient.shared.send(HTTPRequest(url: server.url("/r"), timeout: 10))
        if case .success(let response) = result {
            #expect(response.status == 302, "not followed")
            #expect(!response.text.contains("root:"))
        }
        try server.program(responses: [["status": 307, "headers": ["Location": server.url("/there")]]])
        let followed = HTTPClient.shared.send(
            HTTPRequest(method: "POST", url: server.url("/here"), body: .bytes(Array("again".utf8)), timeout: 10))
        guard case .success(let response) = followed else {
            Issue.record("expected the redirect followed, got \(followed)")
            return
        }
        #expect(response.status == 200)
        // A 307 keeps the method and sends the body again (rewound through the seek callback).
        #expect(
            try server.received().suffix(2).map { "\($0.method) \($0.path) \($0.body)" } == [
                "POST /here again", "POST /there again",
            ])
    }

    @Test func theCancelDescriptorEndsATransferAtOnce() throws {
        defer { directory.remove() }
        try server.program(responses: [["delay": 8, "status": 200]])
        var pair: [Int32] = [-1, -1]
        #expect(pipe(&pair) == 0)
        defer {
            close(pair[0])
            close(pair[1])
        }
        let writeEnd = pair[1]
        Thread.detachNewThread {
            usleep(300_000)
            _ = write(writeEnd, "x", 1)
        }
        let started = Date()
        let result = HTTPClient.shared.send(
            HTTPRequest(url: server.url("/slow"), timeLeft: { 30 }, cancelFD: pair[0]))
        let elapsed = Date().timeIntervalSince(started)
        guard case .failure(let failure) = result else {
            Issue.record("expected a stop, got \(result)")
            return
        }
        #expect(failure.code == .cancelled)
        #expect(elapsed < 2, "stopped after \(elapsed) s")
    }

    @Test func timeLeftIsAskedAgainWhileItRuns() throws {
        defer { directory.remove() }
        try server.program(responses: [["delay": 8, "status": 200]])
        let end = Date().addingTimeInterval(1)
        let started = Date()
        let result = HTTPClient.shared.send(
            HTTPRequest(url: server.url("/slow"), timeLeft: { end.timeIntervalSinceNow }))
        let elapsed = Date().timeIntervalSince(started)
        guard case .failure(let failure) = result else {
            Issue.record("expected a timeout, got \(result)")
            return
        }
        #expect(failure.code == .timedOut)
        #expect(elapsed >= 0.9 && elapsed < 2)
    }

    @Test func urlsAreCheckedByTheParserThatSendsThem() {
        #expect(HTTPURL.check("https://example.org/x") != nil)
        #expect(HTTPURL.check("HTTP://127.0.0.1:8080") != nil)
        for bad in ["file:///etc/passwd", "ftp://example.org/", "http://", "example.org", "http://a b/", ""] {
            #expect(HTTPURL.check(bad) == nil, "\(bad)")
        }
    }
}
