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
        let plugin: LoadedPlugin
        do {
            plugin = try LoadedPlugin.load(path: path)
        } catch {
            return refuseEvents(because: error.message, detail: "handler could not be loaded: " + error.message)
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
                detail: "handler '\(plugin.name)' failed to start (its init returned false)")
        }
        // A normal end (the agent closed fd 3, or is gone): the plugin frees what it holds.
        defer { plugin.fields.deinit?(host, pluginData) }

        var decoder = FrameDecoder()
        while true {
            let payload: [UInt8]
            do {
                guard let next = try readFrame(&decoder) else { return 0 }  // the agent closed: done
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
            let outcome = handle(event, plugin: plugin, host: host, pluginData: pluginData)
            guard reply(.outcome(eventID: event.id, outcome.fitted)) else { return 0 }
        }
    }

    /// Runs one event through the plugin and reads its result.
    static func handle(
        _ event: WireEvent, plugin: LoadedPlugin, host: UnsafePointer<bgsync_host>, pluginData: UnsafeMutableRawPointer?
    ) -> WireOutcome {
        bgsync_cancel_begin(event.id)  // a stop names its event: one for an earlier event is not this
        let context = EventContext(event: event)
        var result = bgsync_result()
        result.abi_version = BGSYNC_PLUGIN_ABI_VERSION
        result.struct_size = UInt32(MemoryLayout<bgsync_result>.stride)
        result.status = BGSYNC_STATUS_FAILURE.rawValue
        result.retry_after = 0
        result.flags = 0
        withExtendedLifetime(context) {
            if let handle = plugin.fields.handle_with_data {
                handle(host, pluginData, context.opaque, &result)
            } else {
                plugin.fields.handle?(host, context.opaque, &result)  // the loader checked one is set
            }
        }
        if let held = context.heldProgress { _ = reply(held) }
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

    /// Answers the first event with why this worker cannot run any, then exits. The agent
    /// records the retry and starts a fresh worker next time (the plugin may have been
    /// reinstalled meanwhile).
    static func refuseEvents(because reason: String, detail: String) -> Int32 {
        HostLog.line(priority: 3, prefix: "bgsync-worker", reason)
        var decoder = FrameDecoder()
        if let payload = try? readFrame(&decoder),
            let event = try? WireProtocol.decode(WireEvent.self, from: payload)
        {
            _ = reply(.outcome(eventID: event.id, WireOutcome.retry(after: nil, detail: detail).fitted))
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

    static func readFrame(_ decoder: inout FrameDecoder) throws(WireError) -> [UInt8]? {
        while true {
            if let payload = try decoder.next() { return payload }
            guard let bytes = FD.readSome(fd, count: 64 * 1024) else { return nil }
            decoder.append(bytes)
        }
    }

    static func reply(_ message: WireReply) -> Bool {
        guard let frame = try? WireProtocol.frame(message) else { return false }
        return FD.writeAll(fd, frame)
    }
}
