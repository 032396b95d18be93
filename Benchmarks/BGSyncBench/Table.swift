// SPDX-License-Identifier: Apache-2.0
// The one table the harness prints: each figure beside its reference from the same run.
import Foundation

struct Row {
    var figure: String
    var measured: String
    var reference: String
    /// measured ÷ reference as the goal reads it (nil when there is nothing to divide).
    var ratio: Double?
    var goal: String
    /// nil: no goal to meet (printed for context) or not measured.
    var met: Bool?
    var note: String = ""
}

func printTable(_ rows: [Row], machine: String) {
    print("")
    print("Machine: \(machine)")
    print("")
    print("| figure | measured | reference (same run) | ratio | goal | met |")
    print("|---|---|---|---|---|---|")
    for row in rows {
        let ratio = row.ratio.map { String(format: "%.2f×", $0) } ?? "–"
        let met = row.met.map { $0 ? "yes" : "**no**" } ?? "–"
        print("| \(row.figure) | \(row.measured) | \(row.reference) | \(ratio) | \(row.goal) | \(met) |")
    }
    let notes = rows.filter { !$0.note.isEmpty }
    if !notes.isEmpty {
        print("")
        for row in notes { print("- \(row.figure): \(row.note)") }
    }
}

func machineDescription() -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model =
        cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?" }
        ?? "unknown CPU"
    var name = utsname()
    uname(&name)
    let kernel = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let load =
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(
            separator: " ") ?? "?"
    return
        "nproc \(ProcessInfo.processInfo.activeProcessorCount), \(model), Linux \(kernel), load average at start \(load)"
}
