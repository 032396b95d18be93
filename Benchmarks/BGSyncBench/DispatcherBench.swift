// SPDX-License-Identifier: Apache-2.0
// "Network back" against NetworkManager's own dispatcher: the real NetworkManager runs in a
// network and mount namespace of its own (a veth pair, a keyfile profile, dns=none,
// connectivity checks off, /sys mounted read-only for the namespace), on a private system bus,
// with nm-dispatcher beside it running one script. Each round turns networking off and on
// (NetworkManager's Enable method, as `nmcli networking off|on` does) and times, from that call,
// both the dispatcher starting the script for the profile's "up" and the agent's no-op handler
// finishing for the one registration due. Needs root (namespaces, mounts).
import DBusKit
import Foundation
import Histogram
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

private let networkManager = "/usr/sbin/NetworkManager"
private let dispatcher = "/usr/lib/NetworkManager/nm-dispatcher"
private let nmName = "org.freedesktop.NetworkManager"
private let nmPath = "/org/freedesktop/NetworkManager"

/// Why the row cannot be measured here, or nil.
func dispatcherSkipReason() -> String? {
    if getuid() != 0 { return "needs root for the network and mount namespaces (run make bench as root)" }
    for tool in [networkManager, dispatcher, "/usr/bin/unshare", "/usr/sbin/ip"]
    where !FileManager.default.isExecutableFile(atPath: tool) {
        return "\(tool) is not installed (scripts/install-deps bench installs it)"
    }
    return nil
}

/// NetworkManager and nm-dispatcher in their namespaces; stop() ends both (unshare --kill-child
/// kills the namespace's first process, and with it every process of its PID namespace).
final class NamespacedNetworkManager {
    let systemBus: PrivateBus
    let client: BusClient
    let process: Child
    let fifoPath: String
    let work: String

    /// When NetworkManager last said CONNECTED_GLOBAL (70), as the harness saw it.
    private(set) var connectedAt: UInt64?

