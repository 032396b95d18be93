// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// A private `dbus-daemon` (never the user's bus), killed when this goes away: the one way the
/// Swift tests get a bus. A `.session` bus plays the session bus; a `.system` bus plays the
/// system bus at a socket in its own directory. Its configuration allows everything and lists
/// only `serviceDirectories`, so nothing installed on the machine (such as a packaged
/// org.bgsync.service) is ever activated into a test.
public final class PrivateBus: @unchecked Sendable {
    public enum Kind: String, Sendable {
        case session
        case system
    }

    public let kind: Kind
    public let address: String
    /// A directory of this bus's own, removed with it: its configuration, socket and logs.
    public let directory: String
    public let daemon: ChildProcess

    public init(kind: Kind = .session, serviceDirectories: [String] = []) throws(TestSetupError) {
        var template = Array("/tmp/bgsync-test-bus-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TestSetupError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        self.kind = kind
        directory = String(cString: made)
        let config = directory + "/bus.conf"
        let listen = kind == .session ? "unix:dir=\(directory)" : "unix:path=\(directory)/system_bus_socket"
        try Self.write(Self.configuration(kind: kind, listen: listen, services: serviceDirectories), to: config)
        do throws(TestSetupError) {
            daemon = try ChildProcess(
                ["/usr/bin/dbus-daemon", "--config-file=" + config, "--nofork", "--nopidfile", "--print-address=1"],
                errors: .file(directory + "/dbus-daemon.log"))
            // dbus-daemon prints its address once it listens; end of file means it failed.
            guard let line = try daemon.readLine(timeout: 10), !line.isEmpty else {
                throw TestSetupError(
                    "dbus-daemon exited without printing an address: \(Self.read(directory + "/dbus-daemon.log"))")
            }
            address = line
        } catch {
            Self.remove(directory)
            throw error
        }
    }

    deinit {
        daemon.kill()
        Self.remove(directory)
    }

    /// What the daemon wrote to stderr so far.
    public var log: String { Self.read(directory + "/dbus-daemon.log") }

    private static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Stops the daemon now (its clients see the bus go away).
    public func kill() { daemon.kill() }

    public static func configuration(kind: Kind, listen: String, services: [String] = []) -> String {
        let serviceLines = services.map { "  <servicedir>\($0)</servicedir>\n" }.joined()
        return """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>\(kind.rawValue)</type>
              <listen>\(listen)</listen>
              <auth>EXTERNAL</auth>
            \(serviceLines)  <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_destination="*" eavesdrop="true"/>
                <allow eavesdrop="true"/>
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

    private static func write(_ text: String, to path: String) throws(TestSetupError) {
        guard let file = fopen(path, "w") else {
            throw TestSetupError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        let bytes = Array(text.utf8)
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else {
            throw TestSetupError("cannot write \(path)")
        }
    }

    private static func remove(_ directory: String) {
        _ = try? runProgram(["/bin/rm", "-rf", directory])
    }
}
