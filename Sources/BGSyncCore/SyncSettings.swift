// SPDX-License-Identifier: Apache-2.0
/// The scheduler's knobs, with Chromium's defaults. Durations are seconds.
public struct SyncSettings: Sendable, Equatable {
    public var maxAttempts: UInt32 = 3
    public var retryInitialDelay: Double = 300
    public var retryFactor: Double = 3
    /// A fraction: each wait is stretched or shrunk by up to this much at random. 0 turns it off.
    public var retryJitter: Double = 0
    public var eventTimeout: Double = 180
    public var minPeriodicInterval: Double = 15 * 60
    public var registrationsPerApp: Int = 1000
    public var concurrentEvents: Int = 4
    /// Upper bound a caller may ask for with `max-attempts`.
    public var maxAttemptsLimit: UInt32 = 100
    /// Largest encoded size of one registration's handler options.
    public var maxOptionsBytes: Int = 64 * 1024

    // Conditions and progress.
    /// A handler that reports progress may go this long without its `done` changing, instead of
    /// being held to `eventTimeout`.
    public var eventStallTimeout: Double = 60
    /// No event runs longer than this, progress or not.
    public var eventCeiling: Double = 3600
    /// How long a handler asked to stop (a condition was lost) has before it is killed.
    public var interruptGracePeriod: Double = 5
    /// `power=battery-not-low` waits below this charge, in percent.
    public var batteryLowThreshold: Double = 20
    /// At most one SyncProgress signal per registration in this many seconds.
    public var progressSignalInterval: Double = 1

    public init() {}

    /// The wait after the `failures`-th failed attempt (1-based): initial × factor^(failures−1),
    /// with jitter applied from `unitRandom` in [0, 1).
    public func backoff(afterFailures failures: UInt32, unitRandom: Double) -> Double {
        let exponent = Double(max(failures, 1) - 1)
        let base = retryInitialDelay * pow(retryFactor, exponent)
        let jitter = 1 + retryJitter * (2 * unitRandom - 1)
        return max(0, base * jitter)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
