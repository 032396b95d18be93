// SPDX-License-Identifier: Apache-2.0
/// Readers for configuration values. Each returns the value, or a message saying what the key
/// accepts and what it got.
enum ConfigurationValues {
    /// A finite decimal number such as 3, 0.2 or 1e3 (no hex, inf or nan).
    static func number(_ text: String) -> Double? {
        guard !text.isEmpty, text.allSatisfy({ "0123456789.+-eE".contains($0) }),
            let value = Double(text), value.isFinite
        else { return nil }
        return value
    }

    /// Seconds, as a plain number (0.2, 300) or with one systemd-style unit (200ms, 5min, 2h).
    static func seconds(_ text: String) -> Double? {
        let units: [(suffix: String, seconds: Double)] = [
            ("ms", 0.001), ("msec", 0.001), ("s", 1), ("sec", 1), ("m", 60), ("min", 60), ("h", 3600), ("hr", 3600),
            ("d", 86400),
        ]
        if let value = number(text) { return value }
        // The longest suffix that leaves a number, so "5min" is not read as "5mi" + "n".
        for unit in units.sorted(by: { $0.suffix.count > $1.suffix.count }) where text.hasSuffix(unit.suffix) {
            let digits = KeyFileLine.trimmed(text.dropLast(unit.suffix.count))
            if let value = number(String(digits)) { return value * unit.seconds }
        }
        return nil
    }

    /// A whole decimal number (no sign needed, no fraction).
    static func integer(_ text: String) -> Int? {
        guard !text.isEmpty, text.allSatisfy({ "0123456789+-".contains($0) }) else { return nil }
        return Int(text)
    }

    /// A `;`-separated list; empty items (a trailing `;`) are dropped.
    static func list(_ text: String) -> [String] {
        text.split(separator: ";").map { String(KeyFileLine.trimmed($0)) }.filter { !$0.isEmpty }
    }

    static func isAbsolutePath(_ text: String) -> Bool { text.hasPrefix("/") && !text.contains("\0") }

    /// "got 'x'", with a hint when the value looks like it carries a trailing comment.
    static func got(_ text: String) -> String {
        let shown = text.count > 60 ? text.prefix(60) + "…" : text[...]
        let hint = text.contains("#") ? " (comments go on their own line, starting with # or ;)" : ""
        return "got '\(shown)'\(hint)"
    }
}
