// SPDX-License-Identifier: Apache-2.0
// Entry point: parse, run, and map failures to the documented exit codes (see BGSyncCtl).
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

do {
    var command = try BGSyncCtl.parseAsRoot()
    try command.run()
} catch let failure as CLIFailure {
    failure.report()
    exit(failure.exitCode)
} catch {
    // ArgumentParser's own errors: help and version exit 0, usage errors exit 2 (not its 64).
    let code = BGSyncCtl.exitCode(for: error)
    if code == .success || code == .failure && error is ExitCode {
        BGSyncCtl.exit(withError: error)
    }
    let message = BGSyncCtl.fullMessage(for: error)
    if !message.isEmpty { FileHandleOutput.standardError(message + "\n") }
    exit(code == .success ? 0 : ExitStatus.usage)
}
