import BGSyncCore
import BGSyncValue
import BGSyncWorkers
#if canImport(Glibc)
import Glibc
#endif

/// The `bgsync_event` a plugin sees: an event plus the C strings and buffers handed out for it,
/// all freed together when `handle` has returned (the ABI's lifetime rule).
final class EventContext {
    let event: SyncEvent
    /// Option names in byte order, as `option_name` indexes them.
    let names: [String]
    /// The file functions, held beneath the event's confinement root.
    let files: ConfinedFiles
    private var strings: [String: UnsafeMutablePointer<CChar>] = [:]
    private var buffers: [String: UnsafeMutableRawPointer] = [:]

    init(event: SyncEvent) {
        self.event = event
        names = event.options.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        files = ConfinedFiles(root: event.confinement.root)
    }

    deinit {
        for pointer in strings.values { free(pointer) }
        for pointer in buffers.values { free(pointer) }
    }

    /// The opaque pointer handed to the plugin, and back.
    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    static func from(_ pointer: OpaquePointer?) -> EventContext? {
        guard let pointer else { return nil }
        return Unmanaged<EventContext>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }

    /// The named option, seen through any variant the caller wrapped it in.
    func option(_ name: UnsafePointer<CChar>?) -> Value? {
        guard let name else { return nil }
        return event.options[String(cString: name)]?.unwrappingVariants
    }

    /// A C string for `text`, made once per `key` and kept until the event ends, so that calling
    /// an accessor in a loop neither leaks nor invalidates earlier pointers.
    func cString(_ key: String, _ text: () -> String?) -> UnsafePointer<CChar>? {
        if let kept = strings[key] { return UnsafePointer(kept) }
        guard let value = text(), let copy = strdup(value) else { return nil }
        strings[key] = copy
        return UnsafePointer(copy)
    }

    /// A byte buffer made once per `key`; never NULL for an empty array.
    func bytes(_ key: String, _ content: [UInt8]) -> (UnsafeRawPointer, Int)? {
        if let kept = buffers[key] { return (UnsafeRawPointer(kept), content.count) }
        guard let buffer = malloc(max(1, content.count)) else { return nil }
        content.withUnsafeBytes { source in
            if let base = source.baseAddress { buffer.copyMemory(from: base, byteCount: content.count) }
        }
        buffers[key] = buffer
        return (UnsafeRawPointer(buffer), content.count)
    }
}
