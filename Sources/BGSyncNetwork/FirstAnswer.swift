// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization

/// Holds the libnm thread's first event so `start()` can wait for it, boundedly.
final class FirstAnswer: Sendable {
    private let event = Mutex<NetworkManagerEvent?>(nil)
    private let arrived = DispatchSemaphore(value: 0)

    /// Keeps the first event offered; later ones are ignored. Any thread.
    func offer(_ newEvent: NetworkManagerEvent) {
        let isFirst = event.withLock { held in
            guard held == nil else { return false }
            held = newEvent
            return true
        }
        if isFirst { arrived.signal() }
    }

    /// The first event, or nil when none came within `seconds`.
    func wait(seconds: Double) -> NetworkManagerEvent? {
        guard arrived.wait(timeout: .now() + seconds) == .success else { return nil }
        return event.withLock { $0 }
    }
}
