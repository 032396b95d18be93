// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Logging

import class Foundation.FileManager

#if canImport(Glibc)
import Glibc
#endif

/// A handler plugin that passed its probe.
public struct LoadedHandler: Sendable, Equatable {
    public var info: HandlerInfo
    /// The plugin file the worker loads.
    public var path: String

    public init(info: HandlerInfo, path: String) {
        self.info = info
        self.path = path
    }
}

/// A plugin file that discovery turned down, and why (a sentence a person can act on).
public struct RefusedPlugin: Sendable, Equatable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// A plugin file is either usable, or refused for a reason.
enum Verdict<Value> {
    case usable(Value)
    case refused(String)
}

/// The handlers the agent can run, found by scanning plugin directories.
public struct PluginCatalog: Sendable {
    /// By handler name.
    public var handlers: [String: LoadedHandler]
    /// Files that were found but not used, in scan order.
    public var refused: [RefusedPlugin]

    public init(handlers: [String: LoadedHandler] = [:], refused: [RefusedPlugin] = []) {
        self.handlers = handlers
        self.refused = refused
    }

    /// Scans `directories` in order for `*.so` files (the first file with a given handler name
    /// wins; later ones are logged and refused). Refuses, with a log line saying why, files that
    /// are not regular files, that another user could have written (group- or other-writable,
    /// or owned by someone other than root or us), or whose probe fails (wrong ABI version,
    /// missing entry point, a crash or hang while loading, a bad name). Each file is probed in
    /// its own `workerExecutable --probe` process, so a bad plugin cannot harm the agent, given
    /// at most `probeTimeout` seconds. Blocks: call it at start-up or on reload, not per event.
    public static func discover(
        directories: [String], workerExecutable: String, logger: Logger, probeTimeout: Double = 5
    ) -> PluginCatalog {
        var catalog = PluginCatalog()
        for directory in directories {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: directory)
            } catch {
                logger.debug("No handler plugins in \(directory): it cannot be read (\(error.localizedDescription)).")
                continue
            }
            for name in names.sorted() where name.hasSuffix(".so") {
                let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
                let verdict = examine(path, workerExecutable: workerExecutable, timeout: probeTimeout)
                switch verdict {
                case .refused(let reason):
                    logger.warning("Not using handler plugin \(path): \(reason)")
                    catalog.refused.append(RefusedPlugin(path: path, reason: reason))
                case .usable(let handler):
                    if let first = catalog.handlers[handler.info.name] {
                        let reason =
                            "Handler '\(handler.info.name)' is already provided by \(first.path), which comes first; remove one of them."
                        logger.warning("Not using handler plugin \(path): \(reason)")
                        catalog.refused.append(RefusedPlugin(path: path, reason: reason))
                    } else {
                        let info = handler.info
                        let declared =
                            info.pathOptions.isEmpty && info.urlOptions.isEmpty
                            ? "" : " (path options: \(info.pathOptions), URL options: \(info.urlOptions))"
                        logger.info("Handler '\(info.name)' from \(path): \(info.description)\(declared)")
                        catalog.handlers[handler.info.name] = handler
                    }
                }
            }
        }
        return catalog
    }

    private static func examine(_ path: String, workerExecutable: String, timeout: Double) -> Verdict<LoadedHandler> {
        if let reason = unsafeFileReason(path) { return .refused(reason) }
        switch PluginProbe.run(path: path, workerExecutable: workerExecutable, timeout: timeout) {
        case .refused(let reason):
            return .refused(reason)
        case .usable(let info):
            do {
                try Identifiers.validateHandlerName(info.name)
            } catch {
                return .refused(error.message)
            }
            return .usable(LoadedHandler(info: info, path: path))
        }
    }

    /// Why loading `path` would run code someone else could have planted, or nil if it is safe.
    /// Symlinks are followed: the file they lead to is what gets loaded.
    static func unsafeFileReason(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return "It cannot be examined: \(String(cString: strerror(errno)))."
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            return "It is not a regular file."
        }
        if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
            let mode = String(info.st_mode & 0o777, radix: 8)
            return "It is writable by other users (mode \(mode)); make it writable by its owner only (chmod go-w)."
        }
        let me = geteuid()
        guard info.st_uid == 0 || info.st_uid == me else {
            return
                "It is owned by user \(info.st_uid), neither root nor the user running bgsync (\(me)); only files they own are loaded."
        }
        return nil
    }
}
