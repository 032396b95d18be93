// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import BGSyncWire
import CBGSyncPlugin
import Foundation

/// The host's file functions for handler tests: the worker's own implementation (ConfinedFiles,
/// the code bgsync-worker runs), behind a host table like the worker's, for an event with
/// `options` under `root` (nil: unconfined). Only the entries HandlerFiles uses are set.
final class FileHostEvent {
    let options: [String: Value]
    let files: ConfinedFiles
    private var strings: [UnsafeMutablePointer<CChar>] = []

    init(options: [String: Value], root: String?, useOpenat2: Bool) {
        self.options = options
        files = ConfinedFiles(root: root, useOpenat2: useOpenat2 && ConfinedFiles.kernelHasOpenat2)
    }

    deinit { for pointer in strings { free(pointer) } }

    var pointer: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    static func from(_ pointer: OpaquePointer?) -> FileHostEvent {
        Unmanaged.fromOpaque(UnsafeRawPointer(pointer!)).takeUnretainedValue()
    }

    func string(_ name: UnsafePointer<CChar>?) -> String? {
        guard let name, case .string(let value) = options[String(cString: name)] else { return nil }
        return value
    }

    func c(_ text: String) -> UnsafePointer<CChar> {
        let copy = strdup(text)!
        strings.append(copy)
        return UnsafePointer(copy)
    }

    /// Events stay alive for the test process: a HandlerEvent holds only their pointer.
    nonisolated(unsafe) static var kept: [FileHostEvent] = []
    static let lock = NSLock()

    nonisolated(unsafe) static let table: UnsafePointer<bgsync_host> = {
        var host = bgsync_host()
        host.abi_version = BGSYNC_PLUGIN_ABI_VERSION
        host.struct_size = UInt32(MemoryLayout<bgsync_host>.stride)
        host.option_string = { event, name in
            let context = FileHostEvent.from(event)
            return context.string(name).map { context.c($0) }
        }
        host.open_path = { event, option, how in
            let context = FileHostEvent.from(event)
            guard let path = context.string(option) else { return -EINVAL }
            return context.files.open(path: path, how: how)
        }
        host.open_at = { event, dirFD, name, how in
            FileHostEvent.from(event).files.openAt(dirFD, String(cString: name!), how: how)
        }
        host.rename_at = { event, fromFD, from, toFD, to, flags in
            FileHostEvent.from(event).files.rename(
                fromFD, String(cString: from!), toFD, String(cString: to!), flags: flags)
        }
        host.unlink_at = { event, dirFD, name, flags in
            FileHostEvent.from(event).files.unlink(dirFD, String(cString: name!), flags: flags)
        }
        let table = UnsafeMutablePointer<bgsync_host>.allocate(capacity: 1)
        table.initialize(to: host)
        return UnsafePointer(table)
    }()

    /// HandlerFiles for `options` beneath `root`.
    static func files(_ options: [String: Value], root: String?, useOpenat2: Bool = true) -> HandlerFiles {
        let context = FileHostEvent(options: options, root: root, useOpenat2: useOpenat2)
        lock.withLock { kept.append(context) }
        return HandlerFiles(host: table, event: context.pointer)
    }
}
