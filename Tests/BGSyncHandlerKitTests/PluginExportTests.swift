// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import CBGSyncPlugin
import Foundation
import HandlerTestKit
import Testing

/// A handler that reports, in its detail, everything it read through HandlerKit.
struct EchoHandler: SyncHandler {
    static let name = "echo"
    static let description = "Reports what it was given"
    static let sandboxSafe = true
    static let pathOptions = ["file"]
    static let urlOptions = ["url", "mirror"]

    func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let o = event.options
        log.info("echo for \(event.appID)")
        if let long = o.int("long") { return .failure(String(repeating: "é", count: Int(long))) }
        if o.type("file") != nil {
            do {
                _ = try event.files.open(option: "file", .read)
                return .success("opened")
            } catch {
                return .failure("errno \(error.errno)")
            }
        }
        let headers = o.stringPairs("headers")?.map { "\($0.key)=\($0.value)" }.joined(separator: ",") ?? "-"
        let parts: [String] = [
            event.appID, event.tag, String(event.attempt), String(event.lastChance), String(event.periodic),
            String(Int(event.deadline.timeIntervalSince1970)), o.names.joined(separator: ","),
            o.string("url") ?? "-", o.strings("command")?.joined(separator: " ") ?? "-", headers,
            String(o.int("count") ?? -1), String(o.bool("flag") ?? false), String(o.double("count") ?? -1),
            o.type("command") ?? "-", String(o.string("command") == nil),
        ]
        return .retry(after: 4.5, parts.joined(separator: "|"))
    }
}

struct OtherHandler: SyncHandler {
    static let name = "other"
    static let description = "Never exported"
    static let sandboxSafe = false
    func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult { .success("") }
}

/// The event a fake host hands out: what `bgsync_event *` points at in these tests.
final class FakeEvent {
    var options: [String: Value]
    var logs: [String] = []
    private var strings: [UnsafeMutablePointer<CChar>] = []

    init(options: [String: Value]) { self.options = options }
    deinit { for pointer in strings { free(pointer) } }

    /// A C string that lives as long as the event.
    func c(_ text: String) -> UnsafePointer<CChar> {
        let copy = strdup(text)!
        strings.append(copy)
        return UnsafePointer(copy)
    }

    var pointer: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    static func from(_ pointer: OpaquePointer?) -> FakeEvent {
        Unmanaged.fromOpaque(UnsafeRawPointer(pointer!)).takeUnretainedValue()
    }
    static func option(_ event: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> Value? {
        from(event).options[String(cString: name!)]?.unwrappingVariants
    }
}

/// A host table like the worker's, backed by `FakeEvent`.
func fakeHost() -> bgsync_host {
    var host = bgsync_host()
    host.abi_version = BGSYNC_PLUGIN_ABI_VERSION
    host.struct_size = UInt32(MemoryLayout<bgsync_host>.stride)
    host.app_id = { FakeEvent.from($0).c("org.example.Chat") }
    host.tag = { FakeEvent.from($0).c("outbox") }
    host.attempt = { _ in 3 }
    host.last_chance = { _ in true }
    host.deadline = { _ in 2_000_000_000 }
    host.periodic = { _ in false }
    host.option_count = { FakeEvent.from($0).options.count }
    host.option_name = { event, index in
        let e = FakeEvent.from(event)
        return e.c(e.options.keys.sorted()[index])
    }
    // The typed accessors answer by BGSyncValue's rules, as the worker's host table does.
    host.option_type = { event, name in FakeEvent.option(event, name).map { FakeEvent.from(event).c($0.signature) } }
    host.option_string = { event, name in
        FakeEvent.option(event, name)?.stringValue.map { FakeEvent.from(event).c($0) }
    }
    host.option_bool = { event, name, value in
        guard let b = FakeEvent.option(event, name)?.boolValue else { return false }
        value!.pointee = b
        return true
    }
    host.option_int = { event, name, value in
        guard let n = FakeEvent.option(event, name)?.int64Value else { return false }
        value!.pointee = n
        return true
    }
    host.option_double = { event, name, value in
        guard let d = FakeEvent.option(event, name)?.numberValue else { return false }
        value!.pointee = d
        return true
    }
    host.option_strv_length = { event, name in FakeEvent.option(event, name)?.stringsValue?.count ?? 0 }
    host.option_strv_item = { event, name, index in
        FakeEvent.option(event, name)?.stringsValue.map { FakeEvent.from(event).c($0[index]) }
    }
    host.option_dict_length = { event, name in FakeEvent.option(event, name)?.stringPairsValue?.count ?? 0 }
    host.option_dict_key = { event, name, index in
        FakeEvent.option(event, name)?.stringPairsValue.map { FakeEvent.from(event).c($0[index].key) }
    }
    host.option_dict_value = { event, name, index in
        FakeEvent.option(event, name)?.stringPairsValue?[index].value.map { FakeEvent.from(event).c($0) }
    }
    host.option_bytes = { _, _, _ in nil }
    host.option_text = { event, name in
        FakeEvent.option(event, name).map { FakeEvent.from(event).c($0.gvariantText) }
    }
    host.log = { event, priority, message in
        FakeEvent.from(event).logs.append("\(priority) \(String(cString: message!))")
    }
    host.open_path = { _, _, _ in -ENOENT }
    return host
}

@Suite struct PluginExportTests {
    /// The whole path a worker takes: entry, init, handle; one test, as a library has one handler.
    @Test func workerCallsTheHandlerThroughTheCABI() throws {
        #expect(PluginExport.entry(EchoHandler.self, hostABIVersion: BGSYNC_PLUGIN_ABI_VERSION + 1) == nil)
        let raw = try #require(PluginExport.entry(EchoHandler.self, hostABIVersion: BGSYNC_PLUGIN_ABI_VERSION))
        #expect(PluginExport.entry(EchoHandler.self, hostABIVersion: BGSYNC_PLUGIN_ABI_VERSION) == raw)
        #expect(PluginExport.entry(OtherHandler.self, hostABIVersion: BGSYNC_PLUGIN_ABI_VERSION) == nil)

        let plugin = raw.assumingMemoryBound(to: bgsync_plugin.self).pointee
        #expect(plugin.abi_version == BGSYNC_PLUGIN_ABI_VERSION)
        #expect(Int(plugin.struct_size) == MemoryLayout<bgsync_plugin>.stride)  // C sizeof
        #expect(String(cString: plugin.name) == "echo")
        #expect(String(cString: plugin.description) == "Reports what it was given")
        #expect(plugin.sandbox_safe)
        #expect(strings(plugin.path_options) == ["file"] && strings(plugin.url_options) == ["url", "mirror"])
        // Growth-1 entry points only: no global state for hosts that would call init/handle.
        #expect(plugin.`init` == nil && plugin.handle == nil)

        var host = fakeHost()
        var data: UnsafeMutableRawPointer?
        var tooSmall = host
        tooSmall.struct_size = UInt32(bgsync_host_size_v1() - 8)  // smaller than any host ever made: refused
        #expect(plugin.init_with_data(&tooSmall, &data) == false && data == nil)
        #expect(plugin.init_with_data(&host, &data) && data != nil)
        defer { plugin.deinit(&host, data) }
        let event = FakeEvent(options: [
            "url": "https://example.org/x", "command": ["/bin/echo", "hi"], "headers": ["B": "2", "A": "1"],
            "count": 7, "flag": true,
        ])
        var result = bgsync_result()
        result.abi_version = BGSYNC_PLUGIN_ABI_VERSION
        result.struct_size = UInt32(MemoryLayout<bgsync_result>.stride)
        result.status = BGSYNC_STATUS_FAILURE.rawValue
        plugin.handle_with_data(&host, data, event.pointer, &result)

        #expect(result.status == BGSYNC_STATUS_RETRY.rawValue)
        #expect(result.retry_after == 4.5)
        let detail = withUnsafeBytes(of: result.detail) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        #expect(
            detail
                == "org.example.Chat|outbox|3|true|false|2000000000|command,count,flag,headers,url|https://example.org/x|/bin/echo hi|B=2,A=1|7|true|7.0|as|true"
        )
        #expect(event.logs == ["6 echo for org.example.Chat"])

