// SPDX-License-Identifier: Apache-2.0
import Foundation
import MainLoop
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The loop is driven with `iterate(timeout:)` so every test is bounded: a test that waits for
/// something the loop never delivers fails after its timeout instead of hanging.
@Suite("MainLoop")
struct MainLoopTests {
    /// Iterates until `done()` holds or `seconds` pass; returns whether it held.
    private func spin(_ loop: MainLoop, seconds: Double = 5, until done: () -> Bool) -> Bool {
        let end = MainLoop.monotonicNow() + UInt64(seconds * 1e9)
        while !done() {
            guard MainLoop.monotonicNow() < end else { return false }
            loop.iterate(timeout: 0.05)
        }
        return true
    }

    private func makePipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    @Test func aReadableFDCallsItsWatchWithReadable() {
        let loop = MainLoop()
        let (r, w) = makePipe()
        defer {
            close(r)
            close(w)
        }
        var seen: MainLoop.Events = []
        loop.addWatch(fd: r, events: .readable) { events in
            seen = events
            var byte: UInt8 = 0
            _ = read(r, &byte, 1)
        }
        #expect(loop.iterate(timeout: 0) == false, "nothing to read yet")
        var byte: UInt8 = 7
        _ = write(w, &byte, 1)
        #expect(spin(loop) { seen.contains(.readable) })
    }

    @Test func aClosedPeerIsReportedAsHangup() {
        let loop = MainLoop()
        let (r, w) = makePipe()
        defer { close(r) }
        var seen: MainLoop.Events = []
        let watch = loop.addWatch(fd: r, events: .readable) { seen = $0 }
        close(w)
        // `.hangup` stands for POLLHUP or POLLERR: a pipe whose writer is gone reports POLLHUP.
        #expect(spin(loop) { !seen.isDisjoint(with: .hangup) })
        loop.removeWatch(watch)
    }

    @Test func aRemovedOrDisabledWatchIsNotCalled() {
        let loop = MainLoop()
        let (r, w) = makePipe()
        defer {
            close(r)
            close(w)
        }
        var calls = 0
        let removed = loop.addWatch(fd: r, events: .readable) { _ in calls += 1 }
        loop.removeWatch(removed)
        let disabled = loop.addWatch(fd: r, events: .readable) { _ in calls += 1 }
        disabled.events = []
        var byte: UInt8 = 1
        _ = write(w, &byte, 1)
        #expect(loop.iterate(timeout: 0.05) == false)
        #expect(calls == 0)
        disabled.events = .readable
        #expect(spin(loop) { calls >= 1 })
    }

    @Test func timersFireInDeadlineOrderAndACancelledOneNever() {
        let loop = MainLoop()
        var fired: [String] = []
        loop.addTimer(after: 0.03) { fired.append("later") }
        loop.addTimer(after: 0.01) { fired.append("sooner") }
        let cancelled = loop.addTimer(after: 0.02) { fired.append("cancelled") }
        loop.cancelTimer(cancelled)
        #expect(spin(loop) { fired.count == 2 })
        #expect(fired == ["sooner", "later"])
        #expect(loop.iterate(timeout: 0.05) == false, "no timer left")
    }

    @Test func iterationEndHandlersRunAfterWhatTheIterationHandled() {
        let loop = MainLoop()
        var seen: [String] = []
        loop.addIterationEndHandler { seen.append("end") }
        loop.addTimer(after: 0) { seen.append("timer") }
        let (read, write) = makePipe()
        defer {
            close(read)
            close(write)
        }
        loop.addWatch(fd: read, events: .readable) { _ in
            var byte: UInt8 = 0
            _ = Glibc.read(read, &byte, 1)
            seen.append("watch")
        }
        var one: UInt8 = 1
        _ = Glibc.write(write, &one, 1)
        #expect(spin(loop) { seen.contains("end") })
        #expect(seen == ["watch", "timer", "end"], "one iteration: its watches, its timers, then the end handlers")
    }

