// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

/// The root command: it only lists the subcommands.
struct BGSyncCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bgsyncctl",
        abstract: "Talk to bgsyncd, the Background Sync agent on the session bus.",
        discussion: """
            Exit codes, for scripts:
              0  success
              1  the agent answered with an error (its name and message go to stderr)
              2  usage error (bad arguments, option values or durations)
              3  the agent is not reachable (cannot connect to the bus, or org.bgsync is not on it)
              4  not found: no such registration (status), or nothing was registered (unregister)

            Shell completions: bgsyncctl --generate-completion-script bash|zsh|fish
            """,
        subcommands: [
            Register.self, RegisterPeriodic.self, Tags.self, Status.self, Unregister.self,
            Trigger.self, State.self, Monitor.self, Serve.self, Apps.self, Allow.self, Deny.self,
        ])
}

enum ExitStatus {
    static let ok: Int32 = 0
    static let agentError: Int32 = 1
    static let usage: Int32 = 2
    static let unreachable: Int32 = 3
    static let notFound: Int32 = 4
}
