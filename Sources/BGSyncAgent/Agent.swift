// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncNetwork
import BGSyncPower
import BGSyncStore
import BGSyncWire
import BGSyncWorkers
import DBusKit
import Foundation
import Logging
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

/// What `bgsyncd`'s command line can set. Everything else comes from bgsyncd.conf.
public struct AgentOptions: Sendable {
    /// Only this configuration file, instead of the system and user ones.
    public var configFile: String?
    public var stateDirectory: String?
    public var pluginDirectories: [String] = []
    public var workerExecutable: String?
    public var network: NetworkMode = .automatic
    public var power: PowerMode = .upower
    /// A bus address to use instead of the session bus.
    public var busAddress: String?
    public var verbose = false

    public init() {}
}

/// A failure that stops the agent from starting, with the message to print.
public struct AgentStartError: Error, CustomStringConvertible {
    public var description: String
}

/// The agent: the core scheduler wired to SQLite, the handler workers, the network and the bus,
/// all driven by one MainLoop.
public final class Agent {
    private let loop = MainLoop()
    private let logger: Logger
    private let options: AgentOptions

    public init(options: AgentOptions) {
        self.options = options
        let level: Logger.Level = options.verbose ? .debug : .info
        // Under systemd, entries with fields (BGSYNC_APP, BGSYNC_TAG); elsewhere, lines on stderr.
        let journal = JournalLogHandler.isAvailable()
        var logger = Logger(label: "bgsyncd") { label -> any LogHandler in
            journal ? JournalLogHandler(label: label, level: level) : StderrLogHandler(label: label, level: level)
        }
        logger.logLevel = options.verbose ? .debug : .info
        self.logger = logger
    }

    /// Runs until SIGTERM/SIGINT or the bus goes away; returns the exit status. What stops it
    /// from starting is logged, naming the file or name at fault.
    public func run() -> Int32 {
        do {
            try serve()
            return 0
        } catch let error as AgentStartError {
            logger.critical("\(error.description)")
        } catch {
            logger.critical("\(error)")
        }
        return 1
    }

