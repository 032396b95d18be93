// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWire
import Logging
import MainLoop

import struct Foundation.Date

#if canImport(Glibc)
import Glibc
#endif

/// Runs events in `bgsync-worker` processes, one plugin per process and one event at a time per
/// process. Idle workers are kept for the next event of their handler; at most `maxWorkers`
/// processes exist, and an idle worker of another handler is stopped when room is needed.
/// Everything happens on the loop's thread and nothing blocks it: workers are spawned with
/// posix_spawn, spoken to through non-blocking sockets and reaped through pidfds.
///
/// A worker that dies during an event completes it with `.retry(after: nil, detail: "crashed")`;
/// one that is still running at the event's deadline (wall clock) is killed and completes it with
/// `.retry(after: nil, detail: "timeout")`. Either way the next event gets a fresh worker. A
/// handler that reports progress is held to the event's stall time after its last progress
/// instead (never past its ceiling), and `cancel` asks a running event to stop
/// (WorkerPool+Conditions.swift).
///
/// A worker of another bgsync (its hello says so, or it ends before any: WireProtocol) has run
/// nothing: its event goes back to the front of the queue, uncharged, and the pool holds every
/// event that needs a new worker until the agent is restarted or reloaded (`otherBgsync`).
public final class WorkerPool: EventDispatcher {
    let loop: MainLoop
    private let workerExecutable: String
    private var catalog: PluginCatalog
    private var maxWorkers: Int
    let logger: Logger
    let reaper: ChildReaper
    var workers: [WorkerConnection] = []
    /// Events with no free worker yet, oldest first.
    private var queue: [WorkerJob] = []
    private var isShutDown = false

    /// How many worker processes were started so far (for statistics and tests).
    public private(set) var workersStarted = 0
    /// Worker processes alive now (idle or busy).
    public var workerCount: Int { workers.count }
    /// The process ids of the workers alive now.
    public var workerProcessIDs: [Int32] { workers.map(\.pid) }
    /// Events waiting for a worker.
    public var queuedCount: Int { queue.count }
    /// A worker of another bgsync answered: the version its hello named, nil for none (from
    /// before hellos, or it could not start).
    public struct OtherBgsync: Equatable, Sendable {
        public var workerVersion: UInt32?
    }
    /// Set while events are held: no new worker is started (idle workers of this bgsync still
    /// run events of their handler).
    public private(set) var holding: OtherBgsync?
    /// Progress a running event reported (WorkerPool+Conditions.swift), on the loop's thread.
    public var onProgress: ((SyncEvent, SyncProgress) -> Void)?
    /// Bytes a running event reported moving (running totals), on the loop's thread; at most one
    /// call per BGSYNC_BYTES_REPORT_INTERVAL_MS per event (the worker's rate limit).
    public var onBytes: ((SyncEvent, WireBytes) -> Void)?

    /// Where handlers keep their own state (`bgsync-worker --state-dir`, each beneath it in a
    /// directory of its name); nil: handlers get none (open_state_dir fails with ENOENT).
    private let handlerStateDirectory: String?

    public init(
        loop: MainLoop, workerExecutable: String, catalog: PluginCatalog, maxWorkers: Int, logger: Logger,
        handlerStateDirectory: String? = nil
    ) {
        self.loop = loop
        self.workerExecutable = workerExecutable
        self.handlerStateDirectory = handlerStateDirectory
        self.catalog = catalog
        self.maxWorkers = max(1, maxWorkers)
        self.logger = logger
        reaper = ChildReaper(loop: loop)
    }

    deinit {
        if !isShutDown { shutdown() }
    }

    public func dispatch(_ event: SyncEvent, completion: @escaping (HandlerOutcome) -> Void) {
        let job = WorkerJob(event: event, completion: completion)
        guard !isShutDown else {
            return finish(job, .retry(after: nil, detail: "bgsync is shutting down"))
        }
        guard catalog.handlers[event.handler] != nil else {
            return finish(job, .failure(detail: "handler '\(event.handler)' is not installed"))
        }
        queue.append(job)
        startQueued()
    }

