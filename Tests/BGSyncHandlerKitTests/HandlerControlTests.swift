// SPDX-License-Identifier: Apache-2.0
import CBGSyncPlugin
import Foundation
import Testing

@testable import BGSyncHandlerKit

@Suite struct HandlerControlTests {
    /// A host table with cancellation and progress, recording progress in the event's log.
    func hostWithControl() -> bgsync_host {
        var host = fakeHost()
        host.cancelled = { _ in true }
        host.cancel_fd = { _ in 42 }
        host.progress = { event, done, total, text in
            FakeEvent.from(event).logs.append("progress \(done)/\(total) \(text.map { String(cString: $0) } ?? "-")")
        }
        return host
    }

    @Test func cancellationAndProgressGoThroughTheHostTable() {
        var host = hostWithControl()
        let event = FakeEvent(options: [:])
        withUnsafePointer(to: &host) { table in
            let control = HandlerControl(host: table, event: event.pointer)
            #expect(control.isCancelled)
            control.progress(done: 1, total: 2, "half")
            #expect(event.logs == ["progress 1/2 half"])
            // After a report the handler's budget follows what `deadline` now says.
            #expect(control.movedDeadline == Date(timeIntervalSince1970: 2_000_000_000))
        }
    }

    @Test func aFirstReleaseHostTableIsServedWithoutThem() {
        var host = hostWithControl()
        let firstRelease = MemoryLayout<bgsync_host>.offset(of: \bgsync_host.log)! + MemoryLayout<UnsafeRawPointer>.size
        host.struct_size = UInt32(firstRelease)
        let event = FakeEvent(options: [:])
        withUnsafePointer(to: &host) { table in
            let control = HandlerControl(host: table, event: event.pointer)
            #expect(!control.isCancelled, "a table without `cancelled` is never read past its size")
            control.progress(done: 1, total: 2, "half")
            #expect(event.logs.isEmpty)
            #expect(control.movedDeadline == nil)
        }
    }
}
