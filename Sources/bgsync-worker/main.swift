// SPDX-License-Identifier: Apache-2.0
// bgsync-worker: hosts one handler plugin in its own process, for the bgsync agent.
//
//   bgsync-worker --serve PLUGIN.so [--state-dir DIR]
//                                     run events the agent sends over fd 3 (see WireProtocol); DIR
//                                     holds the handlers' own state (open_state_dir), DIR/NAME each
//   bgsync-worker --probe PLUGIN.so   print what the plugin is as one JSON line, and exit
//
// Exit status: 0 done, 1 the plugin could not be loaded or failed to start, 2 bad usage. The agent
// checks what a probe reports (the handler's name among it) before it uses a plugin.
#if canImport(Glibc)
import Glibc
#endif

let usage = """
    usage: bgsync-worker --serve PLUGIN.so [--state-dir DIR]   (run events from fd 3; bgsyncd starts this)
           bgsync-worker --probe PLUGIN.so   (print what the plugin declares as one JSON line)

    """

let arguments = CommandLine.arguments
if arguments.count == 3, arguments[1] == "--probe" {
    let status = Probe.run(path: arguments[2])
    PluginOutput.finish()
    exit(status)
} else if arguments.count == 3
    || (arguments.count == 5 && arguments[3] == "--state-dir" && arguments[4].hasPrefix("/")),
    arguments[1] == "--serve"
{
    if arguments.count == 5 { HandlerState.directory = arguments[4] }
    let status = EventServer.run(path: arguments[2])
    PluginOutput.finish()
    exit(status)
} else {
    HostLog.writeRaw(usage)
    exit(2)
}
