// SPDX-License-Identifier: Apache-2.0
import BGSyncWire
import CBGSyncPlugin

#if canImport(Glibc)
import Glibc
#endif

/// Why a plugin file cannot be used: a sentence naming the file and what to do.
struct LoadError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A plugin loaded into this process and checked against the ABI. Never unloaded.
struct LoadedPlugin {
    let path: String
    /// The plugin's struct as far as its `struct_size` covers it; later fields zero (NULL).
    let fields: bgsync_plugin
    let name: String
    /// What `--probe` reports: the handler's name (checked by the agent, which refuses a bad
    /// one), description, sandbox safety and declared options.
    let info: ProbeReport

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
        // A data pointer from dlsym to the header's own function type: what loading a plugin is.
        let entry = unsafeBitCast(symbol, to: bgsync_plugin_entry_fn.self)
        guard let plugin = entry(BGSYNC_PLUGIN_ABI_VERSION) else {
            throw LoadError(
                "\(path) does not support plugin ABI version \(BGSYNC_PLUGIN_ABI_VERSION) of this bgsync "
                    + "(bgsync_plugin_entry returned NULL); install a version of the plugin built for it.")
        }
        let fields = try readFields(UnsafeRawPointer(plugin), path: path)
        guard let namePointer = fields.name else {
            throw LoadError("\(path) has no handler name (bgsync_plugin.name is NULL).")
        }
        let name = String(cString: namePointer)
        guard fields.handle != nil || fields.handle_with_data != nil else {
            throw LoadError(
                "\(path) (handler '\(name)') has no handle function "
                    + "(bgsync_plugin.handle and handle_with_data are NULL)."
            )
        }
        let description = fields.description.map { String(cString: $0) } ?? ""
        let pathOptions = try declaredOptions(fields.path_options, field: "path_options", path: path)
        let urlOptions = try declaredOptions(fields.url_options, field: "url_options", path: path)
        return LoadedPlugin(
            path: path, fields: fields, name: name,
            info: ProbeReport(
                name: name, description: description, sandboxSafe: fields.sandbox_safe, pathOptions: pathOptions,
                urlOptions: urlOptions))
    }

    /// The plugin's struct, read only as far as its `struct_size` says (the ABI's growth rule):
    /// any size from the first version's up; fields beyond it stay zero, that is NULL or false.
    /// Sizes are C `sizeof`, which is `MemoryLayout.stride` here (`.size` omits tail padding).
    static func readFields(_ raw: UnsafeRawPointer, path: String) throws(LoadError) -> bgsync_plugin {
        // The two header fields alone first: a plugin of another ABI may have a shorter struct.
        let abiVersion = raw.loadUnaligned(as: UInt32.self)
        let structSize = Int(raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard abiVersion == BGSYNC_PLUGIN_ABI_VERSION else {
            throw LoadError(
                "\(path) was built for plugin ABI version \(abiVersion), but this bgsync speaks version "
                    + "\(BGSYNC_PLUGIN_ABI_VERSION); rebuild it against this bgsync's bgsync-plugin.h.")
        }
        guard structSize >= bgsync_plugin_size_v1() else {
            throw LoadError(
                "\(path) declares a bgsync_plugin of \(structSize) bytes, less than the \(bgsync_plugin_size_v1()) "
                    + "of ABI version \(BGSYNC_PLUGIN_ABI_VERSION)'s first form; "
                    + "set struct_size to sizeof(bgsync_plugin)."
            )
        }
        var fields = bgsync_plugin()
        withUnsafeMutableBytes(of: &fields) { local in
            local.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(structSize, local.count)))
        }
        return fields
    }

    /// A NULL-terminated array of option names (`path_options`, `url_options`), bounded.
    static func declaredOptions(
        _ array: UnsafePointer<UnsafePointer<CChar>?>?, field: String, path: String
    ) throws(LoadError) -> [String] {
        guard let array else { return [] }
        var names: [String] = []
        while let item = array[names.count] {
            guard names.count < Int(BGSYNC_MAX_DECLARED_OPTIONS) else {
                throw LoadError(
                    "\(path) declares more than \(BGSYNC_MAX_DECLARED_OPTIONS) \(field) "
                        + "(is the array NULL-terminated?)."
                )
            }
            let name = String(cString: item)
            guard !name.isEmpty, name.utf8.count <= 255,
                name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0 != "\u{7F}" })
            else {
                throw LoadError(
                    "\(path) declares a bad option name in \(field): it must be 1–255 printable characters.")
            }
            names.append(name)
        }
        return names
    }

    private static func lastDLError() -> String {
        guard let message = dlerror() else { return "unknown dlopen error" }
        return String(cString: message)
    }
}
