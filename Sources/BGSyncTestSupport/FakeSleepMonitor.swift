// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// A machine whose sleep the test announces by hand, recording the lock the scheduler asks for.
public final class FakeSleepMonitor: SleepMonitor {
    public var onPrepareForSleep: ((Bool) -> Void)?
    public var stopGrace: Double
    /// Whether the lock is held now.
    public private(set) var holding = false
    /// Every change of the lock asked for, in order.
    public private(set) var changes: [Bool] = []

    public init(stopGrace: Double = 2) { self.stopGrace = stopGrace }

    public func start() {}

    public func holdSleepDelay(_ hold: Bool) {
        changes.append(hold)
        holding = hold
    }

    /// What logind's PrepareForSleep(`sleeping`) does.
    public func prepare(_ sleeping: Bool) { onPrepareForSleep?(sleeping) }
}
