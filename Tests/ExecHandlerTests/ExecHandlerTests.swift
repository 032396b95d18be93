// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import ExecHandler
import Foundation
import HandlerTestKit
import Testing

@Suite struct ExecHandlerTests {
    func run(_ command: Value, seconds: Double = 10, attempt: UInt32 = 1, lastChance: Bool = false) -> HandlerResult {
        ExecHandler().handle(
            event(["command": command], seconds: seconds, attempt: attempt, lastChance: lastChance), log: .discard)
    }

    @Test func childSeesTheEventInItsEnvironment() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let out = directory.path + "/env"
        let script =
            "printf '%s|%s|%s|%s|%s' \"$BGSYNC_APP_ID\" \"$BGSYNC_TAG\" \"$BGSYNC_ATTEMPT\" \"$BGSYNC_LAST_CHANCE\" \"$HOME\" > \"$1\""
        #expect(
            run(["/bin/sh", "-c", script, "sh", .init(stringLiteral: out)], attempt: 3, lastChance: true).detail
                == "/bin/sh succeeded")
        let home = ProcessInfo.processInfo.environment["HOME"] ?? ""
        #expect(directory.read("env") == "org.example.App|outbox|3|1|\(home)")
        #expect(run(["/bin/sh", "-c", "test \"$BGSYNC_LAST_CHANCE\" = 0"]) == .success("/bin/sh succeeded"))
    }

    @Test func exitStatusDecidesTheOutcome() {
        #expect(run("/bin/true") == .success("/bin/true succeeded"))
        #expect(run(["/bin/sh", "-c", "exit 75"]) == .retry(after: nil, "/bin/sh asked to retry (exit 75)"))
        #expect(
            run(["/bin/sh", "-c", "echo starting >&2; echo disk full >&2; exit 3"])
                == .retry(after: nil, "exited with status 3: disk full"))
        #expect(run(["/bin/sh", "-c", "kill -TERM $$"]) == .retry(after: nil, "killed by signal 15 (Terminated)"))
    }

    @Test func argumentsReachTheProgramWithoutAShell() {
        // ls gets the text verbatim: no expansion, no second command.
        let detail = run(["ls", "/nonexistent/$(id) ; echo `x`"]).detail
        #expect(detail.hasPrefix("exited with status 2: "))
        #expect(detail.contains("/nonexistent/$(id) ; echo `x`"))
    }

    @Test func commandsThatCannotRunFail() {
        #expect(run(["/nonexistent/program"]) == .failure("program not found: /nonexistent/program"))
        #expect(run(["no-such-program-bgsync"]) == .failure("program not found: no-such-program-bgsync"))
        #expect(run([]).detail.contains("'command' is empty"))
        #expect(run(5).detail.contains("must be an array of strings (as) or a program (s), not x"))
        guard case .failure(let missing) = ExecHandler().handle(event([:]), log: .discard) else {
            Issue.record("a missing command must fail")
            return
        }
        #expect(missing.contains("'command' is missing"))
    }

    @Test func overrunningChildIsKilledWithItsProcessGroup() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let pidFile = directory.path + "/pid"
        let started = Date()
        // A grandchild in the background, and a shell that ignores SIGTERM.
        let result = run(
            [
                "/bin/sh", "-c", "trap '' TERM; sleep 60 & echo $! > \"$1\"; wait; sleep 60", "sh",
                .init(stringLiteral: pidFile),
            ],
            seconds: 2)
        let elapsed = Date().timeIntervalSince(started)

        guard case .retry(nil, let detail, _) = result else {
            Issue.record("expected a retry, got \(result)")
            return
        }
        #expect(detail.hasPrefix("timed out after"))
        #expect(elapsed < 2, "the child must be gone before the event's deadline")
        let grandchild = try #require(
            directory.read("pid").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        #expect(waitUntilGone(grandchild, timeout: 5), "the background grandchild must be killed too")
    }
}

/// The built exec handler library, next to the test binary (`swift build --build-tests` builds it).
private let execLibrary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("libbgsync-handler-exec.so").path

@Suite struct ExecWorkerDeathTests {
    /// A stand-in worker (exec_worker.py) loads the real library through the C ABI and runs a
    /// command; SIGKILL of the worker must take the command with it.
    @Test(
        .enabled(
            if: FileManager.default.fileExists(atPath: execLibrary),
            "needs libbgsync-handler-exec.so: run `swift build --build-tests` first"))
    func commandDiesWithTheWorker() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fifo = directory.path + "/pid"
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        defer { close(reader) }

        let worker = try ScriptProcess(
            "exec_worker.py", arguments: [execLibrary, "/bin/sh", "-c", "echo $$ > \"$0\"; exec sleep 60", fifo])
        // The command's pid arrives through the FIFO once it runs.
        var pfd = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while !text.hasSuffix("\n"), Date() < deadline {
            guard poll(&pfd, 1, 1000) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
            if count > 0 { text += String(decoding: buffer[..<count], as: UTF8.self) }
        }
        let command = try #require(
            Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), "the command never started")
        #expect(kill(command, 0) == 0)

        worker.kill()
        #expect(waitUntilGone(command, timeout: 5), "the command must die with its worker")
    }
}

/// True once `pid` no longer runs (gone, or a zombie waiting for its new parent to reap it).
func waitUntilGone(_ pid: Int32, timeout: Double) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    repeat {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        if stat[stat.index(close, offsetBy: 2)] == "Z" { return true }
        usleep(20_000)
    } while Date() < deadline
    return false
}
