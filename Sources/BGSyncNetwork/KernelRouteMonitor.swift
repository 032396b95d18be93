// SPDX-License-Identifier: Apache-2.0
import Logging
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

/// The kernel's view of the network, used when NetworkManager is not there: online means a
/// default route exists (IPv4 or IPv6); whether it is metered is unknown, so never metered.
///
/// A NETLINK_ROUTE socket subscribed to link and route changes wakes the loop; after any
/// message the routing tables are read again. Nothing is polled.
final class KernelRouteMonitor {
    private(set) var hasDefaultRoute = false
    /// Called on the loop thread when `hasDefaultRoute` changes.
    var onChange: ((Bool) -> Void)?

    private let loop: MainLoop
    private let logger: Logger
    private var socketFD: Int32 = -1
    private var watch: MainLoop.Watch?

    init(loop: MainLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    deinit { stop() }

    var isRunning: Bool { socketFD >= 0 }

    /// Subscribes to route changes and reads the tables once.
    func start() {
        guard socketFD < 0 else { return }
        socketFD = Self.openRouteSocket(logger: logger)
        if socketFD >= 0 {
            watch = loop.addWatch(fd: socketFD, events: .readable) { [unowned self] _ in
                self.drain()
                self.recheck()
            }
        }
        hasDefaultRoute = DefaultRoute.exists()
    }

    func stop() {
        if let watch { loop.removeWatch(watch) }
        watch = nil
        if socketFD >= 0 { close(socketFD) }
        socketFD = -1
    }

    private func recheck() {
        let now = DefaultRoute.exists()
        guard now != hasDefaultRoute else { return }
        hasDefaultRoute = now
        onChange?(now)
    }

    /// Reads every queued message; their content does not matter, only that something changed.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socketFD, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 { continue }
            // EAGAIN: drained. ENOBUFS: messages were lost, which the recheck covers anyway.
            if count < 0 && errno == EINTR { continue }
            return
        }
    }

    private static func openRouteSocket(logger: Logger) -> Int32 {
        let netlinkRoute: Int32 = 0  // NETLINK_ROUTE
        let fd = socket(
            AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
            netlinkRoute)
        guard fd >= 0 else {
            logger.error(
                "Cannot follow route changes: netlink socket failed: \(String(cString: strerror(errno))). The kernel view will not update."
            )
            return -1
        }
        let rtmgrpLink: UInt32 = 0x1
        let rtmgrpIPv4Route: UInt32 = 0x40
        let rtmgrpIPv6Route: UInt32 = 0x400
        var address = NetlinkAddress(family: UInt16(AF_NETLINK), groups: rtmgrpLink | rtmgrpIPv4Route | rtmgrpIPv6Route)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<NetlinkAddress>.size))
            }
        }
        guard bound == 0 else {
            logger.error(
                "Cannot follow route changes: binding the netlink socket failed: \(String(cString: strerror(errno))). The kernel view will not update."
            )
            close(fd)
            return -1
        }
        return fd
    }
}

/// `struct sockaddr_nl` from <linux/netlink.h>, which Glibc's module does not export.
private struct NetlinkAddress {
    var family: UInt16
    var pad: UInt16 = 0
    var pid: UInt32 = 0
    var groups: UInt32
}

/// Whether the routing tables hold a usable default route.
enum DefaultRoute {
    static func exists() -> Bool {
        inIPv4Table(readProcFile("/proc/net/route")) || inIPv6Table(readProcFile("/proc/net/ipv6_route"))
    }

    private static let routeUp: UInt32 = 0x1  // RTF_UP
    private static let routeReject: UInt32 = 0x200  // RTF_REJECT (unreachable/prohibit)

    /// /proc/net/route: `Iface Destination Gateway Flags RefCnt Use Metric Mask …`, hex fields.
    static func inIPv4Table(_ text: String) -> Bool {
        text.split(separator: "\n").dropFirst().contains { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 8, let flags = UInt32(fields[3], radix: 16) else { return false }
            return fields[1] == "00000000" && fields[7] == "00000000" && flags & routeUp != 0
                && flags & routeReject == 0
        }
    }

    /// /proc/net/ipv6_route: `dest plen src plen nexthop metric refcnt use flags iface`.
    static func inIPv6Table(_ text: String) -> Bool {
        text.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 10, let flags = UInt32(fields[8], radix: 16) else { return false }
            return fields[0].allSatisfy { $0 == "0" } && fields[1] == "00" && fields[9] != "lo"
                && flags & routeUp != 0 && flags & routeReject == 0
        }
    }

    private static func readProcFile(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
