import CBGSyncPlugin
import Foundation

/// The C glue: turns a `SyncHandler` type into the `bgsync_plugin` the worker loads. A handler
/// library's whole export is one line:
///
///     @_cdecl("bgsync_plugin_entry")
///     public func entry(_ v: UInt32) -> UnsafeRawPointer? { PluginExport.entry(MyHandler.self, hostABIVersion: v) }
///
/// One handler per library: the first type given wins, and a later call with another type
/// returns nil. The worker calls in from one thread (the ABI's rule); the lock only guards
/// `entry` against being called from several.
public enum PluginExport {
    /// Returns a pointer to a `bgsync_plugin` for `handler`, or nil if the host's ABI version
    /// is not the one this library was built for.
    public static func entry<H: SyncHandler>(_ handler: H.Type, hostABIVersion: UInt32) -> UnsafeRawPointer? {
        guard hostABIVersion == BGSYNC_PLUGIN_ABI_VERSION else { return nil }
        return exportState.register(handler)
    }
}

/// The state of the one handler of this library; lives for the process. A global because the
/// `@convention(c)` trampolines cannot capture context.
private let exportState = ExportState()

/// Everything the C trampolines reach, which cannot capture context.
private final class ExportState: @unchecked Sendable {
    private let lock = NSLock()
    private var handlerType: (any SyncHandler.Type)?
    private var plugin: UnsafeMutablePointer<bgsync_plugin>?
    // Written by `init` and read by `handle`, both on the worker's one plugin thread.
    private var handler: (any SyncHandler)?
    private var host: UnsafePointer<bgsync_host>?

    func register<H: SyncHandler>(_ type: H.Type) -> UnsafeRawPointer? {
        lock.lock()
        defer { lock.unlock() }
        if let plugin {
            return handlerType == type ? UnsafeRawPointer(plugin) : nil
        }
        let made = UnsafeMutablePointer<bgsync_plugin>.allocate(capacity: 1)
        made.initialize(
            to: bgsync_plugin(
                abi_version: BGSYNC_PLUGIN_ABI_VERSION,
                struct_size: UInt32(MemoryLayout<bgsync_plugin>.size),
                name: UnsafePointer(strdup(H.name)),
                description: UnsafePointer(strdup(H.description)),
                sandbox_safe: H.sandboxSafe,
                init: { host in exportState.start(host: host) },
                handle: { host, event, result in exportState.handle(host: host, event: event, result: result) }))
        handlerType = type
        plugin = made
        return UnsafeRawPointer(made)
    }

    /// The size of the first release's `bgsync_host`: everything up to and including `log`.
    static let firstReleaseHostSize =
        MemoryLayout<bgsync_host>.offset(of: \bgsync_host.log)! + MemoryLayout<UnsafeRawPointer>.size

    func start(host: UnsafePointer<bgsync_host>?) -> Bool {
        // The host table must hold at least the first release's functions (up to `log`); later
        // ones (cancellation, progress) are read only when `struct_size` covers them.
        guard let host, host.pointee.abi_version == BGSYNC_PLUGIN_ABI_VERSION,
            Int(host.pointee.struct_size) >= Self.firstReleaseHostSize,
            let type = lock.withLock({ handlerType })
        else { return false }
        self.host = host
        handler = type.init()
        return true
    }

    func handle(host: UnsafePointer<bgsync_host>?, event: OpaquePointer?, result: UnsafeMutablePointer<bgsync_result>?) {
        guard let result else { return }
        guard let host = host ?? self.host else {
            Self.write(.failure("the worker gave the handler no host table"), to: result)
            return
        }
        // A host that skipped `init` still gets served.
        if handler == nil, !start(host: host) {
            Self.write(.failure("the handler refused the worker's ABI (version or table size)"), to: result)
            return
        }
        let log = HandlerLog { priority, message in
            // The event pointer is only valid during this call; later lines go untagged.
            message.withCString { host.pointee.log?(event, priority.rawValue, $0) }
        }
        let outcome = handler!.handle(HandlerEvent(host: host, event: event), log: log)
        Self.write(outcome, to: result)
    }

    /// Fills the host's result: status, retry hint and the detail cut at a character boundary.
    static func write(_ outcome: HandlerResult, to result: UnsafeMutablePointer<bgsync_result>) {
        switch outcome {
        case .success: result.pointee.status = BGSYNC_STATUS_SUCCESS.rawValue
        case .retry(let after, _):
            result.pointee.status = BGSYNC_STATUS_RETRY.rawValue
            result.pointee.retry_after = after ?? 0
        case .failure: result.pointee.status = BGSYNC_STATUS_FAILURE.rawValue
        }
        let capacity = Int(BGSYNC_DETAIL_SIZE)
        var detail = Array(outcome.detail.utf8)
        if detail.count >= capacity {
            var end = capacity - 1
            while end > 0, detail[end] & 0xC0 == 0x80 { end -= 1 }  // not inside a UTF-8 sequence
            detail = Array(detail[..<end])
        }
        withUnsafeMutableBytes(of: &result.pointee.detail) { buffer in
            buffer.copyBytes(from: detail)
            buffer[detail.count] = 0
        }
    }
}

