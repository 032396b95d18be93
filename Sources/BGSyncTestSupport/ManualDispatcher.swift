import BGSyncCore

/// A dispatcher whose events stay running until the test finishes them.
public final class ManualDispatcher: EventDispatcher {
    public private(set) var started: [SyncEvent] = []
    private var completions: [UInt64: (HandlerOutcome) -> Void] = [:]

    public init() {}

    public var runningIDs: [UInt64] { completions.keys.sorted() }

    public func dispatch(_ event: SyncEvent, completion: @escaping (HandlerOutcome) -> Void) {
        started.append(event)
        completions[event.id] = completion
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
