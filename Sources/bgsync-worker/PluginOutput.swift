// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// What a plugin writes to stdout or stderr (and so do the commands it runs, which inherit both)
/// goes through a pipe that a thread of the worker reads: each line reaches the agent's log
/// escaped and prefixed like the worker's own lines, at `notice`, so that neither a plugin nor
/// the text it prints (an app's file name, a server's answer) can end a journal line and forge
/// one of its own, with a `<N>` priority of its choosing. The worker's own lines go to the real
/// stderr, kept aside (`HostLog.fd`).
enum PluginOutput {
    /// Posted by the reader thread when it has written everything (end of file); nil until it runs.
    nonisolated(unsafe) private static var drained: UnsafeMutablePointer<sem_t>?
    nonisolated(unsafe) private static var reader: pthread_t?
    /// A line longer than this is written in pieces (a plugin printing megabytes without a newline
    /// cannot make the worker hold them).
    static let maxLineBytes = 4096
    static let partialLineWaitMilliseconds: Int32 = 100

    /// Starts the capture. Call once, on the main thread, before the plugin is loaded.
    static func capture() {
        // Whether the worker's lines go to the journal is decided on the real stderr, now: from
        // here on fd 2 is the pipe.
        _ = HostLog.journal
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return }  // the plugin then writes to stderr as it is
        let realStderr = fcntl(2, F_DUPFD_CLOEXEC, 3)
        guard realStderr >= 0 else {
            close(ends[0])
            close(ends[1])
            return
        }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        HostLog.fd = realStderr
        _ = dup2(ends[1], 1)
        _ = dup2(ends[1], 2)
        close(ends[1])
        let readEnd = ends[0]
        let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)  // lives until exit
        sem_init(semaphore, 0, 0)
        drained = semaphore
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { argument in
                PluginOutput.forward(from: Int32(Int(bitPattern: argument)))
                return nil
            }, UnsafeMutableRawPointer(bitPattern: Int(readEnd)))
        if started == 0 {
            reader = thread
        } else {  // no thread: put stdout and stderr back rather than fill a pipe no one reads
            drained = nil
            _ = dup2(realStderr, 1)
            _ = dup2(realStderr, 2)
            close(readEnd)
        }
    }

    /// Closes the plugin's ends and lets the reader write what is left, for at most `timeout`
    /// seconds (a command the plugin started may still hold the pipe open). Before exit.
    static func finish(timeout: Double = 0.5) {
        guard let drained else { return }
        _ = dup2(HostLog.fd, 1)
        _ = dup2(HostLog.fd, 2)
        var until = timespec()
        clock_gettime(CLOCK_REALTIME, &until)
        let nanoseconds = Int(until.tv_nsec) + Int(timeout * 1e9)
        until.tv_sec += nanoseconds / 1_000_000_000
        until.tv_nsec = nanoseconds % 1_000_000_000
        var waited = sem_timedwait(drained, &until)
        while waited != 0, errno == EINTR { waited = sem_timedwait(drained, &until) }
        // Drained: the reader is returning; join it, so that the process never exits while a
        // thread of it is half gone (LeakSanitizer then reports "thread was not suspended").
        // Not drained (a command still holds the pipe): leave it blocked in poll.
        if waited == 0, let reader { pthread_join(reader, nil) }
    }

    /// The reader: whole lines to the log, a long one in pieces, the rest at end of file.
    private static func forward(from fd: Int32) {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            // A line without its newline goes out once the plugin has been quiet for a while.
            let ready = poll(&entry, 1, pending.isEmpty ? -1 : Self.partialLineWaitMilliseconds)
            if ready == 0 {
                write(pending[...])
                pending.removeAll()
                continue
            }
            if ready < 0 && errno == EINTR { continue }
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { break }
            pending += buffer[..<got]
            while true {
                // A line is cut at maxLineBytes whether or not its newline came in the same read.
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")), newline <= maxLineBytes {
                    write(pending[..<newline])
                    pending.removeFirst(newline + 1)
                } else if pending.count >= maxLineBytes {
                    write(pending[..<maxLineBytes])
                    pending.removeFirst(maxLineBytes)
                } else {
                    break
                }
            }
        }
        if !pending.isEmpty { write(pending[...]) }
        close(fd)
        if let drained { sem_post(drained) }
    }

    private static func write(_ line: ArraySlice<UInt8>) {
        let text = String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        HostLog.line(priority: 5, prefix: HostLog.prefix(app: nil, tag: nil) + " (output)", text)
    }
}
