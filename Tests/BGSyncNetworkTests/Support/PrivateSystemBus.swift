// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import TestKit

/// A private bus playing the system bus for this test process only (TestKit's `PrivateBus` of
/// kind `.system`).
///
/// It is started once and lives as long as the process: GIO's shared system-bus connection
/// (which NMClient uses) is process-wide, reads `DBUS_SYSTEM_BUS_ADDRESS` once, and makes the
/// process exit if that bus goes away. `DBUS_SYSTEM_BUS_ADDRESS` is set before any NMClient
/// exists, and child processes (dbusmock, dbus-send) inherit it.
enum PrivateSystemBus {
    static let shared: Result<PrivateBus, TestSetupError> = {
        do throws(TestSetupError) {
            let bus = try PrivateBus(kind: .system)
            setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address, 1)
            keptBus.withLock { $0 = bus }
            // The daemon is killed at exit: statics are never deinitialised, and `shared` keeps
            // the bus too, so letting go of it here would not end the daemon.
            atexit { keptBus.withLock { $0?.kill() } }
            return .success(bus)
        } catch {
            return .failure(error)
        }
    }()
}

private let keptBus = Mutex<PrivateBus?>(nil)
