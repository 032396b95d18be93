// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization

/// Hands the first of a stream of values from one thread to another that waits for it,
/// boundedly: a monitor thread (libnm's, the power bus's) offers every event, and `start()` on
/// the loop thread waits a short while for the first one only.
public final class FirstValue<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    private let arrived = DispatchSemaphore(value: 0)

    public init() {}

    /// Keeps the first value offered; later ones are ignored. Any thread.
    public func offer(_ newValue: Value) {
        let isFirst = value.withLock { held in
            guard held == nil else { return false }
            held = newValue
            return true
        }
        if isFirst { arrived.signal() }
    }

    /// The first value, or nil when none came within `seconds`. One waiter, once.
    public func wait(seconds: Double) -> Value? {
        guard arrived.wait(timeout: .now() + seconds) == .success else { return nil }
        return value.withLock { $0 }
    }
}
