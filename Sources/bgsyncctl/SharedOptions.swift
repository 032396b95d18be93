// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import DBusKit

/// Options every subcommand takes.
struct SharedOptions: ParsableArguments {
    /// Use the bus at this D-Bus address (e.g. unix:path=/run/user/1000/bus) instead of the
    /// session bus. Without it, DBUS_SESSION_BUS_ADDRESS is honoured as libdbus does.
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Bus address to use instead of the session bus (default: $DBUS_SESSION_BUS_ADDRESS).",
            valueName: "address"))
    var address: String?

    /// Print machine-readable JSON instead of text meant for people.
    @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
    var json = false

    var bus: BusAddress { address.map { .address($0) } ?? .session }
}
