import Foundation
import Synchronization

/// A real dbus-daemon playing the system bus for this test process only, at a unix socket in a
/// temp dir, with a policy that allows everything.
///
/// It is started once and lives as long as the process: GIO's shared system-bus connection
/// (which NMClient uses) is process-wide, reads `DBUS_SYSTEM_BUS_ADDRESS` once, and makes the
/// process exit if that bus goes away. `DBUS_SYSTEM_BUS_ADDRESS` is set before any NMClient
/// exists, and child processes (dbusmock, dbus-send) inherit it.
final class PrivateSystemBus: Sendable {
    static let shared: Result<PrivateSystemBus, TestSetupError> = {
        do { return .success(try PrivateSystemBus()) } catch let error as TestSetupError { return .failure(error) } catch { return .failure(TestSetupError("\(error)")) }
    }()

    let address: String
    let directory: URL

    private init() throws(TestSetupError) {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("bgsync-net-bus-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let config = directory.appendingPathComponent("system.conf")
            try Self.config(socket: directory.appendingPathComponent("system_bus_socket").path)
                .write(to: config, atomically: true, encoding: .utf8)
            let daemon = Process()
            daemon.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
            daemon.arguments = ["--config-file=\(config.path)", "--nofork", "--print-address"]
            let output = Pipe()
            daemon.standardOutput = output
            // Not our stderr: a daemon outliving a crashed test must not hold the runner's pipe.
            daemon.standardError = try Self.logFile(directory.appendingPathComponent("dbus-daemon.log"))
            try daemon.run()
            // dbus-daemon prints its address once it listens; EOF means it failed.
            let line = String(decoding: output.fileHandleForReading.readLine(), as: UTF8.self)
            guard !line.isEmpty else {
                throw TestSetupError("dbus-daemon exited without printing an address; see its stderr above")
            }
            address = line
            daemonPID.store(daemon.processIdentifier, ordering: .sequentiallyConsistent)
            busDirectory.withLock { $0 = directory.path }
            // SIGKILL: children inherit the test thread's blocked signal mask, SIGTERM included.
            atexit {
                kill(daemonPID.load(ordering: .sequentiallyConsistent), SIGKILL)
                if let path = busDirectory.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
            }
            setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1)
        } catch let error as TestSetupError {
            throw error
        } catch {
            throw TestSetupError("cannot start a private dbus-daemon: \(error)")
        }
    }

    /// Where a child's stderr goes, kept for reading after a failure.
    static func logFile(_ url: URL) throws -> FileHandle {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        return try FileHandle(forWritingTo: url)
    }

    private static func config(socket: String) -> String {
        """
        <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
         "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
        <busconfig>
          <type>system</type>
          <listen>unix:path=\(socket)</listen>
          <auth>EXTERNAL</auth>
          <policy context="default">
            <allow user="*"/>
            <allow own="*"/>
            <allow send_type="method_call"/>
            <allow send_type="signal"/>
            <allow send_type="method_return"/>
            <allow send_type="error"/>
            <allow receive_type="method_call"/>
            <allow receive_type="signal"/>
            <allow receive_type="method_return"/>
            <allow receive_type="error"/>
          </policy>
        </busconfig>
        """
    }
}

private let daemonPID = Atomic<Int32>(0)
private let busDirectory = Mutex<String?>(nil)

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension FileHandle {
    /// Reads up to a newline (blocking), without it.
    func readLine() -> [UInt8] {
        var bytes: [UInt8] = []
        while true {
            let chunk = readData(ofLength: 1)
            guard let byte = chunk.first, byte != UInt8(ascii: "\n") else { return bytes }
            bytes.append(byte)
        }
    }
}
