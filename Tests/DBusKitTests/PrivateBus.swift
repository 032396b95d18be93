import DBusKit
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MainLoop

/// Hands a non-Sendable value across threads where the test guarantees one thread at a time.
struct Unchecked<T>: @unchecked Sendable {
    var value: T
}

/// A private session-type `dbus-daemon` (never the user's bus), killed when this goes away. Its
/// configuration has no service directories, so nothing installed on the machine (such as a
/// packaged org.bgsync.service) is ever activated into a test.
final class PrivateBus: @unchecked Sendable {
    let daemon: ChildProcess
    let address: String
    private let directory: String

    static let configuration = """
        <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
         "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
        <busconfig>
          <type>session</type>
          <listen>unix:tmpdir=/tmp</listen>
          <auth>EXTERNAL</auth>
          <policy context="default">
            <allow send_destination="*" eavesdrop="true"/>
            <allow eavesdrop="true"/>
            <allow own="*"/>
          </policy>
        </busconfig>
        """

    init() throws {
        var template = Array("/tmp/dbuskit-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw DBusError.failed("mkdtemp failed") }
        directory = String(cString: made)
        let config = directory + "/bus.conf"
        try Self.configuration.write(toFile: config, atomically: true, encoding: .utf8)
        daemon = try ChildProcess(["/usr/bin/dbus-daemon", "--config-file=" + config, "--nofork", "--nopidfile",
                                   "--print-address=1"])
        var bytes: [UInt8] = []
        while !bytes.contains(UInt8(ascii: "\n")) {
            guard let chunk = daemon.readStdout(timeout: 10), !chunk.isEmpty else {
                daemon.kill()
                throw DBusError.failed("dbus-daemon did not print its address")
            }
            bytes += chunk
        }
        address = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func kill() { daemon.kill() }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A MainLoop running on its own thread; `run` executes a block there and waits for it.
final class LoopThread: @unchecked Sendable {
    let loop = MainLoop()
    private let finished = DispatchSemaphore(value: 0)

    init() {
        let thread = Thread { [loop, finished] in
            loop.run()
            finished.signal()
        }
        thread.start()
    }

    func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        let work = Unchecked(value: body)
        loop.post {
            box.result = Result { try work.value() }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success else { throw DBusError.timeout("loop thread did not answer") }
        return try box.result!.get()
    }

    func stop() {
        loop.stop()
        _ = finished.wait(timeout: .now() + 10)
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// Waits on a DispatchSemaphore-backed flag set from another thread.
final class Flag: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func set() { semaphore.signal() }
    func wait(seconds: Double) -> Bool { semaphore.wait(timeout: .now() + seconds) == .success }
}

/// Runs a program to completion, returning its exit status, stdout and stderr.
func runProgram(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let child = try ChildProcess([path] + arguments, environment: environment)
    let (out, err) = child.readToEnd()
    let status = child.wait()
    return (status, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}
