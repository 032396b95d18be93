#if canImport(Glibc)
import Glibc
#endif
import BGSyncCore
import BGSyncWorkers
import CBGSyncPlugin
import CLinux
import CWorkerCancel

/// `bgsync-worker --serve PATH`: load the plugin, then run the events the agent sends on fd 3,
/// one at a time, until the agent closes its end.
enum EventServer {
    static let fd = WireProtocol.workerFD

    static func run(path: String) -> Int32 {
        // Die with the agent even while a handler blocks.
        dieWithParent()
        guard fcntl(fd, F_GETFD) >= 0 else {
            HostLog.line(priority: 3, prefix: "bgsync-worker", "fd \(fd) is not open: --serve is for bgsyncd, which passes the event socket there; use --probe to check a plugin.")
            return 2
        }
        // Commands a handler runs must not inherit the protocol socket.
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        // Plugins printing to stdout end up in the log, never in the protocol.
        _ = dup2(2, 1)

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
        HostLog.handlerName = plugin.info.name
        let host = HostTable.make()
        if let initialize = plugin.plugin.pointee.`init`, !initialize(host) {
            return refuseEvents(
                because: "Handler '\(plugin.info.name)' (\(path)) failed to start: its init returned false.",
                detail: "handler '\(plugin.info.name)' failed to start (its init returned false)")
        }

        var decoder = FrameDecoder()
        while true {
            let payload: [UInt8]
            do {
                guard let next = try readFrame(&decoder) else { return 0 }  // the agent closed: done
                payload = next
            } catch {
                HostLog.line(priority: 3, prefix: HostLog.prefix(app: nil, tag: nil), "Bad frame from the agent: \(error.message)")
                return 1
            }
            let request: WorkerRequest
            do {
                request = try WireProtocol.decode(WorkerRequest.self, from: payload)
            } catch {
                // The agent and this worker come from different bgsync versions.
                HostLog.line(priority: 3, prefix: HostLog.prefix(app: nil, tag: nil), "Cannot read the event the agent sent (\(error)); is bgsync-worker from the same bgsync as bgsyncd?")
                return 1
            }
            let outcome = handle(request.event, plugin: plugin, host: host)
            guard reply(WorkerReply(eventID: request.event.id, outcome: outcome)) else { return 0 }
        }
    }

    /// Runs one event through the plugin and reads its result.
    static func handle(_ event: SyncEvent, plugin: LoadedPlugin, host: UnsafePointer<bgsync_host>) -> HandlerOutcome {
        bgsync_cancel_begin(event.id)  // a stop names its event: one for an earlier event is not this
        let context = EventContext(event: event)
        var result = bgsync_result()
        result.abi_version = BGSYNC_PLUGIN_ABI_VERSION
        result.struct_size = UInt32(MemoryLayout<bgsync_result>.stride)
        result.status = BGSYNC_STATUS_FAILURE.rawValue
        result.retry_after = 0
        withExtendedLifetime(context) {
            plugin.plugin.pointee.handle(host, context.opaque, &result)
        }
        if let held = context.heldProgress {
            _ = reply(WorkerReply(eventID: event.id, progress: held))
        }
        let detail = withUnsafeBytes(of: &result.detail) { raw -> String in
            let bytes = raw.prefix(Int(BGSYNC_DETAIL_SIZE) - 1)
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch result.status {
        case BGSYNC_STATUS_SUCCESS.rawValue:
            return .success(detail: detail)
        case BGSYNC_STATUS_RETRY.rawValue:
            let after = result.retry_after
            return .retry(after: after.isFinite && after > 0 ? after : nil, detail: detail)
        case BGSYNC_STATUS_FAILURE.rawValue:
            return .failure(detail: detail)
        default:
            return .failure(detail: "handler '\(plugin.info.name)' returned an unknown status \(result.status)" + (detail.isEmpty ? "" : ": " + detail))
        }
    }

    /// Answers the first event with why this worker cannot run any, then exits. The agent
    /// records the retry and starts a fresh worker next time (the plugin may have been
    /// reinstalled meanwhile).
    static func refuseEvents(because reason: String, detail: String) -> Int32 {
        HostLog.line(priority: 3, prefix: "bgsync-worker", reason)
        var decoder = FrameDecoder()
        if let payload = try? readFrame(&decoder), let request = try? WireProtocol.decode(WorkerRequest.self, from: payload) {
            _ = reply(WorkerReply(eventID: request.event.id, outcome: .retry(after: nil, detail: detail)))
        }
        return 1
    }

    /// prctl(PR_SET_PDEATHSIG, SIGKILL). prctl is variadic, which Swift cannot call, so it is
    /// called through a fixed prototype: on Linux (x86-64 and AArch64) variadic integer
    /// arguments travel in the same registers as named ones.
    static func dieWithParent() {
        typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl") else { return }
        let prctl = unsafeBitCast(symbol, to: Prctl.self)
        if prctl(PR_SET_PDEATHSIG, UInt(SIGKILL), 0, 0, 0) != 0 {
            HostLog.line(priority: 4, prefix: "bgsync-worker", "Cannot ask to die with bgsyncd (prctl: \(String(cString: strerror(errno)))); a hung handler may outlive it.")
        }
    }

    static func readFrame(_ decoder: inout FrameDecoder) throws(WireError) -> [UInt8]? {
        while true {
            if let payload = try decoder.next() { return payload }
            guard let bytes = FD.readSome(fd, count: 64 * 1024) else { return nil }
            decoder.append(bytes)
        }
    }

    static func reply(_ message: WorkerReply) -> Bool {
        guard let frame = try? WireProtocol.frame(message) else { return false }
        return FD.writeAll(fd, frame)
    }
}
