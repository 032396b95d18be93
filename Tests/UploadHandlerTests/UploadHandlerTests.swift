// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import Foundation
import HandlerTestKit
import Testing
import UploadHandler

@Suite final class UploadHandlerTests {
    let server: TestHTTPServer
    let outbox: TemporaryDirectory

    init() throws {
        server = try TestHTTPServer()
        outbox = try TemporaryDirectory()
    }

    deinit { outbox.remove() }

    func upload(seconds: Double = 10, extra: [String: Value] = [:]) -> HandlerResult {
        var options: [String: Value] = ["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))]
        options.merge(extra) { $1 }
        let result = UploadHandler().handle(event(options, seconds: seconds), log: .discard)
        outbox.remove()
        return result
    }

    @Test func sendsOldestFirstThenDeletesEachAfter2xx() throws {
        try outbox.write("b", "second", age: 30)
        try outbox.write("a", "third", age: 20)
        try outbox.write("z", "first", age: 40)
        try outbox.write("n2", "fifth", age: 5)
        try outbox.write("n1", "fourth", age: 5)
        let same = Date(timeIntervalSinceNow: -5)
        try outbox.touch("n1", at: same)  // same mtime: by name
        try outbox.touch("n2", at: same)
        let names = { self.outbox.names() }
        var options: [String: Value] = ["headers": ["Authorization": "Bearer t", "Content-Type": "application/json"]]
        options["method"] = "put"
        var result: HandlerResult = .failure("")
        result = UploadHandler().handle(
            event(["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))].merging(options) { $1 }),
            log: .discard)
        let left = names()
        outbox.remove()

        #expect(result == .success("sent 5 files"))
        #expect(left.isEmpty)
        let received = try server.received()
        #expect(received.map(\.body) == ["first", "second", "third", "fourth", "fifth"])
        #expect(received.allSatisfy { $0.method == "PUT" && $0.path == "/inbox" })
        #expect(received.first?.headers["authorization"] == "Bearer t")
        #expect(received.first?.headers["content-type"] == "application/json")
    }

    @Test func serverBusyStopsWithRetryAfterAndKeepsTheRest() throws {
        try outbox.write("1", "one", age: 30)
        try outbox.write("2", "two", age: 20)
        try outbox.write("3", "three", age: 10)
        try server.program(responses: [["status": 200], ["status": 503, "headers": ["Retry-After": "7"]]])
        let result = UploadHandler().handle(
            event(["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))]), log: .discard)
        let left = outbox.names()
        outbox.remove()

        #expect(result == .retry(after: 7, "HTTP 503, 1 file sent, 2 files left"))
        #expect(left == ["2", "3"])
        #expect(try server.received().map(\.body) == ["one", "two"])
    }

    @Test func rejectedFileMovesToFailedAndTheRestGoOn() throws {
        try outbox.write("bad", "bad", age: 30)
        try outbox.write("good", "good", age: 20)
        try server.program(responses: [["status": 400]])
        let result = UploadHandler().handle(
            event(["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))]), log: .discard)
        let left = outbox.names()
        let failed = outbox.names("failed")
        let kept = outbox.read("failed/bad")
        outbox.remove()

        #expect(result == .success("sent 1 file, 1 rejected (moved to failed/)"))
        #expect(left == ["failed"])
        #expect(failed == ["bad"])
        #expect(kept == "bad")
    }

    /// libcurl sends a request once more when a kept-alive connection turns out closed before any
    /// answer (as browsers do), so the server drops both: the second is on a fresh connection.
    @Test func droppedConnectionRetriesAndLosesNothing() throws {
        try outbox.write("1", "one", age: 30)
        try outbox.write("2", "two", age: 20)
        try server.program(responses: [["drop": true], ["drop": true]])
        let result = UploadHandler().handle(
            event(["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))]), log: .discard)
        let left = outbox.names()
        outbox.remove()

        guard case .retry(nil, let detail, _) = result else {
            Issue.record("expected a retry, got \(result)")
            return
        }
        #expect(detail.hasSuffix("2 files left"))
        #expect(left == ["1", "2"])
        let received = try server.received()
        #expect((1...2).contains(received.count) && received.allSatisfy { $0.body == "one" })
    }

    @Test func slowServerPastTheDeadlineRetriesAndKeepsTheFile() throws {
        try outbox.write("1", "one", age: 30)
        try server.program(responses: [["delay": 8, "status": 200]])
        let started = Date()
        let result = UploadHandler().handle(
            event(["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))], seconds: 2), log: .discard)
        let elapsed = Date().timeIntervalSince(started)
        let left = outbox.names()
        outbox.remove()

        guard case .retry = result else {
            Issue.record("expected a retry, got \(result)")
            return
        }
        #expect(elapsed < 2, "the request must give up before the event's deadline")
        #expect(left == ["1"])
    }

    @Test func filesNamedAsBeingWrittenAreNotSentAndTheRestGoAtOnce() throws {
        try outbox.write("done", "done", age: 10)
        try outbox.write("fresh", "fresh", age: 0)  // just renamed in: complete, sent now
        try outbox.write("draft.part", "draft", age: 10)
        try outbox.write("draft.tmp", "draft", age: 10)
        try outbox.write("draft~", "draft", age: 10)
        try outbox.write(".hidden", "hidden", age: 10)
        try FileManager.default.createDirectory(atPath: outbox.path + "/subdir", withIntermediateDirectories: false)
        let control = HandlerControl()
        let result = UploadHandler().handle(
            event(["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))], control: control),
            log: .discard)
        let left = outbox.names()
        outbox.remove()

        // Not-ready names cost nothing: the event succeeds, with no retry to wait for.
        #expect(result == .success("sent 2 files"))
        #expect(try server.received().map(\.body) == ["done", "fresh"])
        #expect(left == [".hidden", "draft.part", "draft.tmp", "draft~", "subdir"])
        #expect(control.reports.map(\.done) == [1, 2])
        #expect(control.reports.last?.total == 2)
        #expect(control.reports.last?.text == "2 files sent, 9 bytes")
    }

    @Test func aStopRequestEndsTheEventBetweenFilesAndKeepsTheRest() throws {
        try outbox.write("1", "one", age: 30)
        try outbox.write("2", "two", age: 20)
        try outbox.write("3", "three", age: 10)
        let stop = StopFlag()
        // The agent's stop comes after the first file was accepted.
        let control = HandlerControl(
            cancelled: { stop.isSet },
            progress: { done, _, _ in
                if done == 1 { stop.set() }
                return nil
            })
        let result = UploadHandler().handle(
            event(["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))], control: control),
            log: .discard)
        let left = outbox.names()
        outbox.remove()

        #expect(result == .retry(after: nil, "stopped, 1 file sent, 2 files left"))
        #expect(try server.received().map(\.body) == ["one"])
        #expect(left == ["2", "3"])
    }

    @Test func aStopRequestDropsARequestInFlight() throws {
        try outbox.write("1", "one", age: 30)
        try server.program(responses: [["delay": 8, "status": 200]])
        let stop = StopFlag()
        let control = HandlerControl(cancelled: { stop.isSet })
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { stop.set() }
        let started = Date()
        let result = UploadHandler().handle(
            event(
                ["outbox": .string(outbox.path), "url": .string(server.url("/inbox"))], seconds: 30, control: control),
            log: .discard)
        let elapsed = Date().timeIntervalSince(started)
        let left = outbox.names()
        outbox.remove()

        guard case .retry(nil, let detail, _) = result else {
            Issue.record("expected a retry, got \(result)")
            return
        }
        #expect(detail.hasPrefix("stopped"))
        #expect(elapsed < 4, "the stop must end the request long before the server's 8 s answer")
        #expect(left == ["1"])
    }

    @Test func badOptionsFailWithoutSending() throws {
        #expect(upload(extra: ["url": "ftp://example.org/x"]).detail.contains("http or https"))
        guard case .failure(let missing) = UploadHandler().handle(event(["url": "http://127.0.0.1/"]), log: .discard)
        else {
            Issue.record("a missing outbox must fail")
            return
        }
        #expect(missing.contains("'outbox' is missing"))
        #expect(
            UploadHandler().handle(event(["outbox": "outbox", "url": "http://127.0.0.1/"]), log: .discard)
                == .failure("option 'outbox' must be an absolute path, not 'outbox'"))
        guard case .failure = upload(extra: ["headers": ["not", "a", "dictionary"]]) else {
            Issue.record("headers of the wrong type must fail")
            return
        }
        #expect(try server.received().isEmpty)
    }
}
