// SPDX-License-Identifier: Apache-2.0
// The processes the harness starts: private buses, the mocked NetworkManager, the agent. Each
// is the harness's own and is stopped by `stop()` (and by the cleanup list at exit).
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn. (Foundation's Process is not used: it learns of
/// a child's exit through a descriptor the child inherits, which a daemonising dbus-daemon or
/// the agent's workers keep open, so waitUntilExit could hang.)
final class Child {
    let pid: Int32
    private(set) var exitStatus: Int32?

    init(_ argv: [String], environment: [String: String]? = nil, outputPath: String = "/dev/null") throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var env = environment ?? ProcessInfo.processInfo.environment
        env["JOURNAL_STREAM"] = nil
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in cArgs + cEnv { free(pointer) }
        }
        // The harness blocks SIGINT/SIGTERM (a thread waits for them) and ignores SIGPIPE:
        // children start with neither.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        var defaults = sigset_t()
        sigemptyset(&empty)
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let result = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard result == 0 else { throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(result)))") }
        self.pid = pid
        startedChildren.with { $0.append(self) }
    }

    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { exitStatus = status }
        return exitStatus == nil
    }

    /// Waits for the exit; returns the exit code (or 128 + signal).
    @discardableResult
    func wait() -> Int32 {
        if exitStatus == nil {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exitStatus = status
        }
        let status = exitStatus!
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// SIGTERM and wait (SIGKILL after 10 s).
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        for _ in 0..<1000 where isRunning { usleep(10_000) }
        if isRunning { kill(pid, SIGKILL) }
        wait()
    }
}

/// Every child started, so that a failing run still stops them all.
let startedChildren = Locked<[Child]>([])

/// The buses' daemons (they fork away from their Child) and the scratch directory.
let startedBusPIDs = Locked<[(pid: Int32, directory: String)]>([])
let scratchDirectories = Locked<[String]>([])

/// SIGTERM to a bus daemon, then its directory once it is gone (removing the directory while
/// the daemon unlinks its socket made the removal stop half-way). The daemon forked away from
/// us, so there is no child to wait for: it is checked every 5 ms, for 2 s at most, and counts
/// as gone once it is a zombie (this machine's init reaps them only now and then).
func stopBusDaemon(pid: Int32, directory: String) {
    kill(pid, SIGTERM)
    for _ in 0..<400 where isAlive(pid) { usleep(5_000) }
    try? FileManager.default.removeItem(atPath: directory)
}

private func isAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let end = stat.lastIndex(of: ")")
    else { return false }
    // The state letter follows "pid (comm) ".
    return stat[stat.index(end, offsetBy: 2)...].first != "Z"
}

/// Stops every child, then every bus, and removes the scratch directories.
func stopAllStarted() {
    for child in startedChildren.with({ $0 }).reversed() { child.stop() }
    startedChildren.with { $0.removeAll() }
    for bus in startedBusPIDs.with({ $0 }) { stopBusDaemon(pid: bus.pid, directory: bus.directory) }
    startedBusPIDs.with { $0.removeAll() }
    for directory in scratchDirectories.with({ $0 }) { try? FileManager.default.removeItem(atPath: directory) }
}

/// Runs a command to its end; returns its exit code.
@discardableResult
func run(_ argv: [String], environment: [String: String]? = nil) throws -> Int32 {
    try Child(argv, environment: environment).wait()
}

/// posix_spawn + wait4: the cost of starting one process, and its peak RSS (KiB).
func spawnAndWait(_ argv: [String]) -> (status: Int32, maxRSSKiB: Int) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { for pointer in cArgs { free(pointer) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ) == 0 else { return (-1, 0) }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    return (status, usage.ru_maxrss)
}

/// A dbus-daemon of our own in a temporary directory: a session bus, or a system-like one
/// (for NetworkManager and its mock, which expect the system bus).
final class PrivateBus {
    let directory: String
    let address: String
    let pid: Int32

