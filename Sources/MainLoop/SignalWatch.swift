// SPDX-License-Identifier: Apache-2.0
import CLinux

#if canImport(Glibc)
import Glibc
#endif

extension MainLoop {
    /// Delivers `signals` (SIGTERM, SIGINT, ...) to `handler` on the loop thread through a
    /// signalfd. Call it first thing in `main`, before any thread starts: the signals are blocked
    /// in the calling thread, and threads created later inherit that.
    @discardableResult
    public func addSignalWatch(_ signals: [Int32], _ handler: @escaping (Int32) -> Void) -> Watch {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let fd = signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        precondition(fd >= 0, "signalfd failed: \(String(cString: strerror(errno)))")
        return addWatch(fd: fd, events: .readable) { _ in
            var info = signalfd_siginfo()
            while read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
                handler(Int32(info.ssi_signo))
            }
        }
    }
}
