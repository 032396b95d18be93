// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncStore
import BGSyncValue
import BGSyncWorkers
import CBGSyncInterface
import DBusKit
import Logging

/// org.bgsync.Manager: the whole bus surface of the agent, in this one file. Each method
/// handler decodes its arguments, lets the core validate and act, and maps the core's errors to
/// D-Bus errors through `errorNames`. The table of methods and properties is at the end.
final class ManagerService: SyncObserver {
    static let busName = "org.bgsync"
    static let objectPath = "/org/bgsync/Manager"
    static let interface = "org.bgsync.Manager"
    /// 2: sync signals are unicast to subscribers (1 broadcast them); Subscribe and SyncProgress.
    /// 3: ListApps, NotAllowed and GetRegistration's `allowed` (the user switching apps off).
    static let interfaceVersion: UInt32 = 3
    static let introspectionXML = String(cString: bgsync_manager_interface_xml())

    /// One table from the core's error codes to D-Bus error names.
    static let errorNames: [SyncError.Code: String] = [
        .invalidArgument: "org.freedesktop.DBus.Error.InvalidArgs",
        .unknownHandler: "org.bgsync.Error.UnknownHandler",
        .notFound: "org.bgsync.Error.NotFound",
        .quotaExceeded: "org.bgsync.Error.QuotaExceeded",
        .accessDenied: "org.bgsync.Error.AccessDenied",
        .storage: "org.bgsync.Error.Storage",
        .notAllowed: "org.bgsync.Error.NotAllowed",
    ]

    private let scheduler: Scheduler
    private let connection: DBusConnection
    private let logger: Logger
    private let object = DBusExportedObject(introspectionXML: ManagerService.introspectionXML)
    private var announcedNetwork: NetworkStatus
    private var announcedPower: PowerStatus
    /// Sync signals waiting for the outcomes before them to reach the file (sendHeldSignals).
    private var heldSignals: [() -> Void] = []
    /// Groups of held signals handed to a flush, oldest first; sent in this order when ready.
    private var releasing: [(id: Int, signals: [() -> Void], ready: Bool)] = []
    private var nextReleaseID = 0
    private let access: CallerAccess
    private var subscribers = SignalSubscribers()
    /// Told of every registration accepted (the `app` handler checks its app can be reached).
    var registered: ((RegistrationRequest) -> Void)?
    /// What the store did to a damaged database at the start (nil if nothing): the Repair
    /// property and GetRepair.
    var repair: StoreRepair?

    init(scheduler: Scheduler, connection: DBusConnection, logger: Logger) {
        self.scheduler = scheduler
        self.connection = connection
        self.logger = logger
        announcedNetwork = scheduler.network
        announcedPower = scheduler.power
        access = CallerAccess(
            connection: connection, logger: logger, handlers: { [unowned scheduler] in scheduler.handlers })
        let limit = Self.argumentLimit(optionsBytes: scheduler.settings.maxOptionsBytes)
        for method in Self.methods {
            switch method.body {
            case .now(let handler):
                object.addMethod(
                    interface: Self.interface, name: method.name, inSignature: method.signature, argumentLimit: limit
                ) {
                    [unowned self] (call: DBusMethodCall) throws(DBusError) -> [Value] in
                    do {
                        // Each method checks its decoded request with `allow` before acting.
                        return try handler(self)(call)
                    } catch {
                        throw Self.dbusError(error)
                    }
                }
            case .afterCommit(let handler):
                object.addDeferredMethod(
                    interface: Self.interface, name: method.name, inSignature: method.signature, argumentLimit: limit
                ) {
                    [unowned self] (call: DBusMethodCall, reply: DBusPendingReply) throws(DBusError) in
                    do {
                        try handler(self)(call) { result in reply.send(result.mapError(Self.dbusError)) }
                    } catch {
                        throw Self.dbusError(error)
                    }
                }
            }
        }
        for property in Self.properties {
            object.addProperty(interface: Self.interface, name: property.name, signature: property.signature) {
                [unowned self] in property.get(self)
            }
        }
        connection.export(object, at: Self.objectPath)
        do {
            try connection.addMatch(
                "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged'"
            ) { [unowned self] signal in
                // A unique name that lost its owner has left the bus, for good.
                guard signal.arguments.count == 3, case .string(let name) = signal.arguments[0], name.hasPrefix(":"),
                    case .string(let owner) = signal.arguments[2], owner.isEmpty
                else { return }
                self.subscribers.remove(name)
                self.access.forget(name)
            }
        } catch {
            logger.warning(
                "cannot follow callers leaving the bus (\(error.message)); signal subscriptions stay until restart")
        }
    }

