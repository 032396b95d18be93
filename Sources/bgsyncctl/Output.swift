// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit

#if canImport(Glibc)
import Glibc
#endif

enum FileHandleOutput {
    static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// One line to stdout, flushed at once (monitor output is read live by pipes).
    static func line(_ text: String) {
        print(text)
        fflush(nil)
    }
}

/// Text for people.
enum Human {
    static func value(_ value: Value) -> String {
        switch value.unwrappingVariants {
        case .string(let s): s
        case .bool(let b): b ? "yes" : "no"
        case .double(let d): "\(d)"
        case let other: other.int64Value.map { "\($0)" } ?? other.uint64Value.map { "\($0)" } ?? other.gvariantText
        }
    }

    /// "2026-11-24 19:30:00 CET (in 5m)" for a Unix time; "-" for 0.
    static func time(_ unixSeconds: Int64) -> String {
        guard unixSeconds > 0 else { return "-" }
        var seconds = time_t(unixSeconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S %Z", &parts)
        let text = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let delta = unixSeconds - Int64(Glibc.time(nil))
        return delta >= 0
            ? "\(text) (in \(DurationText.describe(delta, approximate: true)))"
            : "\(text) (\(DurationText.describe(-delta, approximate: true)) ago)"
    }
}
