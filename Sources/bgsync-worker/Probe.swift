// SPDX-License-Identifier: Apache-2.0
import BGSyncWire

#if canImport(Glibc)
import Glibc
#endif

/// `bgsync-worker --probe PATH`: load and check the plugin, print one `ProbeReport` line.
enum Probe {
    static func run(path: String) -> Int32 {
        // A plugin that hangs while loading must not outlive the agent that probes it.
        EventServer.dieWithParent()
        // The report goes to the real stdout; anything the plugin prints while loading goes to
        // stderr instead, so it cannot corrupt the report.
        let reportFD = dup(1)
        guard reportFD >= 0 else { return 1 }
        _ = fcntl(reportFD, F_SETFD, FD_CLOEXEC)
        PluginOutput.capture()
        let report: ProbeReport
        let status: Int32
        do {
            let loaded = try LoadedPlugin.load(path: path)
            report = loaded.info
            status = 0
        } catch {
            HostLog.line(priority: 3, prefix: "bgsync-worker", error.message)
            report = ProbeReport(error: error.message)
            status = 1
        }
        var bytes = report.jsonLine
        bytes.append(UInt8(ascii: "\n"))
        guard FD.writeAll(reportFD, bytes) else { return 1 }
        return status
    }
}