    /// The one mapping from what a method throws to what the caller gets.
    private static func dbusError(_ error: any Error) -> DBusError {
        switch error {
        case let error as SyncError:
            DBusError(name: errorNames[error.code] ?? "org.bgsync.Error.Failed", message: error.message)
        case let error as DBusError: error
        default: DBusError(name: "org.bgsync.Error.Failed", message: "\(error)")
        }
    }

    /// What a call's arguments may decode into: the options limit plus room for the names (an
    /// app id takes at most 255 bytes, a tag 1024 characters, a handler name 255 bytes). Checked
    /// while decoding, so a 30 MiB option is refused before a value is built for it; the
    /// scheduler then checks the options alone against the exact limit.
    static func argumentLimit(optionsBytes: Int) -> DecodingLimit {
        let names = 8 * 1024
        return DecodingLimit(
            bytes: optionsBytes + names,
            error: DBusError(
                name: errorNames[.invalidArgument]!,
                message: "The arguments take more than \(optionsBytes + names) bytes; the options may take at most "
                    + "\(optionsBytes). Pass large data as a file path."))
    }

    // MARK: - Methods

    /// How a method that changes registrations answers: once its change is on the disk.
    private typealias Answer = (Result<[Value], any Error>) -> Void

    private func register(_ call: DBusMethodCall, _ answer: @escaping Answer) throws {
        let args = Arguments(call)
        let request = try allow(
            call,
            RegistrationRequest(
                appID: try args.string(0), tag: try args.string(1), handler: try args.string(2),
                options: try args.options(3)))
        scheduler.register(request) { [unowned self] error in
            if let error { return answer(.failure(error)) }
            logger.debug("registered \(request.key) for \(call.sender)", metadata: request.key.logMetadata)
            registered?(request)
            answer(.success([]))
        }
    }

    private func registerPeriodic(_ call: DBusMethodCall, _ answer: @escaping Answer) throws {
        let args = Arguments(call)
        let interval = try args.uint64(3)
        let request = try allow(
            call,
            RegistrationRequest(
                appID: try args.string(0), tag: try args.string(1), kind: .periodic, handler: try args.string(2),
                options: try args.options(4), minInterval: Double(interval)))
        scheduler.register(request) { [unowned self] error in
            if let error { return answer(.failure(error)) }
            logger.debug(
                "registered \(request.key) every \(interval) s for \(call.sender)", metadata: request.key.logMetadata)
            registered?(request)
            answer(.success([]))
        }
    }

    private func tags(_ kind: RegistrationKind) -> (DBusMethodCall) throws -> [Value] {
        { [unowned self] call in
            let appID = try Arguments(call).string(0)
            try Identifiers.validateAppID(appID)
            try allow(call, appID: appID)
            return [.array(elementSignature: "s", scheduler.tags(appID: appID, kind: kind).map(Value.string))]
        }
    }

    private func unregister(_ kind: RegistrationKind) -> (DBusMethodCall, @escaping Answer) throws -> Void {
        { [unowned self] call, answer in
            let key = try Arguments(call).key(kind)
            try allow(call, appID: key.appID)
            scheduler.unregister(key) { answer($0.map { [.bool($0)] }.mapError { $0 }) }
        }
    }