    private func serve() throws {
        var stopping = false
        var reload: (() -> Void)?  // SIGHUP, once everything is up (AgentReloader)
        // The loop owns these closures: they hold it unowned, or neither would ever be freed.
        loop.addSignalWatch([SIGTERM, SIGINT, SIGHUP]) { [unowned loop, logger] signal in
            if signal == SIGHUP, let reload { return reload() }
            logger.info("stopping on signal \(signal)")
            stopping = true
            loop.stop()
        }
        let configuration = loadConfiguration()
        // The name first: a second agent must stop before it touches the database or runs a sync.
        // Calls that arrive meanwhile wait in the connection until the loop runs.
        let bus: DBusConnection
        do {
            bus = try DBusConnection(bus: options.busAddress.map(BusAddress.address) ?? .session)
            guard try bus.requestName(ManagerService.busName) else {
                throw AgentStartError(
                    description:
                        "another agent already owns \(ManagerService.busName) on this bus; only one bgsyncd runs per session"
                )
            }
        } catch let error as DBusError {
            throw AgentStartError(
                description: "cannot use the session bus for \(ManagerService.busName): \(error.message)")
        }
        defer { bus.close() }
        let stateDirectory = options.stateDirectory ?? configuration.stateDirectory ?? AgentPaths.defaultStateDirectory
        let store: SQLiteRegistrationStore
        do {
            // Commits run on the store's own queue; their completions come back through the loop.
            store = try SQLiteRegistrationStore(directory: stateDirectory, deliver: { [unowned loop] in loop.post($0) })
        } catch {
            throw AgentStartError(description: error.message)
        }
        defer { store.close() }

        let worker = options.workerExecutable ?? AgentPaths.defaultWorkerExecutable
        let pluginDirectories = AgentReloader.pluginDirectories(options: options, configuration: configuration)
        let catalog = PluginCatalog.discover(directories: pluginDirectories, workerExecutable: worker, logger: logger)
        let handlerNames = catalog.handlers.keys.sorted()
        logger.info(
            "handlers: \(handlerNames.isEmpty ? "none (looked in \(pluginDirectories.joined(separator: ", ")))" : handlerNames.joined(separator: ", "))"
        )
        let workers = WorkerPool(
            loop: loop, workerExecutable: worker, catalog: catalog,
            maxWorkers: configuration.sync.concurrentEvents, logger: logger,
            handlerStateDirectory: stateDirectory + "/handlers")
        defer { workers.shutdown() }

        let network = makeNetworkMonitor(mode: options.network, loop: loop, logger: logger)
        network.start()
        let power = makePowerMonitor(mode: options.power, loop: loop, logger: logger)
        power.start()
        // Before the scheduler starts: nothing the user switched off may run, not even once.
        let permissions: any AppPermissions = PermissionStoreMonitor(connection: bus, logger: logger)
        permissions.start()
        // `app` runs in the agent (AppHandler says why), every other handler in a worker.
        let appHandler = AppHandler(connection: bus, loop: loop, logger: logger)
        let handlers = RoutingDispatcher.handlers(
            builtIn: [AppHandler.info], plugins: catalog.handlers.mapValues(\.info))
        for name in handlers.shadowed { logger.warning("Not using the plugin for handler '\(name)': it is built in.") }
        let scheduler = Scheduler(
            settings: configuration.sync, clock: LoopClock(loop: loop), store: store,
            dispatcher: RoutingDispatcher(builtIn: [AppHandler.info.name: appHandler], plugins: workers),
            handlers: handlers.handlers, network: network.status, power: power.status, denied: permissions.denied)
        let service = ManagerService(scheduler: scheduler, connection: bus, logger: logger)
        service.registered = { if $0.handler == AppHandler.info.name { appHandler.registered($0.key) } }
        scheduler.observer = service
        store.onBackgroundFailure = { [unowned service] in service.storageFailed($0) }
        // Outcomes of the events that finished in one iteration go to the file in one transaction;
        // their signals follow it.
        loop.addIterationEndHandler { [unowned store, unowned service] in
            service.sendHeldSignals { store.flush(written: $0) }
        }
        network.onChange = { [logger] (status: NetworkStatus) in
            logger.info("network: \(status)")
            scheduler.networkChanged(status)
            service.networkChanged()
        }
        power.onChange = { [logger] (status: PowerStatus) in
            logger.info("power: \(status)")
            scheduler.powerChanged(status)
            service.networkChanged()
        }
        permissions.onChange = { (denied: Set<String>) in scheduler.permissionsChanged(denied) }
        // The scheduler holds the monitor (it asks for the lock); the monitor holds it weakly, and
        // the network and power monitors too: the network's onChange holds the scheduler, so a
        // strong capture here made a cycle that outlived `serve` (LeakSanitizer's reports at exit).
        let sleep = makeSleepMonitor(loop: loop, logger: logger)
        scheduler.sleepMonitor = sleep
        sleep.onPrepareForSleep = { [weak scheduler, unowned sleep, weak network, weak power] sleeping in
            guard let scheduler, let network, let power else { return }
            if sleeping {
                // The shorter of the two: what fits inside logind's delay, and what the configuration allows.
                scheduler.prepareForSleep(grace: min(sleep.stopGrace, scheduler.settings.interruptGracePeriod))
            } else {
                // Asleep, the network and the power supply may have changed without a word.
                power.refresh()
                scheduler.networkChanged(network.status)
                scheduler.powerChanged(power.status)
                scheduler.resumedFromSleep()
            }
        }
        sleep.start()
        // Weak: the scheduler owns the pool (through its dispatcher), so a strong capture here
        // would keep both, and all they hold, alive past `serve`.
        workers.onProgress = { [weak scheduler] event, progress in
            scheduler?.progressReported(key: event.key, eventID: event.id, progress)
        }
        workers.onBytes = { [weak scheduler] event, bytes in
            scheduler?.transferReported(
                key: event.key, eventID: event.id, sent: bytes.sent, received: bytes.received, expected: bytes.expected)
        }
        do {
            try scheduler.start()
        } catch {
            throw AgentStartError(description: error.message)
        }
        // A damaged file was repaired as the store opened, or a row failing its checks was
        // removed as the scheduler loaded them.
        if let repair = store.repair {
            logger.warning("\(StoreRepairReport.logLine(repair, path: store.path))")
            service.repair = repair
        }
        logger.info(
            "network: \(network.status); power: \(power.status); \(scheduler.count) registrations in \(store.path)")

        bus.onDisconnect = { [unowned loop, logger] in
            if !stopping { logger.notice("the session bus went away; exiting") }
            loop.stop()
        }
        let reloader = AgentReloader(
            loop: loop, options: options, configuration: configuration, workerExecutable: worker, scheduler: scheduler,
            workers: workers, service: service, builtIn: [AppHandler.info], logger: logger,
            loadConfiguration: { [unowned self] in self.loadConfiguration() })
        defer {
            reloader.stop()
            reload = nil
        }
        reload = reloader.reloadConfiguration
        bus.attach(to: loop)
        logger.info("ready on \(bus.uniqueName) as \(ManagerService.busName)")
        loop.run()
    }

    /// bgsyncd.conf: `--config` alone, or the system file then the user's. Problems in a file are
    /// logged with file and line and leave the defaults in place.
    private func loadConfiguration() -> AgentConfiguration {
        var configuration = AgentConfiguration()
        let files = options.configFile.map { [$0] } ?? AgentPaths.defaultConfigFiles
        for path in files {
            guard let text = readFile(path) else {
                if options.configFile != nil {
                    logger.warning("cannot read \(path): \(String(cString: strerror(errno)))")
                }
                continue
            }
            for diagnostic in configuration.apply(fileContents: text, path: path) {
                logger.warning("\(diagnostic)")
            }
            logger.debug("read configuration from \(path)")
        }
        return configuration
    }

    private func readFile(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}
