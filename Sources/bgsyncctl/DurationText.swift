// SPDX-License-Identifier: Apache-2.0
/// Durations as people type them: 90, 90s, 15m, 1h, 1d, and sums like 1h30m.
enum DurationText {
    static let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]

    /// Seconds in `text`, or a usage failure saying what is accepted.
    static func seconds(_ text: String) throws(CLIFailure) -> UInt64 {
        let bad = CLIFailure.usage(
            "'\(text)' is not a duration; write seconds (90) or a number with a unit: 90s, 15m, 1h, 1d, 1w, 1h30m")
        var total: UInt64 = 0
        var digits = ""
        var sawUnit = false
        for c in text.lowercased() where c != " " {
            if c.isASCII && c.isNumber {
                digits.append(c)
            } else if let unit = units[c], let amount = UInt64(digits) {
                let (product, overflow1) = amount.multipliedReportingOverflow(by: unit)
                let (sum, overflow2) = total.addingReportingOverflow(product)
                guard !overflow1, !overflow2 else { throw CLIFailure.usage("'\(text)' is too long a duration") }
                total = sum
                digits = ""
                sawUnit = true
            } else {
                throw bad
            }
        }
        if !digits.isEmpty {
            guard !sawUnit, let plain = UInt64(digits) else { throw bad }  // "1h30" is ambiguous
            total = plain
        } else if !sawUnit {
            throw bad
        }
        guard total > 0 else { throw CLIFailure.usage("a duration must be longer than zero ('\(text)')") }
        return total
    }

    /// "1h30m", "45s", "2d" for a number of seconds; `approximate` keeps the two largest units.
    static func describe(_ seconds: Int64, approximate: Bool = false) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var parts: [String] = []
        for (unit, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            parts.append("\(rest / size)\(unit)")
            rest %= size
        }
        return (approximate ? Array(parts.prefix(2)) : parts).joined()
    }
}