    private func getRegistration(_ call: DBusMethodCall) throws -> [Value] {
        let args = Arguments(call)
        let oneOff = try args.key(.oneOff)
        try allow(call, appID: oneOff.appID)
        let periodic = RegistrationKey(appID: oneOff.appID, tag: oneOff.tag, kind: .periodic)
        guard let registration = scheduler.registration(oneOff) ?? scheduler.registration(periodic) else {
            throw SyncError(.notFound, "\(oneOff.appID) has no registration with tag '\(oneOff.tag)'.")
        }
        var fields: [String: Value] = [
            "kind": .string(registration.key.kind.rawValue),
            "state": .string(registration.state.rawValue),
            "handler": .string(registration.handler),
            "attempts": .uint32(registration.attempts),
            "max-attempts": .uint32(registration.maxAttempts),
            "next-attempt": .int64(
                registration.state == .waiting
                    ? Int64(clamping: registration.nextAttempt?.timeIntervalSince1970 ?? 0) : 0),
            "network": .string(registration.network.rawValue),
            "last-error": .string(registration.lastError),
            "options": .vardict(registration.options),
        ]
        if let interval = registration.minInterval { fields["min-interval"] = .uint64(UInt64(clamping: interval)) }
        switch registration.confinement {
        case .unconfined: fields["confinement"] = .string("unconfined")
        case .sandboxed(let kind, _, let root):
            fields["confinement"] = .string(kind.rawValue)
            fields["root"] = .string(root)
        }
        fields["power"] = .string((registration.power ?? .any).rawValue)
        if let expiry = registration.expiresAt {
            fields["expires-at"] = .int64(Int64(clamping: expiry.timeIntervalSince1970))
        }
        if let start = registration.notBefore {
            fields["not-before"] = .int64(Int64(clamping: start.timeIntervalSince1970))
        }
        fields["allowed"] = .bool(scheduler.isAllowed(registration.key.appID))
        if let progress = scheduler.progress(registration.key) {
            fields["progress"] = .structure([.uint64(progress.done), .uint64(progress.total), .string(progress.text)])
        }
        if let transfer = scheduler.transfer(registration.key) {
            fields["transfer"] = .structure([
                .uint64(transfer.sent), .uint64(transfer.received), .uint64(transfer.expected), .double(transfer.rate),
            ])
        }
        return [.vardict(fields)]
    }

    private func trigger(_ call: DBusMethodCall, _ answer: @escaping Answer) throws {
        let key = try Arguments(call).key(.oneOff)
        try allow(call, appID: key.appID)
        scheduler.trigger(appID: key.appID, tag: key.tag) { error in
            answer(error.map { .failure($0) } ?? .success([]))
        }
    }

    /// ListApps() → a{sa{sv}}: every app with registrations or history, as a settings panel shows
    /// it; a sandboxed caller gets its own app only (or nothing).
    private func listApps(_ call: DBusMethodCall) throws -> [Value] {
        let caller = try access.caller(call.sender)
        let apps: [String: AppSummary]
        if caller.isSandboxed {
            let own = try SandboxPolicy.ownAppID(of: caller)
            apps = scheduler.appSummary(own).map { [own: $0] } ?? [:]
        } else {
            apps = scheduler.appSummaries()
        }
        let entries = apps.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map { app, summary in
            Value.DictEntry(key: .string(app), value: Self.fields(of: summary))
        }
        return [.dictionary(keySignature: "s", valueSignature: "a{sv}", entries)]
    }

    /// GetRepair() → a{sv}: the repair of a damaged database at the start, in full for an
    /// unconfined caller; a sandboxed caller learns only the counts and its own app's losses
    /// (no other app's id, no path), and one without an app id nothing.
    private func getRepair(_ call: DBusMethodCall) throws -> [Value] {
        let caller = try access.caller(call.sender)
        let own = caller.isSandboxed ? try SandboxPolicy.ownAppID(of: caller) : nil
        return [.vardict(StoreRepairReport.details(repair, onlyApp: own))]
    }

