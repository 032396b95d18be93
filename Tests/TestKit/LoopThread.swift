// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Foundation
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

/// Hands a non-Sendable value across threads where the test guarantees one thread at a time.
public struct Unchecked<T>: @unchecked Sendable {
    public var value: T
    public init(value: T) { self.value = value }
}

/// A MainLoop running on its own thread; `run` executes a block there and waits for it.
public final class LoopThread: @unchecked Sendable {
    public let loop = MainLoop()
    private let finished = DispatchSemaphore(value: 0)

    public init() {
        let thread = Thread { [loop, finished] in
            loop.run()
            finished.signal()
        }
        thread.start()
    }

    public func run<T>(_ body: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        let work = Unchecked(value: body)
        loop.post {
            box.result = Result { try work.value() }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success else {
            throw TestSetupError("the loop thread did not answer in 10 s")
        }
        return try box.result!.get()
    }

    public func stop() {
        loop.stop()
        _ = finished.wait(timeout: .now() + 10)
    }
}

/// A result handed from one thread to another.
public final class ResultBox<T>: @unchecked Sendable {
    public var result: Result<T, any Error>?
    public init() {}
}

/// Waits on a DispatchSemaphore-backed flag set from another thread.
public final class Flag: @unchecked Sendable {
    public init() {}
    private let semaphore = DispatchSemaphore(value: 0)
    public func set() { semaphore.signal() }
    public func wait(seconds: Double) -> Bool { semaphore.wait(timeout: .now() + seconds) == .success }
}
