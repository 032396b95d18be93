// SPDX-License-Identifier: Apache-2.0
// nm-dispatcher's idle RSS, measured here: started on a private system bus (it is D-Bus
// activated on a real system), read once it owns its name.
import Foundation

func dispatcherRSSKiB() throws -> Int? {
    let executable = "/usr/lib/NetworkManager/nm-dispatcher"
    guard FileManager.default.isExecutableFile(atPath: executable) else { return nil }
    let bus = try PrivateBus(system: true)
    defer { bus.stop() }
    let client = try BusClient(address: bus.address)
    let owned = client.nameOwnedWatcher("org.freedesktop.nm_dispatcher")
    let env = ProcessInfo.processInfo.environment.merging(["DBUS_SYSTEM_BUS_ADDRESS": bus.address]) { $1 }
    let process = try Child([executable, "--persist"], environment: env)
    defer { process.stop() }
    try client.wait(timeout: 20, what: "nm-dispatcher owning org.freedesktop.nm_dispatcher") {
        owned.value || !process.isRunning
    }
    return procStatusKiB(pid: process.pid, field: "VmRSS")
}
