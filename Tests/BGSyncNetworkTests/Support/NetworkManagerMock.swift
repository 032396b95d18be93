// SPDX-License-Identifier: Apache-2.0
import Foundation
import TestKit

/// python-dbusmock's `networkmanager` template on the private system bus: a stand-in
/// NetworkManager whose state the test sets.
final class NetworkManagerMock {
    private var process: ChildProcess?

    /// Starts the mock and waits until it owns `org.freedesktop.NetworkManager`, then gives it
    /// a `Metered` property (the template has none) and the given state.
    init(state: UInt32, metered: UInt32 = 0) throws(TestSetupError) {
        try start()
        try run([
            "gdbus", "call", "--system", "--dest", Self.name, "--object-path", Self.managerPath,
            "--method", "org.freedesktop.DBus.Mock.AddProperty", Self.name, "Metered", "<uint32 \(metered)>",
        ])
        try setState(state)
    }

    deinit { stop() }

    func start() throws(TestSetupError) {
        let bus = try PrivateSystemBus.shared.get()
        process = try ChildProcess(
            ["/usr/bin/python3", "-m", "dbusmock", "--template", "networkmanager", "--system"],
            errors: .file(bus.directory + "/dbusmock.log"))
        // gdbus wait follows NameOwnerChanged: it returns as soon as the name is owned.
        try run(["gdbus", "wait", "--system", "--timeout", "20", Self.name])
    }

    /// Kills the mock (its bus name disappears, as when NetworkManager stops) and waits until
    /// the bus has let go of the name, so the next mock is the one a client sees.
    func stop() {
        guard let process else { return }
        self.process = nil
        process.kill()
        for _ in 0..<100 {
            let answer = try? output([
                "gdbus", "call", "--system", "--dest", "org.freedesktop.DBus",
                "--object-path", "/org/freedesktop/DBus",
                "--method", "org.freedesktop.DBus.NameHasOwner", Self.name,
            ])
            if answer?.contains("false") ?? true { return }
        }
    }

    func setState(_ state: UInt32) throws(TestSetupError) {
        try run([
            "gdbus", "call", "--system", "--dest", Self.name, "--object-path", "/org/freedesktop",
            "--method", "org.freedesktop.DBus.Mock.SetGlobalConnectionState", "\(state)",
        ])
    }

    /// An NMMetered value: 1 yes, 2 no, 3 guess-yes, 4 guess-no.
    func setMetered(_ metered: UInt32) throws(TestSetupError) {
        try run([
            "gdbus", "call", "--system", "--dest", Self.name, "--object-path", "/org/freedesktop",
            "--method", "org.freedesktop.DBus.Mock.SetProperty",
            Self.managerPath, Self.name, "Metered", "<uint32 \(metered)>",
        ])
    }

    private static let name = "org.freedesktop.NetworkManager"
    private static let managerPath = "/org/freedesktop/NetworkManager"

    private func run(_ argv: [String]) throws(TestSetupError) { _ = try output(argv) }

    private func output(_ argv: [String]) throws(TestSetupError) -> String {
        try runCommand(argv)
    }
}

/// Runs a command (found on PATH) to completion and returns its stdout; throws when it fails.
func runCommand(_ argv: [String]) throws(TestSetupError) -> String {
    try runChecked(argv)
}