    static func fields(of summary: AppSummary) -> Value {
        .vardict([
            "registrations": .uint32(summary.registrations),
            "waiting": .uint32(summary.waiting),
            "running": .uint32(summary.running),
            "allowed": .bool(summary.allowed),
            "last-sync": .int64(summary.lastSync.map { Int64(clamping: $0.timeIntervalSince1970) } ?? 0),
            "last-outcome": .string(summary.lastOutcome),
            "bytes-sent": .uint64(summary.bytesSent),
            "bytes-received": .uint64(summary.bytesReceived),
        ])
    }

    /// Subscribe(s app_id): this connection hears SyncStarted/SyncFinished of `app_id`, or of
    /// every app for "" (unsandboxed callers only), until it leaves the bus.
    private func subscribeCall(_ call: DBusMethodCall) throws -> [Value] {
        let appID = try Arguments(call).string(0)
        if appID.isEmpty {
            let caller = try access.caller(call.sender)
            guard !caller.isSandboxed else {
                throw SyncError(
                    .accessDenied,
                    "A \(caller.kindName) app hears only of its own syncs: subscribe to "
                        + "\(caller.ownAppID ?? "its app id"), not to every app.")
            }
            if !subscribers.addEverything(call.sender) { throw Self.tooManySubscribers }
            return []
        }
        try Identifiers.validateAppID(appID)
        try access.check(call.sender, appID: appID)
        if !subscribers.add(call.sender, appID: appID) { throw Self.tooManySubscribers }
        return []
    }

    private static let tooManySubscribers = SyncError(
        .quotaExceeded,
        "Too many signal subscriptions (\(SignalSubscribers.maxConnections) connections, "
            + "\(SignalSubscribers.maxAppsPerConnection) app ids each); subscribe to every app with \"\" instead.")

    /// The access check of a call naming `appID`. A caller allowed to name it hears of its
    /// syncs from then on (before acting, so a sync that starts at once is heard too); past a
    /// cap only Subscribe says so.
    private func allow(_ call: DBusMethodCall, appID: String) throws(SyncError) {
        try access.check(call.sender, appID: appID)
        subscribers.add(call.sender, appID: appID)
    }

    /// The access check of a decoded Register or RegisterPeriodic: the request comes back with
    /// the caller's confinement, to be recorded with the registration.
    private func allow(
        _ call: DBusMethodCall, _ request: RegistrationRequest
    ) throws(SyncError) -> RegistrationRequest {
        let checked = try access.check(call.sender, request: request)
        subscribers.add(call.sender, appID: request.key.appID)
        return checked
    }

    // MARK: - Signals and properties

    func syncStarted(_ event: SyncEvent) {
        logger.info(
            "\(event.key): attempt \(event.attempt)\(event.lastChance ? " (last chance)" : "") with \(event.handler)",
            metadata: event.key.logMetadata)
        heldSignals.append { [unowned self] in
            send(
                "SyncStarted", about: event.key.appID,
                [.string(event.key.appID), .string(event.key.tag), .uint32(event.attempt), .bool(event.lastChance)])
        }
    }

    func syncFinished(_ key: RegistrationKey, outcome: SyncOutcome, detail: String) {
        logger.info("\(key): \(outcome.rawValue)\(detail.isEmpty ? "" : ": \(detail)")", metadata: key.logMetadata)
        heldSignals.append { [unowned self] in
            send(
                "SyncFinished", about: key.appID,
                [.string(key.appID), .string(key.tag), .string(outcome.rawValue), .string(detail)])
        }
    }

