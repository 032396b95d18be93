// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import CBGSyncPlugin
import CLinux
import CWorkerCancel

#if canImport(Glibc)
import Glibc
#endif

/// `bgsync-worker --serve PATH`: load the plugin, then run the events the agent sends on fd 3,
/// one at a time, until the agent closes its end.
enum EventServer {
    static let fd = WireProtocol.workerFD

    static func run(path: String) -> Int32 {
        // Die with the agent even while a handler blocks.
        dieWithParent()
        guard fcntl(fd, F_GETFD) >= 0 else {
            HostLog.line(
                priority: 3, prefix: "bgsync-worker",
                "fd \(fd) is not open: --serve is for bgsyncd, which passes the event socket there; "
                    + "use --probe to check a plugin."
            )
            return 2
        }
        // Commands a handler runs must not inherit the protocol socket, nor any other fd >= 3.
        if clinux_close_range(UInt32(fd), UInt32.max, CLINUX_CLOSE_RANGE_CLOEXEC) != 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // Linux < 5.11
        }
        // Plugins printing to stdout or stderr end up in the log, escaped, never in the protocol.
        PluginOutput.capture()

        // Before the plugin is loaded: threads it starts must inherit the blocked stop signal.
        if bgsync_cancel_install(WireProtocol.stopSignal) != 0 {
            HostLog.line(
                priority: 4, prefix: "bgsync-worker",
                "Cannot catch the stop signal (\(String(cString: strerror(errno)))); "
                    + "a stopped event will be killed after its grace period.")
        }
        // Versions first, before the plugin is loaded: a worker of another bgsync runs nothing,
        // and one that ends before its hello is never a plugin's fault (see WireProtocol).
        var decoder = FrameDecoder()
        /// A protocol-1 agent's first event, read where the hello would be.
        var early: [UInt8]?
        switch greet(&decoder) {
        case .agreed: break
        case .version1Event(let payload):
            early = payload
            agentSpeaksVersion1 = true
        case .stop(let status): return status
        }
        let plugin: LoadedPlugin
        do {
            plugin = try LoadedPlugin.load(path: path)
        } catch {
            return refuseEvents(
                because: error.message, detail: "handler could not be loaded: " + error.message, decoder: &decoder,
                early: early)
        }
        HostLog.handlerName = plugin.name
        HandlerState.handlerName = plugin.name
        let host = HostTable.make()
        // The plugin's own pointer, from init_with_data to handle_with_data and deinit; never read here.
        var pluginData: UnsafeMutableRawPointer?
        let started: Bool
        if let initialize = plugin.fields.init_with_data {
            started = initialize(host, &pluginData)
        } else {
            started = plugin.fields.`init`?(host) ?? true
        }
        guard started else {
            return refuseEvents(
                because: "Handler '\(plugin.name)' (\(path)) failed to start: its init returned false.",
                detail: "handler '\(plugin.name)' failed to start (its init returned false)", decoder: &decoder,
                early: early)
        }
        // A normal end (the agent closed fd 3, or is gone): the plugin frees what it holds.
        defer { plugin.fields.deinit?(host, pluginData) }

