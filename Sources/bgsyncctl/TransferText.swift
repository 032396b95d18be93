// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

#if canImport(Glibc)
import Glibc
#endif

/// A transfer's bytes, rate and time left, as `status` and `monitor` show them: a bar on a
/// terminal, a plain line otherwise (a pipe, a log).
struct TransferText {
    var sent: UInt64
    var received: UInt64
    /// Sent and received together in all; 0: unknown.
    var expected: UInt64
    /// Bytes per second; 0: not known yet.
    var rate: Double

    /// From GetRegistration's `transfer` (tttd).
    init?(_ value: Value) {
        guard case .structure(let fields) = value.unwrappingVariants, fields.count == 4,
            let sent = fields[0].uint64Value, let received = fields[1].uint64Value,
            let expected = fields[2].uint64Value, let rate = fields[3].doubleValue
        else { return nil }
        self.init(sent: sent, received: received, expected: expected, rate: rate)
    }

    init(sent: UInt64, received: UInt64, expected: UInt64, rate: Double) {
        self.sent = sent
        self.received = received
        self.expected = expected
        self.rate = rate.isFinite && rate > 0 ? rate : 0
    }

    var moved: UInt64 { sent.addingReportingOverflow(received).overflow ? .max : sent + received }

    /// Seconds until `expected` at `rate`, nil when either is unknown.
    var secondsLeft: Double? {
        guard expected > 0, rate > 0 else { return nil }
        return Double(expected > moved ? expected - moved : 0) / rate
    }

    var percent: Int? {
        guard expected > 0 else { return nil }
        return Int(min(100, Double(moved) / Double(expected) * 100))
    }

    /// "7.5 MiB of 12.0 MiB (62 %), 2.0 MiB/s, 3 s left" (parts left out while unknown).
    var plain: String {
        var text = Self.bytes(moved)
        if expected > 0 { text += " of \(Self.bytes(expected)) (\(percent ?? 0) %)" }
        if rate > 0 { text += ", \(Self.bytes(UInt64(rate)))/s" }
        if let left = secondsLeft { text += ", \(Self.duration(left)) left" }
        if sent > 0 && received > 0 { text += " (sent \(Self.bytes(sent)), received \(Self.bytes(received)))" }
        return text
    }

    /// "[#########-----------]  45 %  5.4 MiB/12.0 MiB  2.0 MiB/s  3 s left"
    func bar(width: Int = 24) -> String {
        let filled = expected > 0 ? Int(Double(width) * min(1, Double(moved) / Double(expected))) : 0
        var text =
            "[" + String(repeating: "#", count: filled)
            + String(repeating: expected > 0 ? "-" : "?", count: width - filled)
            + "]"
        if let percent {
            text += " \(String(repeating: " ", count: percent < 10 ? 2 : percent < 100 ? 1 : 0))\(percent) %"
        }
        text += "  " + Self.bytes(moved) + (expected > 0 ? "/" + Self.bytes(expected) : "")
        text += "  " + (rate > 0 ? Self.bytes(UInt64(rate)) + "/s" : "-- B/s")
        if let left = secondsLeft { text += "  \(Self.duration(left)) left" }
        return text
    }

    /// 1023 B, 1.5 KiB, 12.0 MiB, 3.2 GiB.
    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(count) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// 42 s, 3 min 5 s, 2 h 10 min.
    static func duration(_ seconds: Double) -> String {
        let whole = Int(min(seconds.rounded(.up), 1e9))
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }

    /// Whether stdout is a terminal (a bar then, plain lines otherwise).
    static var onTerminal: Bool { isatty(1) == 1 }
}
