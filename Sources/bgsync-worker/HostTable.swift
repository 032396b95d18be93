// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import BGSyncWire
import CBGSyncPlugin
import CWorkerCancel

#if canImport(Glibc)
import Glibc
#endif

/// The `bgsync_host` function table. C function pointers cannot capture anything: every entry
/// finds its state through the event pointer, which is an `EventContext`.
enum HostTable {
    /// Allocated once and never freed: the ABI lets a plugin keep the pointer for the life of
    /// the process.
    static func make() -> UnsafePointer<bgsync_host> {
        var host = bgsync_host()
        host.abi_version = BGSYNC_PLUGIN_ABI_VERSION
        host.struct_size = UInt32(MemoryLayout<bgsync_host>.stride)

        host.app_id = { event in
            guard let context = EventContext.from(event) else { return nil }
            return context.cString("app") { context.event.appID }
        }
        host.tag = { event in
            guard let context = EventContext.from(event) else { return nil }
            return context.cString("tag") { context.event.tag }
        }
        host.attempt = { event in EventContext.from(event)?.event.attempt ?? 0 }
        host.last_chance = { event in EventContext.from(event)?.event.lastChance ?? false }
        host.deadline = { event in EventContext.from(event)?.deadline ?? 0 }
        host.periodic = { event in EventContext.from(event)?.event.periodic ?? false }

        // The typed accessors read options by BGSyncValue's rules (`Value+Accessors.swift`),
        // the same ones HandlerKit's `HandlerOptions` applies: one set of rules for every reader.
        host.option_count = { event in EventContext.from(event)?.names.count ?? 0 }
        host.option_name = { event, index in
            guard let context = EventContext.from(event), index < context.names.count else { return nil }
            let name = context.names[index]
            return context.cString("name\0\(name)") { name }
        }
        host.option_type = { event, name in
            guard let context = EventContext.from(event), let value = context.option(name) else { return nil }
            return context.cString("type\0\(String(cString: name!))") { value.typeString }
        }
        host.option_string = { event, name in
            guard let context = EventContext.from(event), let text = context.option(name)?.stringValue else {
                return nil
            }
            return context.cString("string\0\(String(cString: name!))") { text }
        }
        host.option_bool = { event, name, out in
            guard let value = EventContext.from(event)?.option(name)?.boolValue else { return false }
            out?.pointee = value
            return true
        }
        host.option_int = { event, name, out in
            guard let value = EventContext.from(event)?.option(name)?.int64Value else { return false }
            out?.pointee = value
            return true
        }
        host.option_double = { event, name, out in
            guard let value = EventContext.from(event)?.option(name)?.numberValue else { return false }
            out?.pointee = value
            return true
        }
        host.option_strv_length = { event, name in
            EventContext.from(event)?.option(name)?.stringsValue?.count ?? 0
        }
        host.option_strv_item = { event, name, index in
            guard let context = EventContext.from(event), let items = context.option(name)?.stringsValue,
                index < items.count
            else { return nil }
            return context.cString("strv\0\(String(cString: name!))\0\(index)") { items[index] }
        }
        host.option_dict_length = { event, name in
            EventContext.from(event)?.option(name)?.stringPairsValue?.count ?? 0
        }
        host.option_dict_key = { event, name, index in
            guard let context = EventContext.from(event), let entries = context.option(name)?.stringPairsValue,
                index < entries.count
            else { return nil }
            return context.cString("dkey\0\(String(cString: name!))\0\(index)") { entries[index].key }
        }
        host.option_dict_value = { event, name, index in
            guard let context = EventContext.from(event), let entries = context.option(name)?.stringPairsValue,
                index < entries.count
            else { return nil }
            return context.cString("dvalue\0\(String(cString: name!))\0\(index)") { entries[index].value }
        }
        host.option_bytes = { event, name, length in
            guard let context = EventContext.from(event), let bytes = context.option(name)?.bytesValue,
                let (pointer, count) = context.bytes("bytes\0\(String(cString: name!))", bytes)
            else { return nil }
            length?.pointee = count
            return pointer
        }
        host.option_text = { event, name in
            guard let context = EventContext.from(event), let value = context.option(name) else { return nil }
            return context.cString("text\0\(String(cString: name!))") { value.gvariantText }
        }

        host.log = { event, priority, message in
            let context = EventContext.from(event)
            let text = message.map { String(cString: $0) } ?? ""
            HostLog.line(
                priority: priority, prefix: HostLog.prefix(app: context?.event.appID, tag: context?.event.tag),
                text)
        }

        addFiles(to: &host)
        addCancellationAndProgress(to: &host)
        // Growth 4: the handler's state directory (HandlerState).
        host.open_state_dir = { event in
            guard EventContext.from(event) != nil else { return -EINVAL }
            return HandlerState.open()
        }

        let table = UnsafeMutablePointer<bgsync_host>.allocate(capacity: 1)
        table.initialize(to: host)
        return UnsafePointer(table)
    }

    /// Growth 2: cancellation (the worker's stop signal, CWorkerCancel) and progress frames; growth 3:
    /// byte reports.
    static func addCancellationAndProgress(to host: inout bgsync_host) {
        host.cancelled = { _ in bgsync_cancel_requested() }
        host.cancel_fd = { _ in bgsync_cancel_fd() }
        host.progress = { event, done, total, text in
            guard let context = EventContext.from(event) else { return }
            let report = WireReply.progress(
                eventID: context.event.id, done: done, total: total, text: HostTable.progressText(text))
            guard let progress = context.progressed(report, done: done) else { return }
            _ = EventServer.reply(progress)
        }
        // Growth 3.
        host.report_bytes = { event, sent, received, expected in
            guard let context = EventContext.from(event) else { return }
            let report = WireBytes(sent: sent, received: received, expected: expected)
            guard let frame = context.moved(report) else { return }
            _ = EventServer.reply(frame)
        }
    }

    /// A plugin's progress text: at most BGSYNC_PROGRESS_TEXT_SIZE - 1 bytes, cut at a character
    /// boundary, invalid UTF-8 replaced.
    static func progressText(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        let limit = Int(BGSYNC_PROGRESS_TEXT_SIZE) - 1
        let length = strnlen(text, limit)
        let bytes = UnsafeRawBufferPointer(start: text, count: length)
        var decoded = String(decoding: bytes, as: UTF8.self)
        while decoded.utf8.count > limit { decoded.removeLast() }
        return decoded
    }
}

extension HostTable {
    /// Growth 1: the file functions, beneath the event's confinement root (ConfinedFiles).
    static func addFiles(to host: inout bgsync_host) {
        host.open_path = { event, option, how in
            guard let context = EventContext.from(event) else { return -EINVAL }
            guard let path = context.option(option)?.stringValue else { return -EINVAL }
            return context.files.open(path: path, how: how)
        }
        host.open_at = { event, dirFD, name, how in
            guard let context = EventContext.from(event), let name else { return -EINVAL }
            return context.files.openAt(dirFD, String(cString: name), how: how)
        }
        host.rename_at = { event, fromFD, from, toFD, to, flags in
            guard let context = EventContext.from(event), let from, let to else { return -EINVAL }
            return context.files.rename(fromFD, String(cString: from), toFD, String(cString: to), flags: flags)
        }
        host.unlink_at = { event, dirFD, name, flags in
            guard let context = EventContext.from(event), let name else { return -EINVAL }
            return context.files.unlink(dirFD, String(cString: name), flags: flags)
        }
    }
}
