// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

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
        return descriptor.register(handler)
    }
}

/// The handler type of this library and its `bgsync_plugin`: made once by `entry`, then never
/// changed (what a C plugin's `static const bgsync_plugin` is). A global because `entry` and the
/// `@convention(c)` functions cannot capture context; everything that changes while the worker
/// runs (the handler, the host table) lives in the plugin data the host passes back.
private let descriptor = Descriptor()

private final class Descriptor: @unchecked Sendable {
    private let lock = Mutex(())
    private var handlerType: (any SyncHandler.Type)?
    private var plugin: UnsafeMutablePointer<bgsync_plugin>?

    var type: (any SyncHandler.Type)? { lock.withLock { _ in handlerType } }

    func register<H: SyncHandler>(_ type: H.Type) -> UnsafeRawPointer? {
        // As an address: a pointer cannot leave the lock's closure (`sending`), an Int can.
        UnsafeRawPointer(bitPattern: lock.withLock { _ in Int(bitPattern: registerLocked(type)) })
    }

    private func registerLocked<H: SyncHandler>(_ type: H.Type) -> UnsafeRawPointer? {
        if let plugin {
            return handlerType == type ? UnsafeRawPointer(plugin) : nil
        }
        var fields = bgsync_plugin()
        fields.abi_version = BGSYNC_PLUGIN_ABI_VERSION
        // C sizeof, which is stride in Swift (size would leave out tail padding).
        fields.struct_size = UInt32(MemoryLayout<bgsync_plugin>.stride)
        fields.name = UnsafePointer(strdup(H.name))
        fields.description = UnsafePointer(strdup(H.description))
        fields.sandbox_safe = H.sandboxSafe
        // Only the growth-1 entry points: `init`/`handle` would need global state for hosts
        // older than this library's own bgsync, which never load it.
        fields.init_with_data = { host, data in Instance.start(host: host, data: data) }
        fields.handle_with_data = { _, data, event, result in Instance.handle(data: data, event: event, result: result)
        }
        fields.deinit = { _, data in Instance.stop(data: data) }
        fields.path_options = Self.cStrings(H.pathOptions)
        fields.url_options = Self.cStrings(H.urlOptions)
        let made = UnsafeMutablePointer<bgsync_plugin>.allocate(capacity: 1)
        made.initialize(to: fields)
        handlerType = type
        plugin = made
        return UnsafeRawPointer(made)
    }

    /// A NULL-terminated array of C strings, kept for the life of the process.
    private static func cStrings(_ names: [String]) -> UnsafePointer<UnsafePointer<CChar>?>? {
        guard !names.isEmpty else { return nil }
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: names.count + 1)
        for (index, name) in names.enumerated() { array[index] = UnsafePointer(strdup(name)) }
        array[names.count] = nil
        return UnsafePointer(array)
    }
}

/// The plugin data: one per worker, made by `init_with_data`, released by `deinit`. Used only on
/// the worker's plugin thread (the ABI's rule), so it needs no lock.
private final class Instance {
    let handler: any SyncHandler
    /// The host's table as far as its `struct_size` covers it, later functions NULL: a handler
    /// built against a newer header sees what an older host lacks as missing, never as garbage.
    let host: UnsafeMutablePointer<bgsync_host>

    init(handler: any SyncHandler, host: UnsafeMutablePointer<bgsync_host>) {
        self.handler = handler
        self.host = host
    }

    deinit {
        host.deinitialize(count: 1)
        host.deallocate()
    }

    static func start(host: UnsafePointer<bgsync_host>?, data: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Bool
    {
        guard let host, let data, let type = descriptor.type else { return false }
        let raw = UnsafeRawPointer(host)
        let size = Int(raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard raw.loadUnaligned(as: UInt32.self) == BGSYNC_PLUGIN_ABI_VERSION, size >= bgsync_host_size_v1() else {
            return false
        }
        let copy = UnsafeMutablePointer<bgsync_host>.allocate(capacity: 1)
        copy.initialize(to: bgsync_host())
        UnsafeMutableRawPointer(copy).copyMemory(from: raw, byteCount: min(size, MemoryLayout<bgsync_host>.stride))
        data.pointee = Unmanaged.passRetained(Instance(handler: type.init(), host: copy)).toOpaque()
        return true
    }

    static func handle(
        data: UnsafeMutableRawPointer?, event: OpaquePointer?, result: UnsafeMutablePointer<bgsync_result>?
    ) {
        guard let result, Int(result.pointee.struct_size) >= bgsync_result_size_v1() else { return }
        guard let data else {
            PluginExport.write(.failure("the worker called the handler without its plugin data"), to: result)
            return
        }
        let instance = Unmanaged<Instance>.fromOpaque(data).takeUnretainedValue()
        let host = UnsafePointer(instance.host)
        let log = HandlerLog { priority, message in
            // The event pointer is only valid during this call; later lines go untagged.
            message.withCString { host.pointee.log?(event, priority.rawValue, $0) }
        }
        PluginExport.write(instance.handler.handle(HandlerEvent(host: host, event: event), log: log), to: result)
    }

    static func stop(data: UnsafeMutableRawPointer?) {
        guard let data else { return }
        Unmanaged<Instance>.fromOpaque(data).release()
    }
}

extension PluginExport {
    /// Fills the host's result: status, retry hint and the detail cut at a character boundary.
    static func write(_ outcome: HandlerResult, to result: UnsafeMutablePointer<bgsync_result>) {
        switch outcome {
        case .success: result.pointee.status = BGSYNC_STATUS_SUCCESS.rawValue
        case .retry(let after, _, let advanced):
            result.pointee.status = BGSYNC_STATUS_RETRY.rawValue
            result.pointee.retry_after = after ?? 0
            // An older host's result has no `flags`: the attempt then counts, as it always did.
            if advanced, let offset = MemoryLayout<bgsync_result>.offset(of: \bgsync_result.flags),
                Int(result.pointee.struct_size) >= offset + MemoryLayout<UInt32>.size
            {
                result.pointee.flags |= BGSYNC_RESULT_ADVANCED
            }
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
