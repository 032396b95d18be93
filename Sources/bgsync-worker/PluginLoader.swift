#if canImport(Glibc)
import Glibc
#endif
import BGSyncCore
import CBGSyncPlugin

/// Why a plugin file cannot be used: a sentence naming the file and what to do.
struct LoadError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A plugin loaded into this process and checked against the ABI. Never unloaded.
struct LoadedPlugin {
    let path: String
    let plugin: UnsafePointer<bgsync_plugin>
    let info: HandlerInfo

    /// dlopens `path` (never dlclosed: unloading Swift libraries is unsafe), finds the entry
    /// point and checks what it returns. Nothing of the plugin but its entry point and its
    /// library constructors runs here.
    static func load(path: String) throws(LoadError) -> LoadedPlugin {
        // Without a slash dlopen would search the library path instead of opening this file.
        let file = path.contains("/") ? path : "./" + path
        guard let library = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            throw LoadError("Cannot load \(path): \(lastDLError()).")
        }
        _ = dlerror()
        guard let symbol = dlsym(library, BGSYNC_PLUGIN_ENTRY_SYMBOL) else {
            throw LoadError(
                "\(path) is not a bgsync handler plugin: it does not export '\(BGSYNC_PLUGIN_ENTRY_SYMBOL)' "
                    + "(declare it with BGSYNC_PLUGIN_EXPORT from bgsync-plugin.h).")
        }
        let entry = unsafeBitCast(symbol, to: bgsync_plugin_entry_fn.self)
        guard let plugin = entry(BGSYNC_PLUGIN_ABI_VERSION) else {
            throw LoadError(
                "\(path) does not support plugin ABI version \(BGSYNC_PLUGIN_ABI_VERSION) of this bgsync "
                    + "(bgsync_plugin_entry returned NULL); install a version of the plugin built for it.")
        }
        // Read the two header fields alone first: a plugin of another ABI may have a shorter struct.
        let raw = UnsafeRawPointer(plugin)
        let abiVersion = raw.loadUnaligned(as: UInt32.self)
        let structSize = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        guard abiVersion == BGSYNC_PLUGIN_ABI_VERSION else {
            throw LoadError(
                "\(path) was built for plugin ABI version \(abiVersion), but this bgsync speaks version "
                    + "\(BGSYNC_PLUGIN_ABI_VERSION); rebuild it against this bgsync's bgsync-plugin.h.")
        }
        guard Int(structSize) >= MemoryLayout<bgsync_plugin>.stride else {
            throw LoadError(
                "\(path) declares a bgsync_plugin of \(structSize) bytes, less than the \(MemoryLayout<bgsync_plugin>.stride) "
                    + "of ABI version \(BGSYNC_PLUGIN_ABI_VERSION); set struct_size to sizeof(bgsync_plugin).")
        }
        let fields = plugin.pointee
        guard let namePointer = fields.name else {
            throw LoadError("\(path) has no handler name (bgsync_plugin.name is NULL).")
        }
        let name = String(cString: namePointer)
        do {
            try Identifiers.validateHandlerName(name)
        } catch {
            throw LoadError("\(path): \(error.message)")
        }
        guard fields.handle != nil else {
            throw LoadError("\(path) (handler '\(name)') has no handle function (bgsync_plugin.handle is NULL).")
        }
        let description = fields.description.map { String(cString: $0) } ?? ""
        return LoadedPlugin(
            path: path, plugin: plugin,
            info: HandlerInfo(name: name, description: description, sandboxSafe: fields.sandbox_safe))
    }

    private static func lastDLError() -> String {
        guard let message = dlerror() else { return "unknown dlopen error" }
        return String(cString: message)
    }
}
