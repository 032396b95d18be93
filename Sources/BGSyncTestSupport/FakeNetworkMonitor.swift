// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// A network the test switches by hand.
public final class FakeNetworkMonitor: NetworkMonitor {
    public private(set) var status: NetworkStatus
    public var onChange: ((NetworkStatus) -> Void)?

    public init(_ status: NetworkStatus = .offline) { self.status = status }

    public func start() {}

    public func set(_ status: NetworkStatus) {
        guard status != self.status else { return }
        self.status = status
        onChange?(status)
    }
}
