// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWire
import MainLoop

import struct Foundation.Date

#if canImport(Glibc)
import Glibc
#endif

// Stopping a running event when a condition was lost, and following the progress it reports.
extension WorkerPool {
    /// Sends the worker running `eventID` the stop signal; kills it if it is still running that
    /// event `grace` seconds later (its completion is then a retry with detail "interrupted").
    /// An event still queued for a worker is taken out and completed the same way at once.
    /// Asked again with a grace that ends sooner (the machine is about to sleep while a lost
    /// condition's longer grace runs), the kill comes at the sooner end.
    public func cancel(eventID: UInt64, grace: Double) {
        if let index = queuedIndex(of: eventID) {
            let job = dequeue(at: index)
            return finish(job, .retry(after: nil, detail: "interrupted before it started"))
        }
        guard let worker = workers.first(where: { $0.job?.event.id == eventID }), var job = worker.job else { return }
        let ends = MainLoop.monotonicNow() + UInt64(max(0, grace) * 1e9)
        if job.stopRequested {
            guard let armed = worker.graceEnds, ends < armed else { return }
            worker.endGrace(on: loop)
        } else {
            job.stopRequested = true
            worker.job = job
            logger.info(
                "Asking handler '\(worker.handler)' (pid \(worker.pid)) to stop \(job.event.key) (event \(eventID)).",
                metadata: job.event.key.logMetadata)
            // Queued with the event's id, so the worker cannot take it for another event.
            let value = sigval(sival_ptr: UnsafeMutableRawPointer(bitPattern: UInt(eventID)))
            _ = sigqueue(worker.pid, WireProtocol.stopSignal, value)
        }
        worker.graceEnds = ends
        worker.graceTimer = loop.addTimer(after: max(0, grace)) { [unowned self, unowned worker] in
            worker.graceTimer = nil
            worker.graceEnds = nil
            guard let running = worker.job, running.event.id == eventID else { return }
            let message =
                "Handler '\(worker.handler)' did not stop \(running.event.key) within \(grace) s; "
                + "killing worker pid \(worker.pid)."
            self.logger.warning("\(message)", metadata: running.event.key.logMetadata)
            worker.kill()  // now, not after the idle workers' deinit grace
            worker.job = nil
            self.retire(worker)
            self.finish(running, .retry(after: nil, detail: "interrupted (the handler did not stop in time)"))
            self.startQueued()
        }
    }

    /// A progress frame from `worker`. A change of `done` is progress: the event is then held to
    /// the stall time from now (under its ceiling) instead of its cap. False: the worker broke
    /// the protocol and was stopped.
    func progressed(_ worker: WorkerConnection, eventID: UInt64, _ progress: SyncProgress) -> Bool {
        guard var job = worker.job, job.event.id == eventID else {
            let message =
                "Worker pid \(worker.pid) of handler '\(worker.handler)' reported progress on event "
                + "\(eventID), which it was not running; stopping it."
            logger.error("\(message)")
            workerDied(worker, why: "it broke the protocol", kill: true)
            return false
        }
        if job.lastDone != progress.done {
            job.lastDone = progress.done
            worker.job = job
            worker.deadline = job.event.deadline(afterProgressAt: Date())
            worker.deadlineTimer?.arm(at: worker.deadline)
        }
        onProgress?(job.event, progress)
        return true
    }

    /// A byte frame from `worker`: bytes moved are progress (the stall time runs from the last
    /// byte moved). False: the worker broke the protocol and was stopped.
    func moved(_ worker: WorkerConnection, eventID: UInt64, _ bytes: WireBytes) -> Bool {
        guard var job = worker.job, job.event.id == eventID else {
            let message =
                "Worker pid \(worker.pid) of handler '\(worker.handler)' reported bytes on event "
                + "\(eventID), which it was not running; stopping it."
            logger.error("\(message)")
            workerDied(worker, why: "it broke the protocol", kill: true)
            return false
        }
        if job.bytes?.sent != bytes.sent || job.bytes?.received != bytes.received {
            worker.deadline = job.event.deadline(afterProgressAt: Date())
            worker.deadlineTimer?.arm(at: worker.deadline)
        }
        job.bytes = bytes
        worker.job = job
        onBytes?(job.event, bytes)
        return true
    }
}

extension WorkerConnection {
    func endGrace(on loop: MainLoop) {
        if let timer = graceTimer { loop.cancelTimer(timer) }
        graceTimer = nil
        graceEnds = nil
    }
}