    /// Unicast to each subscriber of `appID` (SignalSubscribers), never broadcast.
    private func send(_ name: String, about appID: String, _ arguments: [Value]) {
        for destination in subscribers.recipients(of: appID) {
            connection.emitSignal(
                path: Self.objectPath, interface: Self.interface, name: name, arguments: arguments,
                destination: destination)
        }
    }

    /// Sends the sync signals held so far, in order, once the outcomes written before them are in
    /// the file: a SyncFinished(succeeded) a client saw is never followed by the same sync again
    /// after a kill -9 (the crash torture checks this). The store writes the outcomes of one loop
    /// iteration in one transaction, then calls back here with the signals of that iteration.
    func sendHeldSignals(afterOutcomesAreWritten flush: (@escaping () -> Void) -> Void) {
        guard !heldSignals.isEmpty else { return flush {} }
        let id = nextReleaseID
        nextReleaseID += 1
        releasing.append((id, heldSignals, false))
        heldSignals = []
        flush { [unowned self] in
            if let index = releasing.firstIndex(where: { $0.id == id }) { releasing[index].ready = true }
            while let first = releasing.first, first.ready {
                releasing.removeFirst()
                for send in first.signals { send() }
            }
        }
    }

    func syncProgress(_ key: RegistrationKey, _ progress: SyncProgress) {
        send(
            "SyncProgress", about: key.appID,
            [
                .string(key.appID), .string(key.tag), .uint64(progress.done), .uint64(progress.total),
                .string(progress.text),
            ])
    }

    func syncTransfer(_ key: RegistrationKey, _ transfer: TransferProgress) {
        send(
            "SyncTransfer", about: key.appID,
            [
                .string(key.appID), .string(key.tag), .uint64(transfer.sent), .uint64(transfer.received),
                .uint64(transfer.expected), .double(transfer.rate),
            ])
    }

    func storageFailed(_ error: SyncError) {
        logger.error("could not record a sync's outcome: \(error.message)")
    }

    /// Tells the bus about Online/Metered/OnBattery/PowerSaver when the scheduler's view of the
    /// network or the power supply changed.
    func networkChanged() {
        let now = scheduler.network
        var changed: [String] = []
        if now.online != announcedNetwork.online { changed.append("Online") }
        if now.metered != announcedNetwork.metered { changed.append("Metered") }
        announcedNetwork = now
        let power = scheduler.power
        if power.onBattery != announcedPower.onBattery { changed.append("OnBattery") }
        if power.powerSaver != announcedPower.powerSaver { changed.append("PowerSaver") }
        announcedPower = power
        if !changed.isEmpty { object.propertiesChanged(interface: Self.interface, names: changed) }
    }

    /// Tells the bus that `Handlers` changed (plugins added or removed without a restart).
    func handlersChanged() {
        object.propertiesChanged(interface: Self.interface, names: ["Handlers"])
    }

    // MARK: - The bus surface

    private struct Method: Sendable {
        enum Body: Sendable {
            /// Answered before the handler returns (reads).
            case now(@Sendable (ManagerService) -> (DBusMethodCall) throws -> [Value])
            /// Answered once the change is durable (group commit: the loop serves others meanwhile).
            case afterCommit(@Sendable (ManagerService) -> (DBusMethodCall, @escaping Answer) throws -> Void)
        }
        var name: String
        var signature: String
        var body: Body
    }

    private static let methods: [Method] = [
        Method(name: "Register", signature: "sssa{sv}", body: .afterCommit { $0.register }),
        Method(name: "GetTags", signature: "s", body: .now { $0.tags(.oneOff) }),
        Method(name: "Unregister", signature: "ss", body: .afterCommit { $0.unregister(.oneOff) }),
        Method(name: "GetRegistration", signature: "ss", body: .now { $0.getRegistration }),
        Method(name: "RegisterPeriodic", signature: "sssta{sv}", body: .afterCommit { $0.registerPeriodic }),
        Method(name: "GetPeriodicTags", signature: "s", body: .now { $0.tags(.periodic) }),
        Method(name: "UnregisterPeriodic", signature: "ss", body: .afterCommit { $0.unregister(.periodic) }),
        Method(name: "Trigger", signature: "ss", body: .afterCommit { $0.trigger }),
        Method(name: "Subscribe", signature: "s", body: .now { $0.subscribeCall }),
        Method(name: "ListApps", signature: "", body: .now { $0.listApps }),
        Method(name: "GetRepair", signature: "", body: .now { $0.getRepair }),
    ]