        // A detail too long for the buffer is cut at a character boundary, NUL-terminated.
        let long = FakeEvent(options: ["long": 200])
        plugin.handle_with_data(&host, data, long.pointer, &result)
        #expect(result.status == BGSYNC_STATUS_FAILURE.rawValue)
        let cut = withUnsafeBytes(of: result.detail) { bytes in Array(bytes.prefix(while: { $0 != 0 })) }
        #expect(cut.count == 254)  // 127 two-byte characters; the NUL takes the last byte
        #expect(String(validating: cut, as: UTF8.self) == String(repeating: "é", count: 127))

        // The host's file function, reached through the table.
        let fileEvent = FakeEvent(options: ["file": "/x"])
        withExtendedLifetime(fileEvent) { plugin.handle_with_data(&host, data, fileEvent.pointer, &result) }
        #expect(detailText(result) == "errno \(ENOENT)")

        // A host of the first form (struct_size ends at `log`), as an older bgsync-worker passes:
        // accepted; the file functions it lacks read as missing (ENOSYS), never as what lies beyond.
        var oldHost = host
        oldHost.struct_size = UInt32(bgsync_host_size_v1())
        var oldData: UnsafeMutableRawPointer?
        #expect(plugin.init_with_data(&oldHost, &oldData))
        defer { plugin.deinit(&oldHost, oldData) }
        withExtendedLifetime(fileEvent) { plugin.handle_with_data(&oldHost, oldData, fileEvent.pointer, &result) }
        #expect(detailText(result) == "errno \(ENOSYS)")
    }

    private func detailText(_ result: bgsync_result) -> String {
        withUnsafeBytes(of: result.detail) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    private func strings(_ array: UnsafePointer<UnsafePointer<CChar>?>?) -> [String] {
        guard let array else { return [] }
        var names: [String] = []
        while let item = array[names.count] { names.append(String(cString: item)) }
        return names
    }

    @Test func swiftOptionsReadBackTyped() {
        let options = HandlerOptions([
            "b": true, "d": 2.5, "i": 3, "s": "x", "as": ["p", "q"], "kv": ["k": "v"], "y": .bytes([1, 2]),
        ])
        #expect(options.names == ["as", "b", "d", "i", "kv", "s", "y"])
        #expect(options.bool("b") == true && options.bool("s") == nil)
        #expect(options.double("d") == 2.5 && options.double("i") == 3)
        #expect(options.int("i") == 3 && options.int("d") == nil)
        #expect(options.strings("as") == ["p", "q"] && options.strings("s") == nil)
        #expect(options.stringDictionary("kv") == ["k": "v"])
        #expect(options.bytes("y") == [1, 2])
        #expect(options.type("kv") == "a{ss}" && options.type("missing") == nil)
        #expect(options.text("as") == "['p', 'q']")
        #expect(throws: OptionError(.wrongType, option: "i", "option 'i' must be a string (s), not x")) {
            try options.requireString("i")
        }
    }
}
