// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import CExecSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a command for the event: option `command` is an argv (as; no shell involved) or a
/// program (s) run without arguments. The child gets BGSYNC_APP_ID, BGSYNC_TAG,
/// BGSYNC_ATTEMPT (1-based) and BGSYNC_LAST_CHANCE (1/0) on top of the worker's environment.
///
/// Exit 0 is success, exit 75 (EX_TEMPFAIL) asks for a retry, any other exit or a signal is a
/// failed attempt (retried with back-off); a bad `command` or a program that cannot be run is
/// a failure, since retrying cannot help. The child is killed (its whole process group) before
/// the event deadline, and dies with the worker (parent-death signal).
public struct ExecHandler: SyncHandler {
    public static let name = "exec"
    public static let description = "Runs a command (an argv, no shell) for each sync event"
    /// Running commands cannot be confined to what a sandboxed app could do.
    public static let sandboxSafe = false

    /// EX_TEMPFAIL of sysexits.h: "try again later".
    public static let retryExitStatus: Int32 = 75

    public init() {}

    public func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let argv: [String]
        do {
            argv = try Self.argv(event.options)
        } catch {
            return .failure(error.message)
        }
        var environment = ProcessInfo.processInfo.environment
        environment["BGSYNC_APP_ID"] = event.appID
        environment["BGSYNC_TAG"] = event.tag
        environment["BGSYNC_ATTEMPT"] = String(event.attempt)
        environment["BGSYNC_LAST_CHANCE"] = event.lastChance ? "1" : "0"

        let child: exec_child
        switch Self.spawn(argv: argv, environment: environment) {
        case .started(let started): child = started
        case .failed(let errorNumber):
            let reason = String(cString: strerror(errorNumber))
            switch errorNumber {
            case ENOENT: return .failure("program not found: \(argv[0])")
            case EACCES, ENOEXEC, ENOTDIR, EISDIR, ELOOP, ENAMETOOLONG:
                return .failure("cannot run \(argv[0]): \(reason)")
            default: return .retry(after: nil, "cannot start \(argv[0]): \(reason)")
            }
        }
        log.debug("started \(argv[0]) as process \(child.pid)")
        let run = ChildRun(child: child)
        // SIGTERM at the end of the budget; SIGKILL halfway through the reserve after it.
        let budget = event.timeBudget
        let killGrace = min(0.5, max(0.05, (event.secondsLeft - budget) / 2))
        let ending = run.wait(until: Date().addingTimeInterval(budget), killGrace: killGrace)
        return Self.result(ending, stderrTail: run.stderrLastLine, program: argv[0], log: log)
    }

    static func argv(_ options: HandlerOptions) throws(OptionError) -> [String] {
        switch options.type("command") {
        case nil:
            throw OptionError(
                .missing, option: "command",
                "option 'command' is missing: pass the program and its arguments as an array of strings (as)")
        case "as":
            let argv = options.strings("command") ?? []
            guard let program = argv.first, !program.isEmpty else {
                throw OptionError(
                    .invalid, option: "command", "option 'command' is empty: it needs at least the program")
            }
            guard !argv.contains(where: { $0.utf8.contains(0) }) else {
                throw OptionError(.invalid, option: "command", "option 'command' contains a NUL character")
            }
            return argv
        case "s":
            let program = options.string("command") ?? ""
            guard !program.isEmpty, !program.utf8.contains(0) else {
                throw OptionError(.invalid, option: "command", "option 'command' is empty")
            }
            return [program]
        case let other?:
            throw OptionError(
                .wrongType, option: "command",
                "option 'command' must be an array of strings (as) or a program (s), not \(other)")
        }
    }

    private enum Spawned {
        case started(exec_child)
        case failed(errno: Int32)
    }

    private static func spawn(argv: [String], environment: [String: String]) -> Spawned {
        let cArgv = argv.map { strdup($0) }
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") }
        defer { for pointer in cArgv + cEnv { free(pointer) } }
        var child = exec_child(pid: 0, stderr_fd: -1, pid_fd: -1)
        let error = (cArgv.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { argvBuffer in
            (cEnv.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { envBuffer in
                exec_spawn(argvBuffer.baseAddress, envBuffer.baseAddress, &child)
            }
        }
        return error == 0 ? .started(child) : .failed(errno: error)
    }

    static func result(_ ending: ChildRun.Ending, stderrTail: String?, program: String, log: HandlerLog)
        -> HandlerResult
    {
        let said = stderrTail.map { ": \($0)" } ?? ""
        switch ending {
        case .exited(0):
            return .success("\(program) succeeded")
        case .exited(retryExitStatus):
            return .retry(after: nil, "\(program) asked to retry (exit 75)\(said)")
        case .exited(let status):
            log.warning("\(program) exited with status \(status)\(said)")
            return .retry(after: nil, "exited with status \(status)\(said)")
        case .signalled(let signal):
            let name = String(cString: strsignal(signal))
            log.warning("\(program) was killed by signal \(signal) (\(name))\(said)")
            return .retry(after: nil, "killed by signal \(signal) (\(name))\(said)")
        case .timedOut(let seconds):
            log.warning("\(program) still ran after \(seconds) s, the event's time; killed its process group")
            return .retry(after: nil, "timed out after \(seconds) s; killed\(said)")
        }
    }
}