    private struct Property: Sendable {
        var name: String
        var signature: String
        var get: @Sendable (ManagerService) -> Value
    }

    private static let properties: [Property] = [
        Property(name: "Online", signature: "b", get: { .bool($0.scheduler.network.online) }),
        Property(name: "Metered", signature: "b", get: { .bool($0.scheduler.network.metered) }),
        Property(name: "OnBattery", signature: "b", get: { .bool($0.scheduler.power.onBattery) }),
        Property(name: "PowerSaver", signature: "b", get: { .bool($0.scheduler.power.powerSaver) }),
        Property(
            name: "Handlers", signature: "as",
            get: {
                .array(elementSignature: "s", $0.scheduler.handlers.keys.sorted().map(Value.string))
            }),
        Property(name: "Repair", signature: "a{sv}", get: { .vardict(StoreRepairReport.property($0.repair)) }),
        Property(name: "Version", signature: "u", get: { _ in .uint32(interfaceVersion) }),
    ]
}

/// Typed access to a call's arguments. DBusKit has already checked the signature, so a
/// mismatch here is a bug in the table above, reported as InvalidArgs rather than a crash.
private struct Arguments {
    let call: DBusMethodCall
    init(_ call: DBusMethodCall) { self.call = call }

    private func argument(_ index: Int) throws -> Value {
        guard index < call.arguments.count else { throw mismatch(index) }
        return call.arguments[index]
    }

    private func mismatch(_ index: Int) -> SyncError {
        .invalidArgument(
            "\(call.member) got arguments of signature '\(call.signature)'; argument \(index + 1) is not what it expects."
        )
    }

    func string(_ index: Int) throws -> String {
        guard case .string(let value) = try argument(index) else { throw mismatch(index) }
        return value
    }

    func uint64(_ index: Int) throws -> UInt64 {
        guard case .uint64(let value) = try argument(index) else { throw mismatch(index) }
        return value
    }

    /// An `a{sv}` as handler options; a key given twice keeps its last value.
    func options(_ index: Int) throws -> [String: Value] {
        guard case .dictionary(_, _, let entries) = try argument(index) else { throw mismatch(index) }
        var options: [String: Value] = [:]
        for entry in entries {
            guard case .string(let name) = entry.key else { throw mismatch(index) }
            guard !name.isEmpty else { throw SyncError.invalidArgument("An option has an empty name.") }
            let value = if case .variant(let inner) = entry.value { inner } else { entry.value }
            options[name] = value
        }
        return options
    }

    /// Arguments 0 and 1 as a validated (app id, tag) key.
    func key(_ kind: RegistrationKind) throws -> RegistrationKey {
        let appID = try string(0)
        let tag = try string(1)
        try Identifiers.validateAppID(appID)
        try Identifiers.validateTag(tag)
        return RegistrationKey(appID: appID, tag: tag, kind: kind)
    }
}

extension FixedWidthInteger {
    /// Whole seconds, rounded up and saturated: far-future times from huge intervals or retry
    /// hints must not crash the conversion.
    fileprivate init(clamping seconds: Double) {
        if seconds.isNaN {
            self = 0
        } else if seconds >= Double(Self.max) {
            self = .max
        } else if seconds <= Double(Self.min) {
            self = .min
        } else {
            self.init(seconds.rounded(.up))
        }
    }
}
