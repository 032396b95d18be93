// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import DBusKit
import Foundation
import MainLoop
import Synchronization

/// What UPower and power-profiles-daemon say.
struct PowerSnapshot: Sendable, Equatable {
    /// UPower owns its name and answered.
    var upower: Bool
    var onBattery: Bool
    /// The display device's Percentage, when it has a battery (IsPresent).
    var percentage: Double?
    /// power-profiles-daemon's ActiveProfile, nil without it.
    var profile: String?

    var status: PowerStatus {
        PowerStatus(
            onBattery: upower && onBattery, batteryPercentage: upower ? percentage : nil,
            powerSaver: profile == "power-saver")
    }
}

/// What the bus thread reports.
enum PowerEvent: Sendable, Equatable {
    case snapshot(PowerSnapshot)
    /// No system bus at all; nothing more will come.
    case failed(String)
}

/// Talks to the system bus on a thread of its own, with its own MainLoop, so a slow or hung
/// UPower never holds up the agent's loop: it reads UPower's `OnBattery`, the display device's
/// `Percentage` and power-profiles-daemon's `ActiveProfile` at start and again on every
/// PropertiesChanged or owner change of those services, and reports each new snapshot to
/// `deliver` (on this thread; the caller posts it to its loop).
final class PowerClientThread: Sendable {
    static let upower = "org.freedesktop.UPower"
    static let upowerPath = "/org/freedesktop/UPower"
    static let displayDevice = "/org/freedesktop/UPower/devices/DisplayDevice"
    static let deviceInterface = "org.freedesktop.UPower.Device"
    /// power-profiles-daemon's names: the current one (0.20 and later), then the older one.
    static let profiles: [(name: String, path: String, interface: String)] = [
        (
            "org.freedesktop.UPower.PowerProfiles", "/org/freedesktop/UPower/PowerProfiles",
            "org.freedesktop.UPower.PowerProfiles"
        ),
        ("net.hadess.PowerProfiles", "/net/hadess/PowerProfiles", "net.hadess.PowerProfiles"),
    ]
    /// A service that does not answer within this is taken as absent until its next change.
    static let callTimeout = 2.0

    private let bus: BusAddress
    private let deliver: @Sendable (PowerEvent) -> Void
    private let stopRequested = Atomic<Bool>(false)
    /// The thread's own loop. It blocks until the bus has something (no periodic wake-ups: the
    /// agent idles at zero wake-ups a second); `stop` wakes it.
    private let loop = MainLoop()
    /// The thread's re-read, for `refresh`; only used on the thread.
    private let reader = Reader()

    init(bus: BusAddress, deliver: @escaping @Sendable (PowerEvent) -> Void) {
        self.bus = bus
        self.deliver = deliver
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "bgsync-power"
        thread.start()
    }

    /// Reads everything again (after a resume) and reports what changed. Any thread.
    func refresh() {
        loop.post { [self] in reader.refresh?() }
    }

    /// Ends the thread soon. Any thread.
    func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        loop.post {}
    }

    private func run() {
        let connection: DBusConnection
        do {
            connection = try DBusConnection(bus: bus)
        } catch {
            deliver(.failed(error.message))
            return
        }
        defer { connection.close() }
        var last: PowerSnapshot?
        let refresh = { [self] in
            let snapshot = Self.read(connection)
            if snapshot != last {
                last = snapshot
                deliver(.snapshot(snapshot))
            }
        }
        do {
            var names = [Self.upower] + Self.profiles.map(\.name)
            for name in names {
                try connection.addMatch(
                    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                        + "member='NameOwnerChanged',arg0='\(name)'"
                ) { _ in refresh() }
            }
            names = [Self.upowerPath, Self.displayDevice] + Self.profiles.map(\.path)
            for path in names {
                try connection.addMatch(
                    "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                        + "path='\(path)'"
                ) { _ in refresh() }
            }
        } catch {
            deliver(.failed("cannot follow UPower: \(error.message)"))
            return
        }
        connection.attach(to: loop)
        reader.refresh = refresh
        defer { reader.refresh = nil }
        refresh()
        while !stopRequested.load(ordering: .sequentiallyConsistent) && connection.isConnected {
            loop.iterate(timeout: nil)
        }
        if !stopRequested.load(ordering: .sequentiallyConsistent) {
            deliver(.failed("the system bus went away"))
        }
    }

    /// Reads everything afresh (a handful of small calls, only when something changed).
    private static func read(_ connection: DBusConnection) -> PowerSnapshot {
        var snapshot = PowerSnapshot(upower: false, onBattery: false)
        if let onBattery = get(connection, upower, upowerPath, upower, "OnBattery")?.boolValue {
            snapshot.upower = true
            snapshot.onBattery = onBattery
            let present = get(connection, upower, displayDevice, deviceInterface, "IsPresent")?.boolValue ?? false
            let percentage = get(connection, upower, displayDevice, deviceInterface, "Percentage")
            if present, case .double(let value)? = percentage { snapshot.percentage = value }
        }
        for daemon in profiles {
            if let profile = get(connection, daemon.name, daemon.path, daemon.interface, "ActiveProfile")?.stringValue {
                snapshot.profile = profile
                break
            }
        }
        return snapshot
    }

    private static func get(
        _ connection: DBusConnection, _ destination: String, _ path: String, _ interface: String, _ property: String
    ) -> Value? {
        let reply = try? connection.call(
            destination: destination, path: path, interface: "org.freedesktop.DBus.Properties", method: "Get",
            arguments: [.string(interface), .string(property)], timeout: callTimeout)
        return reply?.first?.unwrappingVariants
    }
}

/// The thread's re-read, set and used only on that thread.
private final class Reader: @unchecked Sendable {
    var refresh: (() -> Void)?
}
