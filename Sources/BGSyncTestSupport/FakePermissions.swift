// SPDX-License-Identifier: Apache-2.0
import BGSyncCore

/// A permission store the test switches apps off and on in by hand.
public final class FakePermissions: AppPermissions {
    public private(set) var denied: Set<String>
    public var onChange: ((Set<String>) -> Void)?

    public init(denied: Set<String> = []) { self.denied = denied }

    public func start() {}

    public func deny(_ appID: String) { set(denied.union([appID])) }
    public func allow(_ appID: String) { set(denied.subtracting([appID])) }

    public func set(_ denied: Set<String>) {
        guard denied != self.denied else { return }
        self.denied = denied
        onChange?(denied)
    }
}