    /// Kills and reaps every worker (blocking briefly: SIGKILL ends them at once). Completions of
    /// events still running or queued are not called: the agent is going away, and a registration
    /// that was firing is stored as pending, so it runs again without counting an attempt.
    public func shutdown() {
        isShutDown = true
        queue.removeAll()
        // An idle worker reads end of file on its socket, calls its plugin's deinit and exits;
        // one still running a handler is killed, as is an idle one that takes longer than this.
        let grace = MonotonicDeadline(after: Self.deinitGrace)
        for worker in workers {
            if !worker.isIdle { worker.kill() }
            detach(worker)
        }
        for worker in workers { _ = ChildProcess.waitOrKill(worker.pid, timeout: grace.remainingSeconds) }
        workers.removeAll()
        // Retired workers still in their grace: the reaper kills and reaps them now.
        for timer in graceTimers.values { loop.cancelTimer(timer) }
        graceTimers.removeAll()
        reaper.reapAllBlocking()
    }

    /// How long an idle worker being stopped may take to run its plugin's deinit and exit
    /// (shutdown waits this long in all).
    public static let deinitGrace = 2.0
    /// SIGKILL timers of retired idle workers not yet reaped, by pid.
    private(set) var graceTimers: [pid_t: MainLoop.Timer] = [:]

    func queuedIndex(of eventID: UInt64) -> Int? { queue.firstIndex { $0.event.id == eventID } }
    func dequeue(at index: Int) -> WorkerJob { queue.remove(at: index) }

    /// Takes the handlers of a new scan and a new process limit (a reload). Idle workers stop,
    /// so the next event loads the plugin file that is there now; a busy worker finishes its
    /// event (even of a handler that is gone: its process has the plugin loaded) and stops then.
    /// Queued events stay queued.
    public func replace(catalog: PluginCatalog, maxWorkers: Int) {
        self.catalog = catalog
        self.maxWorkers = max(1, maxWorkers)
        // A reload (SIGHUP, or plugin files that changed, as an upgrade changes them) tries one
        // new worker again: the worker may have been put back. At most one spawn per reload.
        if holding != nil {
            holding = nil
            logger.info("Reloaded: trying \(workerExecutable) again for the events held so far.")
        }
        for worker in workers {
            if worker.isIdle { retire(worker) } else { worker.retireWhenDone = true }
        }
        startQueued()
    }

    // MARK: - Scheduling

    /// Starts queued events while there is a worker for them. The oldest event always goes
    /// first: it can start whenever any worker is idle or there is room for one more.
    func startQueued() {
        while let job = queue.first {
            let handler = job.event.handler
            if let worker = workers.first(where: { $0.isIdle && $0.handler == handler }) {
                queue.removeFirst()
                start(job, on: worker)
                continue
            }
            guard holding == nil else { return }  // held: only idle workers of this bgsync run
            if workers.count >= maxWorkers {
                let idle = workers.filter(\.isIdle)
                guard let victim = idle.min(by: { $0.lastUsed < $1.lastUsed }) else { return }  // all busy: wait
                logger.debug(
                    "Stopping the idle worker of handler '\(victim.handler)' (pid \(victim.pid)) to make room for '\(handler)'."
                )
                retire(victim)
            }
            queue.removeFirst()
            guard let plugin = catalog.handlers[handler] else {  // checked in dispatch; never here
                finish(job, .failure(detail: "handler '\(handler)' is not installed"))
                continue
            }
            do {
                let worker = try WorkerConnection(
                    handler: handler, pluginPath: plugin.path, workerExecutable: workerExecutable,
                    stateDirectory: handlerStateDirectory)
                workersStarted += 1
                worker.watch = loop.addWatch(fd: worker.fd, events: .readable) {
                    [unowned self, unowned worker] events in
                    self.workerIsReady(worker, events: events)
                }
                workers.append(worker)
                logger.debug("Started worker pid \(worker.pid) for handler '\(handler)'.")
                start(job, on: worker)
            } catch {
                logger.error("Cannot start a worker for handler '\(handler)': \(error.message)")
                finish(job, .retry(after: nil, detail: "could not start the handler: \(error.message)"))
            }
        }
    }

