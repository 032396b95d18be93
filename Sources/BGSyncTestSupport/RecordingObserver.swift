// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// Records what a scheduler announces, as the bus signals would.
public final class RecordingObserver: SyncObserver {
    public struct Finished: Equatable, Sendable {
        public var key: RegistrationKey
        public var outcome: SyncOutcome
        public var detail: String

        public init(key: RegistrationKey, outcome: SyncOutcome, detail: String) {
            self.key = key
            self.outcome = outcome
            self.detail = detail
        }
    }

    public private(set) var started: [SyncEvent] = []
    public private(set) var finished: [Finished] = []
    public private(set) var storageErrors: [SyncError] = []
    public private(set) var progress: [(key: RegistrationKey, progress: SyncProgress)] = []
    public private(set) var transfers: [(key: RegistrationKey, transfer: TransferProgress)] = []

    public init() {}

    public func syncStarted(_ event: SyncEvent) { started.append(event) }

    public func syncFinished(_ key: RegistrationKey, outcome: SyncOutcome, detail: String) {
        finished.append(Finished(key: key, outcome: outcome, detail: detail))
    }

    public func storageFailed(_ error: SyncError) { storageErrors.append(error) }

    public func syncProgress(_ key: RegistrationKey, _ progress: SyncProgress) {
        self.progress.append((key, progress))
    }

    public func syncTransfer(_ key: RegistrationKey, _ transfer: TransferProgress) {
        transfers.append((key, transfer))
    }
}
