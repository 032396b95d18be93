// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// A power supply the test switches by hand.
public final class FakePowerMonitor: PowerMonitor {
    public private(set) var status: PowerStatus
    public var onChange: ((PowerStatus) -> Void)?

    public init(_ status: PowerStatus = .ac) { self.status = status }

    public func start() {}

    public func set(_ status: PowerStatus) {
        guard status != self.status else { return }
        self.status = status
        onChange?(status)
    }
}