    private func start(_ job: WorkerJob, on worker: WorkerConnection) {
        let frame: [UInt8]
        do {
            frame = try WireProtocol.frame(WireEvent(job.event))
        } catch {
            return finish(job, .failure(detail: "the event's options cannot be sent to the handler: \(error)"))
        }
        worker.job = job
        worker.deadline = job.event.deadline
        let timer = WallClockTimer(loop: loop)
        timer.onFire = { [unowned self, unowned worker] in
            // A clock change fires it early, and progress moves the deadline: look again.
            if Date() >= worker.deadline {
                self.timedOut(worker)
            } else {
                worker.deadlineTimer?.arm(at: worker.deadline)
            }
        }
        timer.arm(at: worker.deadline)
        worker.deadlineTimer = timer
        if !worker.send(frame) { workerDied(worker, why: "the worker process ended before it got the event") }
    }

    // MARK: - Worker events

    private func workerIsReady(_ worker: WorkerConnection, events: MainLoop.Events) {
        if events.contains(.writable), !worker.flush() {
            return workerDied(worker, why: "the worker process ended before it got the whole event")
        }
        guard events.contains(.readable) || events.contains(.hangup) else { return }
        switch worker.readAvailable() {
        case .protocolError(let message):
            logger.error(
                "Worker pid \(worker.pid) of handler '\(worker.handler)' sent a malformed reply (\(message)); stopping it."
            )
            workerDied(worker, why: "it broke the protocol", kill: true)
        case .otherVersion(let version):
            otherBgsync(worker, version: version)
        case .replies(let replies, let closed):
            for reply in replies {
                let outcome: WireOutcome
                switch reply {
                case .progress(let eventID, let done, let total, let text):
                    let progress = SyncProgress(done: done, total: total, text: text)
                    guard progressed(worker, eventID: eventID, progress) else { return }
                    continue
                case .bytes(let eventID, let bytes):
                    guard moved(worker, eventID: eventID, bytes) else { return }
                    continue
                case .outcome(let eventID, let wire, let moved):
                    outcome = wire
                    if var job = worker.job, job.event.id == eventID {
                        job.bytes = moved
                        worker.job = job
                    }
                }
                guard let job = worker.job, job.event.id == reply.eventID else {
                    logger.error(
                        "Worker pid \(worker.pid) of handler '\(worker.handler)' answered event \(reply.eventID), which it was not running; stopping it."
                    )
                    return workerDied(worker, why: "it broke the protocol", kill: true)
                }
                worker.job = nil
                worker.deadlineTimer = nil
                worker.endGrace(on: loop)
                worker.lastUsed = MainLoop.monotonicNow()
                finish(job, HandlerOutcome(outcome))
                if worker.retireWhenDone {
                    retire(worker)
                    startQueued()
                    return
                }
            }
            if closed { return workerDied(worker, why: "the worker process ended") }
            startQueued()
        }
    }

    private func timedOut(_ worker: WorkerConnection) {
        guard let job = worker.job else { return }
        let cap =
            job.lastDone == nil && job.bytes == nil ? "the time cap" : "the stall time (no progress) or the ceiling"
        let message =
            "Handler '\(worker.handler)' overran \(cap) on \(job.event.key) (event \(job.event.id)); "
            + "killing worker pid \(worker.pid)."
        logger.warning("\(message)", metadata: job.event.key.logMetadata)
        worker.kill()  // now: without its job it would look idle to `retire`, which lets idle ones exit
        worker.job = nil
        retire(worker)
        finish(job, .retry(after: nil, detail: "timeout"))
        startQueued()
    }

    /// The worker ended on its own (or must be stopped): its event, if any, is a crash.
    func workerDied(_ worker: WorkerConnection, why: String, kill: Bool = false) {
        guard workers.contains(where: { $0 === worker }) else { return }
        // Before its hello it has loaded no plugin: not a handler's crash but another bgsync. A
        // quick one may have said hello and exited before the event could be sent: read it.
        if !worker.greeted {
            if case .otherVersion(let version) = worker.readAvailable() {
                return otherBgsync(worker, version: version)
            }
            if !worker.greeted { return otherBgsync(worker, version: nil) }
        }
        let job = worker.job
        worker.job = nil
        if kill { worker.kill() }
        if let job {
            logger.warning(
                "Handler '\(worker.handler)' crashed on \(job.event.key) (event \(job.event.id), worker pid \(worker.pid)): \(why).",
                metadata: job.event.key.logMetadata)
        }
        retire(worker)
        if let job { finish(job, .retry(after: nil, detail: "crashed")) }
        startQueued()
    }

