// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Where the agent finds and keeps things, following the XDG base directories and the FHS.
public enum AgentPaths {
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { return nil }
        return value
    }

    static var home: String { environment("HOME") ?? "/" }

    /// An XDG directory: `$NAME` when set to an absolute path, else `~/fallback`.
    static func xdg(_ name: String, _ fallback: String) -> String {
        if let value = environment(name), value.hasPrefix("/") { return value }
        return home + "/" + fallback
    }

    public static var defaultStateDirectory: String { xdg("XDG_STATE_HOME", ".local/state") + "/bgsync" }

    /// `/etc/bgsync/bgsyncd.conf`, then `$XDG_CONFIG_HOME/bgsync/bgsyncd.conf`; later ones override.
    public static var defaultConfigFiles: [String] {
        ["/etc/bgsync/bgsyncd.conf", xdg("XDG_CONFIG_HOME", ".config") + "/bgsync/bgsyncd.conf"]
    }

    /// The directory of the running executable (`/usr/bin` when installed).
    static var executableDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return "/usr/bin" }
        let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
    }

    /// The install prefix: the parent of the executable's directory (`/usr` for `/usr/bin`).
    static var prefix: String {
        let dir = executableDirectory
        guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { return "/usr" }
        return String(dir[..<slash])
    }

    static var multiarchTriplet: String {
        #if arch(x86_64)
        "x86_64-linux-gnu"
        #elseif arch(arm64)
        "aarch64-linux-gnu"
        #else
        "unknown-linux-gnu"
        #endif
    }

    /// System handlers first (so a user directory cannot shadow a shipped handler), then the user's.
    public static var defaultPluginDirectories: [String] {
        ["\(prefix)/lib/\(multiarchTriplet)/bgsync/plugins", xdg("XDG_DATA_HOME", ".local/share") + "/bgsync/plugins"]
    }

    /// `bgsync-worker` next to the agent (a build tree), else in `<prefix>/libexec/bgsync`.
    public static var defaultWorkerExecutable: String {
        let sibling = executableDirectory + "/bgsync-worker"
        return access(sibling, X_OK) == 0 ? sibling : "\(prefix)/libexec/bgsync/bgsync-worker"
    }
}
