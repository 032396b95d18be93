import DBusKit
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MainLoop

/// Hands a non-Sendable value across threads where the test guarantees one thread at a time.
struct Unchecked<T>: @unchecked Sendable {
    var value: T
}

/// A MainLoop running on its own thread; `run` executes a block there and waits for it.
final class LoopThread: @unchecked Sendable {
    let loop = MainLoop()
    private let finished = DispatchSemaphore(value: 0)

    init() {
        let thread = Thread { [loop, finished] in
            loop.run()
            finished.signal()
        }
        thread.start()
    }

    func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        let work = Unchecked(value: body)
        loop.post {
            box.result = Result { try work.value() }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success else { throw DBusError.timeout("loop thread did not answer") }
        return try box.result!.get()
    }

    func stop() {
        loop.stop()
        _ = finished.wait(timeout: .now() + 10)
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// Waits on a DispatchSemaphore-backed flag set from another thread.
final class Flag: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func set() { semaphore.signal() }
    func wait(seconds: Double) -> Bool { semaphore.wait(timeout: .now() + seconds) == .success }
}