    /// `worker` is of another bgsync (`version`; nil: from before hellos, or it could not start)
    /// and ran nothing: its event goes back to the front of the queue, not charged (the
    /// scheduler sees it running; a restart finds it pending, and `cancel` still interrupts it),
    /// and no new worker starts until a restart or a reload. This is a package upgrade caught
    /// half done: dpkg has replaced bgsync-worker, the postinst will restart the agent.
    ///
    /// Holding, not re-executing the agent: the postinst restarts the agents of running user
    /// managers within the same dpkg run, a few seconds later, which is the case that matters; a
    /// re-exec would end the events that still run in workers of this bgsync, and would have to
    /// hand the bus name over across execve under systemd's Type=dbus tracking of it. An agent
    /// no user manager runs (D-Bus activation without systemd) waits until it is started again,
    /// and says so in the log. No spawning loop: one worker is tried per restart or reload.
    func otherBgsync(_ worker: WorkerConnection, version: UInt32?) {
        guard workers.contains(where: { $0 === worker }) else { return }
        let job = worker.job
        worker.job = nil
        worker.kill()  // it exits by itself; this only saves the idle grace
        retire(worker)
        let spoken =
            version.map { "worker protocol \($0)" }
            ?? "no worker protocol hello (a bgsync from before hellos, or one that could not start)"
        if holding == nil {
            let message =
                "\(workerExecutable) (pid \(worker.pid)) speaks \(spoken), this bgsyncd \(WireProtocol.version): "
                + "bgsync was upgraded or downgraded under the running agent. Events wait, without "
                + "spending an attempt, until bgsyncd is restarted (systemctl --user restart bgsyncd; "
                + "the package restarts it for running user managers)."
            logger.warning("\(message)")
        }
        holding = OtherBgsync(workerVersion: version)
        if var job {
            if job.stopRequested {  // asked to stop meanwhile: interrupted, as if still queued
                finish(job, .retry(after: nil, detail: "interrupted before it started"))
            } else {
                job.lastDone = nil
                logger.info(
                    "Holding \(job.event.key) (event \(job.event.id)) until bgsyncd is restarted; no attempt counted.")
                queue.insert(job, at: 0)
            }
        }
        startQueued()
    }

    /// Stops using `worker` and reaps it in the background. An idle one gets end of file on its
    /// socket, so its plugin's deinit runs, and SIGKILL only if it has not exited within
    /// `deinitGrace`; a busy one is killed at once. (Killing is harmless if it already ended: it
    /// stays a zombie until reaped, so the pid cannot be reused; the timer is cancelled on reaping.)
    func retire(_ worker: WorkerConnection) {
        workers.removeAll { $0 === worker }
        let pid = worker.pid
        if worker.isIdle {
            graceTimers[pid] = loop.addTimer(after: Self.deinitGrace) { _ = Glibc.kill(pid, SIGKILL) }
        } else {
            worker.kill()
        }
        detach(worker)
        let (handler, logger) = (worker.handler, logger)
        reaper.watch(pid) { [weak self] status in
            if let self, let timer = graceTimers.removeValue(forKey: pid) { loop.cancelTimer(timer) }
            if status.signal == SIGKILL || status.exitCode == 0 {
                logger.debug("Worker pid \(pid) of handler '\(handler)' \(status).")
            } else {
                logger.warning("Worker pid \(pid) of handler '\(handler)' \(status).")
            }
        }
    }

    private func detach(_ worker: WorkerConnection) {
        if let watch = worker.watch { loop.removeWatch(watch) }
        worker.watch = nil
        worker.deadlineTimer = nil
        worker.endGrace(on: loop)
        worker.closeSocket()
    }

    /// Calls `completion` on the loop soon: never inside `dispatch`, always exactly once. The
    /// outcome carries the bytes the event sent and received in all (kept per app for ListApps):
    /// from the outcome's frame, or, for a worker that crashed, timed out or was killed, its last
    /// byte report (zeros when it reported none).
    func finish(_ job: WorkerJob, _ outcome: HandlerOutcome) {
        let completion = job.completion
        let bytes = job.bytes ?? WireBytes()
        var outcome = outcome
        outcome.bytesSent = bytes.sent
        outcome.bytesReceived = bytes.received
        loop.addTimer(after: 0) { completion(outcome) }
    }
}
