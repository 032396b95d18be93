// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import BGSyncValue
import CBGSyncInterface
import DBusKit
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

/// `bgsyncctl serve APP_ID`: stands in for an app while its author develops it. Owns APP_ID on
/// the bus, answers org.bgsync.App.Sync with a fixed outcome and prints every call.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Stand in for an app: own APP_ID on the bus and answer the agent's Sync calls (handler 'app'), printing each.",
        discussion: """
            Answers org.bgsync.App.Sync at APP_ID's GApplication object path (org.example.Chat at
            /org/example/Chat) with the outcome given by --outcome, and prints each call: tag,
            attempt, last-chance, periodic, deadline and the registration's options.
            At start it asks the agent to run APP_ID's one-off syncs now (Trigger), so a sync that
            was waiting because the app was not running runs at once; --no-trigger skips that.
            Exits 1 when APP_ID is already owned (the app itself is running).
            """)

    enum Outcome: String, ExpressibleByArgument, CaseIterable {
        case success, retry, failure
    }

    @OptionGroup var shared: SharedOptions
    @Argument(help: "The app id to answer for, such as org.example.Chat.") var appID: String
    @Option(help: "The outcome to answer: success, retry or failure.") var outcome: Outcome = .success
    @Option(help: "A detail to answer with (shown in SyncFinished).") var detail: String?
    @Option(
        name: .customLong("retry-after"),
        help: ArgumentHelp(
            "With --outcome retry: the least wait before the next attempt.", valueName: "seconds"))
    var retryAfter: Double?
    @Option(help: ArgumentHelp("Exit after answering this many calls (default: serve until Ctrl-C).", valueName: "n"))
    var count: Int?
    @Flag(name: .customLong("no-trigger"), help: "Do not ask the agent to run the app's one-off syncs at start.")
    var noTrigger = false

    static let interface = "org.bgsync.App"

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1.") }
        if let retryAfter, !(retryAfter.isFinite && retryAfter >= 0) {
            throw ValidationError("--retry-after must be a number of seconds, 0 or more.")
        }
        guard ApplicationNames.objectPath(forApplicationID: appID) != nil else {
            throw ValidationError("'\(appID)' is not an app id (such as org.example.Chat).")
        }
    }

    func run() throws {
        let agent = try AgentClient(shared)
        let connection = agent.connection
        let owned: Bool
        do throws(DBusError) {
            owned = try connection.requestName(appID)
        } catch {
            throw CLIFailure(exitCode: ExitStatus.usage, message: "cannot own \(appID): \(error.message)")
        }
        guard owned else {
            throw CLIFailure(
                exitCode: ExitStatus.agentError,
                message: "\(appID) is already owned on this bus (is the app itself running?)")
        }
        let path = ApplicationNames.objectPath(forApplicationID: appID)!
        let loop = MainLoop()
        let object = DBusExportedObject(introspectionXML: String(cString: bgsync_app_interface_xml()))
        var answered = 0
        let (json, outcome, detail, retryAfter, count) = (shared.json, outcome, detail, retryAfter, count)
        object.addMethod(interface: Self.interface, name: "Sync", inSignature: "sa{sv}") { call in
            FileHandleOutput.line(Self.line(for: call, outcome: outcome.rawValue, json: json))
            var result: [(String, Value)] = []
            if let detail { result.append(("detail", .string(detail))) }
            if let retryAfter, outcome == .retry { result.append(("retry-after", .double(retryAfter))) }
            answered += 1
            if let count, answered >= count {
                loop.stop()  // after this iteration, which queues the reply; `run` sends it below
            }
            return [.string(outcome.rawValue), .stringVariantDictionary(result)]
        }
        connection.export(object, at: path)
        connection.attach(to: loop)
        var lost = false
        connection.onDisconnect = {
            lost = true
            loop.stop()
        }
        FileHandleOutput.standardError("bgsyncctl: serving \(Self.interface) for \(appID) at \(path); Ctrl-C to stop\n")
        if !noTrigger { triggerWaiting(agent) }
        signal(SIGINT) { _ in _exit(0) }
        signal(SIGTERM) { _ in _exit(0) }
        loop.run()
        // Returning, not exit(3) from inside the loop: closing unexports the object (the
        // connection holds it until then) and the loop, object and connection go with this frame.
        connection.flush()
        connection.close()
        if lost { throw CLIFailure(exitCode: ExitStatus.unreachable, message: "the bus connection was lost") }
    }

    /// Asks the agent to run the app's one-off syncs now. The calls they bring wait in the
    /// connection until the loop runs.
    private func triggerWaiting(_ agent: AgentClient) {
        do throws(CLIFailure) {
            let tags = try agent.call("GetTags", [.string(appID)]).first?.arrayValue?.compactMap(\.stringValue) ?? []
            for tag in tags {
                _ = try agent.call("Trigger", [.string(appID), .string(tag)])
            }
            if !tags.isEmpty {
                FileHandleOutput.standardError("bgsyncctl: asked the agent to run \(tags.count) waiting sync(s) now\n")
            }
        } catch {
            FileHandleOutput.standardError(
                "bgsyncctl: could not ask the agent to run waiting syncs: \(error.message)\n")
        }
    }

    static func line(for call: DBusMethodCall, outcome: String, json: Bool) -> String {
        let tag = call.arguments.first?.stringValue ?? ""
        let event = call.arguments.count > 1 ? call.arguments[1].stringKeyedDictionary ?? [:] : [:]
        let known = ["attempt", "last-chance", "periodic", "deadline"]
        let options = event.filter { !known.contains($0.key) }.sorted { $0.key < $1.key }
        let attempt = event["attempt"]?.int64Value ?? 0
        let lastChance = event["last-chance"]?.boolValue ?? false
        let periodic = event["periodic"]?.boolValue ?? false
        let deadline = event["deadline"]?.int64Value ?? 0
        if json {
            return JSONText.object([
                ("call", JSONText.string("Sync")), ("sender", JSONText.string(call.sender)),
                ("tag", JSONText.string(tag)),
                ("attempt", "\(attempt)"), ("last_chance", lastChance ? "true" : "false"),
                ("periodic", periodic ? "true" : "false"), ("deadline_us", "\(deadline)"),
                ("options", JSONText.object(options.map { ($0.key, JSONText.text($0.value)) })),
                ("outcome", JSONText.string(outcome)),
            ])
        }
        var text = "Sync \(tag) attempt=\(attempt)\(lastChance ? " last-chance" : "")\(periodic ? " periodic" : "")"
        text += " deadline=\(Human.time(deadline / 1_000_000))"
        for (name, value) in options { text += " \(name)=\(value.unwrappingVariants.gvariantText)" }
        return text + " -> \(outcome)"
    }
}
