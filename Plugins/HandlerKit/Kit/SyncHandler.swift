// SPDX-License-Identifier: Apache-2.0
import FoundationEssentials

/// A handler: the code that does the work of a sync event ("upload the outbox").
///
/// A plain type, testable without any host: build a `HandlerEvent` with a Swift dictionary of
/// options and call `handle`. In a plugin library, `PluginExport.entry` turns it into the C ABI.
public protocol SyncHandler {
    /// The name apps pass to Register: letters, digits, '_' and '-'.
    static var name: String { get }
    /// One line for `bgsyncctl state` and the logs.
    static var description: String { get }
    /// May sandboxed apps use it? Only if it cannot reach beyond what the app itself could.
    static var sandboxSafe: Bool { get }
    /// The options that hold a file or directory path, and those that hold an http(s) URL: the
    /// agent checks them at Register for sandboxed apps. Open path options only through
    /// `event.files`, which keeps them beneath the app's root at every event. Default: none.
    static var pathOptions: [String] { get }
    static var urlOptions: [String] { get }
    /// Made once per worker process, before the first event; released when the worker exits
    /// normally (a class handler's `deinit` then runs; not when the worker is killed).
    init()
    /// Handles one event. May block, but should return before `event.deadline`.
    func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult
}

extension SyncHandler {
    public static var pathOptions: [String] { [] }
    public static var urlOptions: [String] { [] }
}

/// What a handler made of an event.
public enum HandlerResult: Equatable, Sendable {
    /// Done; `detail` such as "sent 3 files".
    case success(String)
    /// Try again later with back-off; `after` (seconds) is a lower bound such as an HTTP
    /// Retry-After, nil for none. `advanced`: this attempt moved the work forward in a way the
    /// next attempt keeps (a resumable upload's server confirmed more bytes than ever before), so
    /// it does not count toward max-attempts (BGSYNC_RESULT_ADVANCED). Only for progress that is
    /// not repeated, or a registration could retry for ever.
    case retry(after: Double?, String, advanced: Bool = false)
    /// Give up: retrying cannot help (a 4xx, a conflict, a bad option).
    case failure(String)

    /// The detail text, whatever the outcome.
    public var detail: String {
        switch self {
        case .success(let detail), .retry(_, let detail, _), .failure(let detail): return detail
        }
    }
}

/// Where a handler writes log lines: the agent's log in a worker, anything in tests. Use it
/// only on the thread that called `handle`, and only during that call.
public struct HandlerLog {
    /// Syslog priorities, as BGSYNC_LOG_* in the C header.
    public enum Priority: Int32, Sendable {
        case error = 3
        case warning = 4
        case notice = 5
        case info = 6
        case debug = 7
    }

    private let sink: (Priority, String) -> Void

    public init(_ sink: @escaping (Priority, String) -> Void) {
        self.sink = sink
    }

    /// A log that drops everything.
    public static var discard: HandlerLog { HandlerLog { _, _ in } }

    public func write(_ priority: Priority, _ message: String) { sink(priority, message) }
    public func error(_ message: String) { sink(.error, message) }
    public func warning(_ message: String) { sink(.warning, message) }
    public func info(_ message: String) { sink(.info, message) }
    public func debug(_ message: String) { sink(.debug, message) }
}
