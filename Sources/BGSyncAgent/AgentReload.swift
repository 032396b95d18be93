// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWorkers
import Logging
import MainLoop

/// Changes without a restart. `reloadConfiguration` (SIGHUP, `systemctl --user reload bgsyncd`)
/// reads bgsyncd.conf again; a change in a plugin directory (inotify) scans the plugins again.
/// Registrations, running events and the bus name are untouched: the scheduler gets the new
/// settings and handler list, the worker pool the new plugin files (a running event finishes in
/// the worker that has it), and the bus a PropertiesChanged for `Handlers` when the list changed.
/// The state directory is the one thing read only at start (the database stays open).
final class AgentReloader {
    private let loop: MainLoop
    private let options: AgentOptions
    private let workerExecutable: String
    private let scheduler: Scheduler
    private let workers: WorkerPool
    private let service: ManagerService
    /// Handlers in the agent itself (`app`): always there, and never replaced by a plugin.
    private let builtIn: [HandlerInfo]
    private let logger: Logger
    private let loadConfiguration: () -> AgentConfiguration
    private var configuration: AgentConfiguration
    private var pluginDirectories: [String]
    private var watch: PluginDirectoryWatch?

    init(
        loop: MainLoop, options: AgentOptions, configuration: AgentConfiguration, workerExecutable: String,
        scheduler: Scheduler, workers: WorkerPool, service: ManagerService, builtIn: [HandlerInfo], logger: Logger,
        loadConfiguration: @escaping () -> AgentConfiguration
    ) {
        self.loop = loop
        self.options = options
        self.configuration = configuration
        self.workerExecutable = workerExecutable
        self.scheduler = scheduler
        self.workers = workers
        self.service = service
        self.builtIn = builtIn
        self.logger = logger
        self.loadConfiguration = loadConfiguration
        pluginDirectories = Self.pluginDirectories(options: options, configuration: configuration)
        watchPlugins()
    }

    /// Where handlers are looked for: `--plugin-dir`, else the configuration's, else the defaults.
    static func pluginDirectories(options: AgentOptions, configuration: AgentConfiguration) -> [String] {
        options.pluginDirectories.isEmpty
            ? configuration.pluginDirectories ?? AgentPaths.defaultPluginDirectories : options.pluginDirectories
    }

    func reloadConfiguration() {
        logger.info("reloading the configuration")
        let new = loadConfiguration()
        if options.stateDirectory == nil, new.stateDirectory != configuration.stateDirectory {
            logger.warning("state-directory changes take effect at the next start; keeping the open database")
        }
        configuration = new
        scheduler.settings = new.sync
        let directories = Self.pluginDirectories(options: options, configuration: new)
        if directories != pluginDirectories {
            pluginDirectories = directories
            watchPlugins()
        }
        rescanPlugins()
    }

    func rescanPlugins() {
        let catalog = PluginCatalog.discover(
            directories: pluginDirectories, workerExecutable: workerExecutable, logger: logger)
        let before = scheduler.handlers.keys.sorted()
        workers.replace(catalog: catalog, maxWorkers: configuration.sync.concurrentEvents)
        let plugins = catalog.handlers.mapValues(\.info)
        scheduler.handlers = RoutingDispatcher.handlers(builtIn: builtIn, plugins: plugins).handlers
        let after = scheduler.handlers.keys.sorted()
        guard after != before else { return }
        logger.info("handlers now: \(after.isEmpty ? "none" : after.joined(separator: ", "))")
        service.handlersChanged()
    }

    private func watchPlugins() {
        watch?.stop()
        let watch = PluginDirectoryWatch(loop: loop, directories: pluginDirectories)
        watch.onChange = { [unowned self] in
            self.logger.info("a plugin directory changed; looking for handlers again")
            self.watchPlugins()  // first: a directory that was just created is watched from now on
            self.rescanPlugins()
        }
        self.watch = watch
    }

    func stop() {
        watch?.stop()
        watch = nil
    }
}
