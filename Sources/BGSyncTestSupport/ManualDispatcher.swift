// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// A dispatcher whose events stay running until the test finishes them.
public final class ManualDispatcher: EventDispatcher {
    public private(set) var started: [SyncEvent] = []
    /// Stop requests, in order: (event id, grace seconds).
    public private(set) var cancelled: [(id: UInt64, grace: Double)] = []
    private var completions: [UInt64: (HandlerOutcome) -> Void] = [:]

    public init() {}

    public var runningIDs: [UInt64] { completions.keys.sorted() }

    public func dispatch(_ event: SyncEvent, completion: @escaping (HandlerOutcome) -> Void) {
        started.append(event)
        completions[event.id] = completion
    }

    public func cancel(eventID: UInt64, grace: Double) {
        cancelled.append((eventID, grace))
    }

    /// Finishes the event with `id`, as the handler would.
    public func finish(_ id: UInt64, _ outcome: HandlerOutcome) {
        completions.removeValue(forKey: id)?(outcome)
    }

    /// Finishes the most recently started event still running.
    public func finishLast(_ outcome: HandlerOutcome) {
        guard let last = started.last(where: { completions[$0.id] != nil }) else { return }
        finish(last.id, outcome)
    }

    /// Finishes every running event with the same outcome.
    public func finishAll(_ outcome: HandlerOutcome) {
        for id in runningIDs { finish(id, outcome) }
    }
}
