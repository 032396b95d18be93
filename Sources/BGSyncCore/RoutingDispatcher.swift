// SPDX-License-Identifier: Apache-2.0
/// Runs each event where its handler lives: handlers built into the agent (such as `app`, which
/// waits on the bus instead of on a worker process) by name, everything else in `plugins` (the
/// worker pool). The scheduler sees one dispatcher and cannot tell them apart: same outcomes,
/// same signals, same time cap.
public final class RoutingDispatcher: EventDispatcher {
    private let builtIn: [String: any EventDispatcher]
    private let plugins: any EventDispatcher

    public init(builtIn: [String: any EventDispatcher], plugins: any EventDispatcher) {
        self.builtIn = builtIn
        self.plugins = plugins
    }

    public func dispatch(_ event: SyncEvent, completion: @escaping (HandlerOutcome) -> Void) {
        (builtIn[event.handler] ?? plugins).dispatch(event, completion: completion)
    }

    /// Asks whichever dispatcher runs `eventID` to stop it (the others do not know the id and
    /// ignore it).
    public func cancel(eventID: UInt64, grace: Double) {
        for dispatcher in builtIn.values { dispatcher.cancel(eventID: eventID, grace: grace) }
        plugins.cancel(eventID: eventID, grace: grace)
    }

    /// The handlers the scheduler may offer: the plugins' and the built-in ones', a built-in one
    /// winning over a plugin of the same name. Returns the plugin names it shadowed, to log.
    public static func handlers(
        builtIn: [HandlerInfo], plugins: [String: HandlerInfo]
    ) -> (handlers: [String: HandlerInfo], shadowed: [String]) {
        var all = plugins
        var shadowed: [String] = []
        for info in builtIn {
            if all[info.name] != nil { shadowed.append(info.name) }
            all[info.name] = info
        }
        return (all, shadowed.sorted())
    }
}