    init(workDirectory: String, loop: MainLoop) throws {
        work = workDirectory + "/nm"
        fifoPath = work + "/dispatcher.fifo"
        let fm = FileManager.default
        for dir in ["", "/conf.d", "/sysconf.d", "/connections", "/dispatcher.d"] {
            try fm.createDirectory(
                atPath: work + dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        try """
        [main]
        dns=none
        auth-polkit=false
        plugins=keyfile
        no-auto-default=*
        [connectivity]
        enabled=false
        [keyfile]
        path=\(work)/connections
        """.write(toFile: work + "/NetworkManager.conf", atomically: true, encoding: .utf8)
        let profile = work + "/connections/bench.nmconnection"
        try """
        [connection]
        id=bench
        type=ethernet
        interface-name=bench0
        autoconnect=true
        [ipv4]
        method=manual
        address1=10.99.0.2/24,10.99.0.1
        [ipv6]
        method=disabled
        """.write(toFile: profile, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: profile)
        // The script says "started" through a FIFO the harness holds open at both ends.
        let script = work + "/dispatcher.d/50-bench"
        try """
        #!/bin/sh
        [ "$1" = bench0 ] && [ "$2" = up ] && echo up > \(fifoPath)
        exit 0
        """.write(toFile: script, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        guard mkfifo(fifoPath, 0o600) == 0 else {
            throw BenchError("mkfifo \(fifoPath): \(String(cString: strerror(errno)))")
        }
        let setupScript = work + "/netns.sh"
        try """
        #!/bin/sh
        # Inside unshare --net --mount: NetworkManager sees only this namespace's devices.
        set -eu
        mount --make-rprivate /
        mount -t sysfs -o ro sysfs /sys
        for d in /run/NetworkManager /var/lib/NetworkManager; do mkdir -p $d; mount -t tmpfs tmpfs $d; done
        mount --bind \(work)/dispatcher.d /etc/NetworkManager/dispatcher.d
        ip link set lo up
        ip link add bench0 type veth peer name bench1
        ip link set bench1 up
        \(dispatcher) --persist > \(work)/dispatcher.log 2>&1 &
        exec \(networkManager) --no-daemon --config=\(work)/NetworkManager.conf --config-dir=\(work)/conf.d \\
            --system-config-dir=\(work)/sysconf.d --state-file=\(work)/NetworkManager.state
        """.write(toFile: setupScript, atomically: true, encoding: .utf8)

        systemBus = try PrivateBus(system: true)
        client = try BusClient(address: systemBus.address, loop: loop)
        let owned = client.nameOwnedWatcher(nmName)
        var env = ProcessInfo.processInfo.environment
        env["DBUS_SYSTEM_BUS_ADDRESS"] = systemBus.address
        process = try Child(
            ["/usr/bin/unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "/bin/sh", setupScript],
            environment: env, outputPath: work + "/NetworkManager.log")
        try client.wait(timeout: 30, what: "NetworkManager on its bus (see \(work)/NetworkManager.log)") {
            owned.value || !process.isRunning
        }
        guard process.isRunning else {
            throw BenchError("NetworkManager exited at start; see \(work)/NetworkManager.log")
        }
        try client.connection.addMatch("type='signal',interface='\(nmName)',member='StateChanged'") {
            [weak self] signal in
            if case .uint32(let state) = signal.arguments.first {
                self?.state = state
                if state == 70 { self?.connectedAt = now() }
            }
        }
        // The name comes a moment before the objects: ask until the Manager object answers.
        var current: UInt32?
        try client.wait(timeout: 30, what: "NetworkManager's Manager object") {
            current = try? currentState()
            if current == nil { client.loop.iterate(timeout: 0.05) }
            return current != nil
        }
        state = current!
        try waitForState(70, what: "NetworkManager connected with the bench profile")
    }

    private(set) var state: UInt32 = 0

    func currentState() throws -> UInt32 {
        let reply = try client.call(
            destination: nmName, path: nmPath, interface: "org.freedesktop.DBus.Properties",
            method: "Get", arguments: [.string(nmName), .string("State")])
        if case .uint32(let state) = reply.first?.unwrappingVariants { return state }
        throw BenchError("NetworkManager's State is not a uint32: \(reply)")
    }

    func waitForState(_ wanted: UInt32, what: String) throws {
        try client.wait(timeout: 30, what: what) { state == wanted }
    }

    /// NetworkManager's Enable: what `nmcli networking on|off` calls.
    func enable(_ on: Bool) throws {
        _ = try client.call(
            destination: nmName, path: nmPath, interface: nmName, method: "Enable", arguments: [.bool(on)])
    }

    func stop() {
        process.stop()
        systemBus.stop()
    }
}

func dispatcherRows(setup: Setup, bus: PrivateBus, rounds: Int) throws -> [Row] {
    let figure = "Network back → handler, real NetworkManager in a namespace, p50 / p99"
    if let why = dispatcherSkipReason() {
        log("nm-dispatcher row skipped: \(why)")
        return [
            Row(
                figure: figure, measured: "not measured", reference: "nm-dispatcher: not measured", ratio: nil,
                goal: "≤ 0.5×", met: nil, note: "skipped: \(why)")
        ]
    }
    let client = try BusClient(address: bus.address)
    let nm = try NamespacedNetworkManager(workDirectory: setup.workDirectory, loop: client.loop)
    defer { nm.stop() }
    let agent = try AgentProcess(
        setup: setup, bus: bus, name: "real-nm", config: benchConfig, systemBus: nm.systemBus.address)
    defer { agent.stop() }

    // Both ends of the FIFO stay open here, so the script's write never blocks or fails.
    let reader = open(nm.fifoPath, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    let writer = open(nm.fifoPath, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
    guard reader >= 0, writer >= 0 else { throw BenchError("cannot open \(nm.fifoPath)") }
    defer {
        close(reader)
        close(writer)
    }
    var scriptStarts: [UInt64] = []
    client.loop.addWatch(fd: reader, events: .readable) { _ in
        let stamp = now()
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = read(reader, &buffer, buffer.count)
        if count > 0 { scriptStarts.append(stamp) }
    }
    var online: Bool?
    try client.connection.addMatch(
        "type='signal',path='\(BusClient.path)',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"
    ) { signal in
        guard signal.arguments.count >= 2, case .dictionary(_, _, let entries) = signal.arguments[1] else { return }
        for entry in entries where entry.key == .string("Online") {
            if case .bool(let value) = entry.value.unwrappingVariants { online = value }
        }
    }
    // The agent owns its name before it has asked NetworkManager anything; its first answer to a
    // call comes after that, so start from what it says now, not only from later changes.
    let current = try client.connection.call(
        destination: "org.bgsync", path: BusClient.path, interface: "org.freedesktop.DBus.Properties", method: "Get",
        arguments: [.string("org.bgsync.Manager"), .string("Online")])
    if case .bool(let value)? = current.first?.unwrappingVariants, online == nil { online = value }
    var finishedAt: [String: UInt64] = [:]
    try client.onAgentSignal("SyncFinished") { signal in
        if case .string(let tag) = signal.arguments[1] { finishedAt[tag] = now() }
    }

    var agentTimes = makeLatencies()
    var scriptTimes = makeLatencies()
    var agentAfterConnected = makeLatencies()
    var scriptAfterConnected = makeLatencies()
    for round in 0..<rounds {
        try nm.enable(false)
        try nm.waitForState(10, what: "NetworkManager asleep after Enable(false)")
        try client.wait(timeout: 30, what: "the agent to see NetworkManager asleep") { online == false }
        scriptStarts.removeAll()
        let tag = "real\(round)"
        try client.register(app: "org.bench.RealNetwork", tag: tag)
        let start = now()
        try nm.enable(true)
        // Only what comes after this round's Enable(true) counts (a late script of the last
        // round would otherwise be taken for this one).
        try client.wait(timeout: 30, what: "the dispatcher script and the agent's SyncFinished for \(tag)") {
            scriptStarts.contains { $0 > start } && finishedAt[tag] != nil && (nm.connectedAt ?? 0) > start
        }
        // Both stamps are taken when this process reads the signals, so the agent's can come
        // first (it heard NetworkManager sooner): that counts as 0, never as an underflow.
        let connected = max(nm.connectedAt!, start)
        _ = agentAfterConnected.record(finishedAt[tag]! > connected ? finishedAt[tag]! - connected : 0)
        _ = agentTimes.record(finishedAt[tag]! - start)
        let script = scriptStarts.first { $0 > start }!
        _ = scriptTimes.record(script - start)
        _ = scriptAfterConnected.record(script > connected ? script - connected : 0)
        try nm.waitForState(70, what: "NetworkManager connected again")
    }
    let a50 = Double(agentTimes.valueAtPercentile(50))
    let a99 = Double(agentTimes.valueAtPercentile(99))
    let s50 = Double(scriptTimes.valueAtPercentile(50))
    let s99 = Double(scriptTimes.valueAtPercentile(99))
    let own50 = Double(agentAfterConnected.valueAtPercentile(50))
    let own99 = Double(agentAfterConnected.valueAtPercentile(99))
    let ds50 = Double(scriptAfterConnected.valueAtPercentile(50))
    let ds99 = Double(scriptAfterConnected.valueAtPercentile(99))
    log(
        "real NetworkManager: agent after NetworkManager's StateChanged(70) p50 \(formatDuration(nanoseconds: own50)) p99 \(formatDuration(nanoseconds: own99))"
    )
    log(
        "real NetworkManager: agent p50 \(formatDuration(nanoseconds: a50)) p99 \(formatDuration(nanoseconds: a99)); nm-dispatcher script p50 \(formatDuration(nanoseconds: s50)) p99 \(formatDuration(nanoseconds: s99))"
    )
    // The goal's ratio: both timed from NetworkManager's StateChanged(CONNECTED_GLOBAL) signal
    // (from Enable(true) both mostly measure NetworkManager's own activation).
    let ratio = ds50 > 0 ? own50 / ds50 : .infinity
    return [
        Row(
            figure: figure + " (\(rounds) rounds), from NetworkManager's StateChanged(CONNECTED_GLOBAL)",
            measured: "\(formatDuration(nanoseconds: own50)) / \(formatDuration(nanoseconds: own99))",
            reference: "nm-dispatcher script started: \(formatDuration(nanoseconds: ds50)) / "
                + formatDuration(nanoseconds: ds99),
            ratio: ratio, goal: "≤ 0.5×", met: ratio <= 0.5,
            note: "the agent's time runs until its no-op handler has finished, the dispatcher's only until "
                + "its script starts. From NetworkManager's Enable(true) call (both then mostly wait for "
                + "NetworkManager to activate the profile): agent p50 \(formatDuration(nanoseconds: a50)) / "
                + "p99 \(formatDuration(nanoseconds: a99)), dispatcher p50 \(formatDuration(nanoseconds: s50)) / "
                + "p99 \(formatDuration(nanoseconds: s99)).")
    ]
}