        while true {
            let payload: [UInt8]
            do {
                guard let next = try nextFrame(&decoder, early: &early) else { return 0 }  // the agent closed: done
                payload = next
            } catch {
                HostLog.line(
                    priority: 3, prefix: HostLog.prefix(app: nil, tag: nil),
                    "Bad frame from the agent: \(error.message)")
                return 1
            }
            let event: WireEvent
            do {
                event = try WireProtocol.decode(WireEvent.self, from: payload)
            } catch {
                // The agent and this worker come from different bgsync versions.
                HostLog.line(
                    priority: 3, prefix: HostLog.prefix(app: nil, tag: nil),
                    "Cannot read the event the agent sent (\(error)); is bgsync-worker from the same bgsync as bgsyncd?"
                )
                return 1
            }
            let (outcome, moved) = handle(event, plugin: plugin, host: host, pluginData: pluginData)
            guard reply(.outcome(eventID: event.id, outcome.fitted, moved: moved)) else { return 0 }
        }
    }

    /// Runs one event through the plugin and reads its result, and the bytes it reported moving.
    static func handle(
        _ event: WireEvent, plugin: LoadedPlugin, host: UnsafePointer<bgsync_host>, pluginData: UnsafeMutableRawPointer?
    ) -> (WireOutcome, WireBytes) {
        let context = EventContext(event: event)
        let outcome = withExtendedLifetime(context) { run(context, plugin: plugin, host: host, pluginData: pluginData) }
        return (outcome, context.bytes)
    }

    private static func run(
        _ context: EventContext, plugin: LoadedPlugin, host: UnsafePointer<bgsync_host>,
        pluginData: UnsafeMutableRawPointer?
    ) -> WireOutcome {
        let event = context.event
        bgsync_cancel_begin(event.id)  // a stop names its event: one for an earlier event is not this
        var result = bgsync_result()
        result.abi_version = BGSYNC_PLUGIN_ABI_VERSION
        result.struct_size = UInt32(MemoryLayout<bgsync_result>.stride)
        result.status = BGSYNC_STATUS_FAILURE.rawValue
        result.retry_after = 0
        result.flags = 0
        if let handle = plugin.fields.handle_with_data {
            handle(host, pluginData, context.opaque, &result)
        } else {
            plugin.fields.handle?(host, context.opaque, &result)  // the loader checked one is set
        }
        if let held = context.heldProgress { _ = reply(held) }
        if let held = context.heldBytes { _ = reply(held) }
        let detail = withUnsafeBytes(of: &result.detail) { raw -> String in
            let bytes = raw.prefix(Int(BGSYNC_DETAIL_SIZE) - 1)
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch result.status {
        case BGSYNC_STATUS_SUCCESS.rawValue:
            return .success(detail: detail)
        case BGSYNC_STATUS_RETRY.rawValue:
            let after = result.retry_after
            let advanced = result.flags & BGSYNC_RESULT_ADVANCED != 0
            return .retry(after: after.isFinite && after > 0 ? after : nil, detail: detail, advanced: advanced)
        case BGSYNC_STATUS_FAILURE.rawValue:
            return .failure(detail: detail)
        default:
            return .failure(
                detail: "handler '\(plugin.name)' returned an unknown status \(result.status)"
                    + (detail.isEmpty ? "" : ": " + detail))
        }
    }

    enum Greeting {
        /// The agent speaks this worker's version; its hello is answered.
        case agreed
        /// A protocol-1 agent (no hello) whose first event this worker can run: the payload.
        case version1Event([UInt8])
        /// Exit with this status without running anything.
        case stop(Int32)
    }

    /// Reads the agent's first frame and answers its hello with this worker's, whatever the
    /// agent's version: the agent learns that it spoke to another bgsync, not that a handler
    /// crashed. A worker of another version exits then, before reading more.
    static func greet(_ decoder: inout FrameDecoder) -> Greeting {
        let payload: [UInt8]
        do {
            guard let first = try readFrame(&decoder) else { return .stop(0) }  // the agent closed
            payload = first
        } catch {
            HostLog.line(priority: 3, prefix: "bgsync-worker", "Bad first frame from the agent: \(error.message)")
            return .stop(1)
        }
        guard let theirs = WireHello.version(of: payload) else {
            if WireProtocol.servesVersion1 { return .version1Event(payload) }
            HostLog.line(
                priority: 4, prefix: "bgsync-worker",
                "bgsyncd speaks worker protocol 1 (no hello), this bgsync-worker \(WireProtocol.version): "
                    + "bgsync was upgraded under the running agent; restart it (systemctl --user restart bgsyncd)."
            )
            return .stop(1)
        }
        guard let hello = try? WireProtocol.frame(WireHello()), FD.writeAll(fd, hello) else { return .stop(0) }
        guard theirs == WireProtocol.version else {
            HostLog.line(
                priority: 4, prefix: "bgsync-worker",
                "bgsyncd speaks worker protocol \(theirs), this bgsync-worker \(WireProtocol.version): "
                    + "bgsync was upgraded or downgraded under the running agent, which keeps its events "
                    + "until it is restarted. Exiting without running one.")
            return .stop(0)
        }
        return .agreed
    }

    /// Answers the first event with why this worker cannot run any, then exits. The agent
    /// records the retry and starts a fresh worker next time (the plugin may have been
    /// reinstalled meanwhile).
    static func refuseEvents(because reason: String, detail: String, decoder: inout FrameDecoder, early: [UInt8]?)
        -> Int32
    {
        HostLog.line(priority: 3, prefix: "bgsync-worker", reason)
        var early = early
        if let payload = try? nextFrame(&decoder, early: &early),
            let event = try? WireProtocol.decode(WireEvent.self, from: payload)
        {
            _ = reply(
                .outcome(eventID: event.id, WireOutcome.retry(after: nil, detail: detail).fitted, moved: WireBytes()))
        }
        return 1
    }

    /// prctl(PR_SET_PDEATHSIG, SIGKILL), through CLinux (prctl is variadic, which Swift cannot call).
    static func dieWithParent() {
        let status = clinux_set_parent_death_signal(SIGKILL)
        if status != 0 {
            HostLog.line(
                priority: 4, prefix: "bgsync-worker",
                "Cannot ask to die with bgsyncd (prctl: \(String(cString: strerror(-status)))); "
                    + "a hung handler may outlive it.")
        }
    }

    /// `early` (taken) if set, else the next frame read.
    static func nextFrame(_ decoder: inout FrameDecoder, early: inout [UInt8]?) throws(WireError) -> [UInt8]? {
        if let payload = early {
            early = nil
            return payload
        }
        return try readFrame(&decoder)
    }

    static func readFrame(_ decoder: inout FrameDecoder) throws(WireError) -> [UInt8]? {
        while true {
            if let payload = try decoder.next() { return payload }
            guard let bytes = FD.readSome(fd, count: 64 * 1024) else { return nil }
            decoder.append(bytes)
        }
    }

    static func reply(_ message: WireReply) -> Bool {
        if agentSpeaksVersion1 {
            let form: [UInt8]?
            do { form = try message.version1Frame() } catch { return false }
            guard let frame = form else { return true }  // no such reply in protocol 1: left out
            return FD.writeAll(fd, frame)
        }
        guard let frame = try? WireProtocol.frame(message) else { return false }
        return FD.writeAll(fd, frame)
    }

    /// Set once, before the plugin loads, when the agent's first frame was an event (protocol 1):
    /// replies then take protocol 1's forms.
    nonisolated(unsafe) static var agentSpeaksVersion1 = false
}