    init(system: Bool = false) throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "bgsync-bench-bus-\(UUID().uuidString.prefix(8))"
            ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        address = "unix:path=\(directory)/bus"
        var arguments = ["--fork", "--print-pid=1", "--nopidfile"]
        if system {
            let config = "\(directory)/system.conf"
            try """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig><type>system</type><listen>\(address)</listen><auth>EXTERNAL</auth>
            <policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
            <allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy></busconfig>
            """.write(toFile: config, atomically: true, encoding: .utf8)
            arguments.insert("--config-file=\(config)", at: 0)
        } else {
            arguments.insert(contentsOf: ["--session", "--address=\(address)"], at: 0)
        }
        // --fork returns once the bus listens, having printed the daemon's pid.
        let pidFile = "\(directory)/pid"
        let status = try Child(["/usr/bin/dbus-daemon"] + arguments, outputPath: pidFile).wait()
        let output = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
        guard status == 0 else { throw BenchError("dbus-daemon exited with \(status) at start") }
        guard let pid = Int32(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw BenchError("dbus-daemon did not start (printed \(output.debugDescription))")
        }
        self.pid = pid
        startedBusPIDs.with { $0.append((pid, directory)) }
    }

    func stop() {
        stopBusDaemon(pid: pid, directory: directory)
        startedBusPIDs.with { $0.removeAll { $0.pid == pid } }
    }
}

/// python-dbusmock's networkmanager template on a private system bus.
final class MockNetworkManager {
    static let disconnected: UInt32 = 20
    static let connectedGlobal: UInt32 = 70
    let systemBus: PrivateBus
    let process: Child
    let client: BusClient

    init(state: UInt32) throws {
        systemBus = try PrivateBus(system: true)
        client = try BusClient(address: systemBus.address)
        let env = ProcessInfo.processInfo.environment.merging(["DBUS_SYSTEM_BUS_ADDRESS": systemBus.address]) { $1 }
        let owned = client.nameOwnedWatcher("org.freedesktop.NetworkManager")
        process = try Child(
            [
                "/usr/bin/python3", "-m", "dbusmock", "--template", "networkmanager",
                "--parameters", "{\"State\": \(state)}",
            ], environment: env)
        try client.wait(timeout: 20, what: "the mock NetworkManager on its bus") { owned.value }
        _ = try client.call(
            destination: "org.freedesktop.NetworkManager", path: "/org/freedesktop/NetworkManager",
            interface: "org.freedesktop.DBus.Mock", method: "AddProperty",
            arguments: [.string("org.freedesktop.NetworkManager"), .string("Metered"), .variant(.uint32(2))])
    }

    func setState(_ state: UInt32) throws {
        _ = try client.call(
            destination: "org.freedesktop.NetworkManager", path: "/org/freedesktop",
            interface: "org.freedesktop.DBus.Mock", method: "SetGlobalConnectionState",
            arguments: [.uint32(state)])
    }

    func stop() {
        process.stop()
        systemBus.stop()
    }
}

/// bgsyncd on a private session bus, with its own state dir and config.
final class AgentProcess {
    let process: Child
    let bus: PrivateBus
    let stateDirectory: String
    var pid: Int32 { process.pid }

    /// Starts the agent and, unless told otherwise, waits until it owns org.bgsync.
    convenience init(
        setup: Setup, bus: PrivateBus, name: String, config: String, network: MockNetworkManager?,
        stateDirectory: String? = nil, waitReady: Bool = true
    ) throws {
        try self.init(
            setup: setup, bus: bus, name: name, config: config, systemBus: network?.systemBus.address,
            stateDirectory: stateDirectory, waitReady: waitReady)
    }

    /// `systemBus`: where NetworkManager is (nil: --network always-online).
    init(
        setup: Setup, bus: PrivateBus, name: String, config: String, systemBus: String?,
        stateDirectory: String? = nil, waitReady: Bool = true
    ) throws {
        self.bus = bus
        let work = setup.workDirectory + "/" + name
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        self.stateDirectory = stateDirectory ?? work + "/state"
        try config.write(toFile: work + "/bgsyncd.conf", atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        if let systemBus { env["DBUS_SYSTEM_BUS_ADDRESS"] = systemBus }
        let watcher = try BusClient(address: bus.address)
        let owned = watcher.nameOwnedWatcher("org.bgsync")
        process = try Child(
            [
                setup.binDirectory + "/bgsyncd", "--address", bus.address, "--config", work + "/bgsyncd.conf",
                "--state-dir", self.stateDirectory,
                "--plugin-dir", setup.pluginDirectory, "--worker", setup.binDirectory + "/bgsync-worker",
                "--network", systemBus == nil ? "always-online" : "networkmanager", "--power", "ac",
            ], environment: env, outputPath: work + "/agent.log")
        if waitReady {
            try watcher.wait(timeout: 60, what: "bgsyncd owning org.bgsync (see \(work)/agent.log)") {
                owned.value || !self.process.isRunning
            }
            guard process.isRunning else { throw BenchError("bgsyncd exited at start; see \(work)/agent.log") }
        }
    }

    func stop() { process.stop() }
}
