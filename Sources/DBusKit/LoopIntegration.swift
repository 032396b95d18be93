// SPDX-License-Identifier: Apache-2.0
import CDBus
import MainLoop

#if canImport(Glibc)
import Glibc
#endif

/// Drives one connection from a MainLoop: libdbus's watches become loop watches, its timeouts
/// loop timers, and queued messages are dispatched from a zero-delay timer (never from inside a
/// libdbus callback). libdbus owns this object through the data pointers it was given.
final class LoopIntegration {
    let loop: MainLoop
    let connection: OpaquePointer
    /// Set when the connection closes: pending timers then do nothing.
    var invalidated = false
    private var watches: [OpaquePointer: MainLoop.Watch] = [:]
    private var timeouts: Set<OpaquePointer> = []
    private var timers: [OpaquePointer: MainLoop.Timer] = [:]
    private var dispatchScheduled = false

    init(loop: MainLoop, connection: OpaquePointer) {
        self.loop = loop
        self.connection = connection
    }

    // MARK: Watches

    func add(watch: OpaquePointer) -> Bool {
        let fd = dbus_watch_get_unix_fd(watch)
        guard fd >= 0 else { return false }
        watches[watch] = loop.addWatch(fd: fd, events: Self.events(of: watch)) { [weak self] events in
            self?.handle(watch: watch, events: events)
        }
        return true
    }

    func remove(watch: OpaquePointer) {
        if let loopWatch = watches.removeValue(forKey: watch) { loop.removeWatch(loopWatch) }
    }

    func toggled(watch: OpaquePointer) {
        watches[watch]?.events = Self.events(of: watch)
    }

    private static func events(of watch: OpaquePointer) -> MainLoop.Events {
        guard dbus_watch_get_enabled(watch) != 0 else { return [] }
        let flags = dbus_watch_get_flags(watch)
        var events: MainLoop.Events = []
        if flags & DBUS_WATCH_READABLE.rawValue != 0 { events.insert(.readable) }
        if flags & DBUS_WATCH_WRITABLE.rawValue != 0 { events.insert(.writable) }
        return events
    }

    private func handle(watch: OpaquePointer, events: MainLoop.Events) {
        guard !invalidated, watches[watch] != nil else { return }
        var flags: UInt32 = 0
        if events.contains(.readable) { flags |= DBUS_WATCH_READABLE.rawValue }
        if events.contains(.writable) { flags |= DBUS_WATCH_WRITABLE.rawValue }
        if events.rawValue & Int16(POLLHUP) != 0 { flags |= DBUS_WATCH_HANGUP.rawValue }
        if events.rawValue & Int16(POLLERR) != 0 { flags |= DBUS_WATCH_ERROR.rawValue }
        _ = dbus_watch_handle(watch, flags)
        // libdbus reads at most 2 KiB per call: read what the socket holds now (up to 256 KiB),
        // so that the calls queued behind a flood reach the fair queue (DBusExportedObject) and
        // are served in their turn, not after everything the flooder sent first. libdbus's
        // limit on received bytes still holds (it disables the watch when reached).
        if flags & DBUS_WATCH_READABLE.rawValue != 0 {
            let fd = dbus_watch_get_unix_fd(watch)
            var reads = 1
            var peek: UInt8 = 0
            while reads < 128, !invalidated, watches[watch] != nil, dbus_watch_get_enabled(watch) != 0,
                recv(fd, &peek, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
            {
                _ = dbus_watch_handle(watch, DBUS_WATCH_READABLE.rawValue)
                reads += 1
            }
        }
        scheduleDispatchIfNeeded()
    }

    // MARK: Timeouts

    func add(timeout: OpaquePointer) -> Bool {
        timeouts.insert(timeout)
        arm(timeout)
        return true
    }

    func remove(timeout: OpaquePointer) {
        timeouts.remove(timeout)
        if let timer = timers.removeValue(forKey: timeout) { loop.cancelTimer(timer) }
    }

    func toggled(timeout: OpaquePointer) {
        arm(timeout)
    }

    /// libdbus timeouts repeat until removed or disabled; loop timers are one-shot, so re-arm.
    private func arm(_ timeout: OpaquePointer) {
        if let timer = timers.removeValue(forKey: timeout) { loop.cancelTimer(timer) }
        guard timeouts.contains(timeout), dbus_timeout_get_enabled(timeout) != 0 else { return }
        let seconds = Double(dbus_timeout_get_interval(timeout)) / 1000
        timers[timeout] = loop.addTimer(after: seconds) { [weak self] in
            guard let self, !self.invalidated, self.timeouts.contains(timeout) else { return }
            self.timers[timeout] = nil
            _ = dbus_timeout_handle(timeout)
            if self.timeouts.contains(timeout), self.timers[timeout] == nil { self.arm(timeout) }
            self.scheduleDispatchIfNeeded()
        }
    }

    // MARK: Dispatch

    func scheduleDispatchIfNeeded() {
        guard !invalidated, !dispatchScheduled,
            dbus_connection_get_dispatch_status(connection) == DBUS_DISPATCH_DATA_REMAINS
        else { return }
        scheduleDispatch()
    }

    func scheduleDispatch() {
        guard !invalidated, !dispatchScheduled else { return }
        dispatchScheduled = true
        loop.addTimer(after: 0) { [weak self] in self?.dispatch() }
    }

    private func dispatch() {
        dispatchScheduled = false
        while !invalidated, dbus_connection_dispatch(connection) == DBUS_DISPATCH_DATA_REMAINS {}
    }

    // MARK: Installing the callbacks

    static func install(on connection: OpaquePointer, loop: MainLoop) -> LoopIntegration {
        let integration = LoopIntegration(loop: loop, connection: connection)
        func retained() -> UnsafeMutableRawPointer { Unmanaged.passRetained(integration).toOpaque() }
        let release: DBusFreeFunction = { data in
            if let data { Unmanaged<LoopIntegration>.fromOpaque(data).release() }
        }
        _ = dbus_connection_set_watch_functions(
            connection,
            { watch, data in LoopIntegration.from(data).add(watch: watch!) ? 1 : 0 },
            { watch, data in LoopIntegration.from(data).remove(watch: watch!) },
            { watch, data in LoopIntegration.from(data).toggled(watch: watch!) },
            retained(), release)
        _ = dbus_connection_set_timeout_functions(
            connection,
            { timeout, data in LoopIntegration.from(data).add(timeout: timeout!) ? 1 : 0 },
            { timeout, data in LoopIntegration.from(data).remove(timeout: timeout!) },
            { timeout, data in LoopIntegration.from(data).toggled(timeout: timeout!) },
            retained(), release)
        dbus_connection_set_dispatch_status_function(
            connection,
            { _, status, data in
                if status == DBUS_DISPATCH_DATA_REMAINS { LoopIntegration.from(data).scheduleDispatch() }
            },
            retained(), release)
        integration.scheduleDispatchIfNeeded()
        return integration
    }

    /// Removes the callbacks (libdbus then releases its references).
    static func uninstall(from connection: OpaquePointer) {
        _ = dbus_connection_set_watch_functions(connection, nil, nil, nil, nil, nil)
        _ = dbus_connection_set_timeout_functions(connection, nil, nil, nil, nil, nil)
        dbus_connection_set_dispatch_status_function(connection, nil, nil, nil)
    }

    private static func from(_ data: UnsafeMutableRawPointer?) -> LoopIntegration {
        Unmanaged<LoopIntegration>.fromOpaque(data!).takeUnretainedValue()
    }
}
