// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import DBusKit
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print SyncStarted, SyncProgress, SyncTransfer, SyncFinished and property changes as they happen, until Ctrl-C.",
        discussion: """
            Keeps running while the agent restarts. Exits 3 when the bus connection is lost. On a terminal a \
            transfer shows as a bar updated in place; otherwise each SyncTransfer is a line.
            """)

    @OptionGroup var shared: SharedOptions

    func run() throws {
        let agent = try AgentClient(shared)
        let loop = MainLoop()
        let connection = agent.connection
        connection.attach(to: loop)
        var lost = false
        connection.onDisconnect = {
            lost = true
            loop.stop()
        }
        let json = shared.json
        let rules = [
            "type='signal',sender='\(AgentClient.busName)',path='\(AgentClient.path)',interface='\(AgentClient.interface)'",
            "type='signal',sender='\(AgentClient.busName)',path='\(AgentClient.path)',"
                + "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'",
        ]
        do throws(DBusError) {
            for rule in rules {
                try connection.addMatch(rule) { signal in
                    if let line = Self.line(for: signal, json: json) { Self.show(line, signal: signal, json: json) }
                }
            }
            // The agent sends sync signals only to connections that subscribed (they are never
            // broadcast): ask for every app's, now and whenever an agent (re)starts.
            try connection.addMatch(
                "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                    + "member='NameOwnerChanged',arg0='\(AgentClient.busName)'"
            ) { signal in
                if signal.arguments.count == 3, case .string(let owner) = signal.arguments[2], !owner.isEmpty {
                    Self.subscribe(connection)
                }
            }
        } catch {
            throw CLIFailure(error)
        }
        Self.subscribe(connection)
        FileHandleOutput.standardError("bgsyncctl: monitoring \(AgentClient.busName); Ctrl-C to stop\n")
        // Ctrl-C and SIGTERM end the monitor normally; every line is already flushed.
        signal(SIGINT) { _ in _exit(0) }
        signal(SIGTERM) { _ in _exit(0) }
        loop.run()
        // As in `serve`: returned to here, not exit(3) from the loop's disconnect handler, so the
        // match handlers, loop and connection are released before the process exits, not in use.
        connection.close()
        if lost { throw CLIFailure(exitCode: ExitStatus.unreachable, message: "the bus connection was lost") }
    }

    /// Subscribe("") for every app's signals; an agent that is not running yet is subscribed to
    /// when it starts.
    static func subscribe(_ connection: DBusConnection) {
        do throws(DBusError) {
            _ = try connection.call(
                destination: AgentClient.busName, path: AgentClient.path, interface: AgentClient.interface,
                method: "Subscribe", arguments: [.string("")], timeout: 10)
        } catch  where error.name.hasSuffix(".ServiceUnknown") || error.name.hasSuffix(".NameHasNoOwner") {
            return
        } catch {
            FileHandleOutput.standardError("bgsyncctl: cannot subscribe to the agent's signals: \(error.message)\n")
        }
    }

    /// The key of the transfer bar last drawn on the terminal (the line it is on has no newline yet).
    nonisolated(unsafe) static var barKey: String?

    /// Prints `line`; on a terminal, a SyncTransfer redraws its bar in place while the same
    /// transfer goes on, and any other line starts below it.
    static func show(_ line: String, signal: DBusSignal, json: Bool) {
        guard !json, TransferText.onTerminal else { return FileHandleOutput.line(line) }
        if signal.member == "SyncTransfer", signal.arguments.count == 6 {
            let key = signal.arguments[0].gvariantText + " " + signal.arguments[1].gvariantText
            print((barKey == key ? "\r\u{1B}[K" : barKey == nil ? "" : "\n") + line, terminator: "")
            fflush(nil)
            barKey = key
            return
        }
        if barKey != nil { print("") }
        barKey = nil
        FileHandleOutput.line(line)
    }

    static func line(for signal: DBusSignal, json: Bool) -> String? {
        let args = signal.arguments
        switch (signal.interface, signal.member) {
        case (AgentClient.interface, "SyncStarted") where args.count == 4:
            let app = args[0].stringValue ?? ""
            let tag = args[1].stringValue ?? ""
            let attempt = args[2].int64Value ?? 0
            let lastChance = args[3].boolValue ?? false
            return json
                ? JSONText.object([
                    ("signal", JSONText.string("SyncStarted")), ("app_id", JSONText.string(app)),
                    ("tag", JSONText.string(tag)),
                    ("attempt", "\(attempt)"), ("last_chance", lastChance ? "true" : "false"),
                ])
                : "SyncStarted   \(app) \(tag) attempt=\(attempt)\(lastChance ? " last-chance" : "")"
        case (AgentClient.interface, "SyncFinished") where args.count == 4:
            let app = args[0].stringValue ?? ""
            let tag = args[1].stringValue ?? ""
            let outcome = args[2].stringValue ?? ""
            let detail = args[3].stringValue ?? ""
            return json
                ? JSONText.object([
                    ("signal", JSONText.string("SyncFinished")), ("app_id", JSONText.string(app)),
                    ("tag", JSONText.string(tag)),
                    ("outcome", JSONText.string(outcome)), ("detail", JSONText.string(detail)),
                ])
                : "SyncFinished  \(app) \(tag) \(outcome)\(detail.isEmpty ? "" : ": " + detail)"
        case (AgentClient.interface, "SyncProgress") where args.count == 5:
            let app = args[0].stringValue ?? ""
            let tag = args[1].stringValue ?? ""
            let done = args[2].uint64Value ?? 0
            let total = args[3].uint64Value ?? 0
            let text = args[4].stringValue ?? ""
            return json
                ? JSONText.object([
                    ("signal", JSONText.string("SyncProgress")), ("app_id", JSONText.string(app)),
                    ("tag", JSONText.string(tag)),
                    ("done", "\(done)"), ("total", "\(total)"), ("text", JSONText.string(text)),
                ])
                : "SyncProgress  \(app) \(tag) " + (total > 0 ? "\(done)/\(total)" : "\(done)")
                    + (text.isEmpty ? "" : ": " + text)
        case (AgentClient.interface, "SyncTransfer") where args.count == 6:
            let app = args[0].stringValue ?? ""
            let tag = args[1].stringValue ?? ""
            let transfer = TransferText(
                sent: args[2].uint64Value ?? 0, received: args[3].uint64Value ?? 0, expected: args[4].uint64Value ?? 0,
                rate: args[5].doubleValue ?? 0)
            return json
                ? JSONText.object([
                    ("signal", JSONText.string("SyncTransfer")), ("app_id", JSONText.string(app)),
                    ("tag", JSONText.string(tag)), ("sent", "\(transfer.sent)"), ("received", "\(transfer.received)"),
                    ("expected", "\(transfer.expected)"), ("rate", "\(Int64(transfer.rate))"),
                ])
                : "SyncTransfer  \(app) \(tag) " + (TransferText.onTerminal ? transfer.bar() : transfer.plain)
        case ("org.freedesktop.DBus.Properties", "PropertiesChanged") where args.count >= 2:
            guard args[0].stringValue == AgentClient.interface, case .dictionary(_, _, let entries) = args[1] else {
                return nil
            }
            if json {
                return JSONText.object([
                    ("signal", JSONText.string("PropertiesChanged")), ("changed", JSONText.text(args[1])),
                ])
            }
            let changes = entries.map { "\($0.key.stringValue ?? "?")=\(Human.value($0.value))" }
            return "Changed       " + changes.joined(separator: " ")
        default:
            return json
                ? JSONText.object([
                    ("signal", JSONText.string(signal.member)), ("arguments", JSONText.text(.structure(args))),
                ])
                : "\(signal.member) " + args.map(\.gvariantText).joined(separator: " ")
        }
    }
}