    @Test func aTimerDoesNotFireBeforeItsDeadline() {
        let loop = MainLoop()
        let start = MainLoop.monotonicNow()
        var firedAt: UInt64 = 0
        loop.addTimer(after: 0.05) { firedAt = MainLoop.monotonicNow() }
        #expect(spin(loop) { firedAt != 0 })
        #expect(firedAt - start >= 50_000_000)
    }

    @Test func nonFiniteAndNegativeDelaysAreSafe() {
        let loop = MainLoop()
        var fired = 0
        loop.addTimer(after: -1) { fired += 1 }
        let never = loop.addTimer(after: .infinity) { fired += 100 }
        let notANumber = loop.addTimer(after: .nan) { fired += 100 }
        #expect(spin(loop) { fired == 1 }, "a negative delay fires at once")
        #expect(loop.iterate(timeout: 0.05) == false, "an infinite or NaN delay never fires")
        #expect(fired == 1)
        loop.cancelTimer(never)
        loop.cancelTimer(notANumber)
    }

    @Test func blocksPostedFromOtherThreadsRunOnTheLoopThreadInOrder() {
        let loop = MainLoop()
        let received = Mutex<[Int]>([])
        let offLoop = Mutex(0)
        let loopThread = pthread_self()
        let poster = Thread {
            for i in 0..<100 {
                loop.post {
                    if pthread_equal(pthread_self(), loopThread) == 0 { offLoop.withLock { $0 += 1 } }
                    received.withLock { $0.append(i) }
                }
            }
        }
        poster.start()
        #expect(spin(loop) { received.withLock { $0.count } == 100 })
        #expect(received.withLock { $0 } == Array(0..<100))
        #expect(offLoop.withLock { $0 } == 0, "every block ran on the loop's thread")
    }

    @Test func stopFromAnotherThreadEndsRun() {
        let loop = MainLoop()
        let ran = Mutex(false)
        loop.post { ran.withLock { $0 = true } }
        loop.addTimer(after: 0) { Thread { loop.stop() }.start() }
        loop.run()  // returns only through stop()
        #expect(ran.withLock { $0 })
    }

    @Test func aSignalIsDeliveredOnTheLoop() {
        let loop = MainLoop()
        var got: Int32 = 0
        let watch = loop.addSignalWatch([SIGUSR2]) { got = $0 }
        defer { loop.removeWatch(watch) }
        // Blocked in this thread and read from the signalfd: send it to this thread, since the
        // test runner's other threads do not block it.
        pthread_kill(pthread_self(), SIGUSR2)
        #expect(spin(loop) { got == SIGUSR2 })
    }

    @Test func aWallClockTimerFiresAtItsDateAndNotWhenDisarmed() {
        let loop = MainLoop()
        let timer = WallClockTimer(loop: loop)
        var fired = 0
        timer.onFire = { fired += 1 }
        let due = Date().addingTimeInterval(0.05)
        timer.arm(at: due)
        #expect(spin(loop) { fired == 1 })
        #expect(Date() >= due)
        timer.arm(at: Date().addingTimeInterval(0.05))
        timer.arm(at: nil)
        #expect(loop.iterate(timeout: 0.15) == false, "a disarmed timer stays quiet")
        #expect(fired == 1)
        timer.arm(at: Date.distantPast)
        #expect(spin(loop) { fired == 2 }, "a date in the past fires at once")
    }

    @Test func firstValueKeepsTheFirstOfferAndWaitsBoundedly() {
        let nothing = FirstValue<Int>()
        let start = MainLoop.monotonicNow()
        #expect(nothing.wait(seconds: 0.05) == nil)
        #expect(MainLoop.monotonicNow() - start >= 50_000_000, "waited its time, no longer a signal")
        let first = FirstValue<Int>()
        Thread {
            first.offer(1)
            first.offer(2)
        }.start()
        #expect(first.wait(seconds: 5) == 1)
    }
}
