// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import CLibNM
import Foundation
import Synchronization

/// What NetworkManager says, as libnm's NMClient sees it.
struct NetworkManagerSnapshot: Sendable, Equatable {
    /// NetworkManager owns its bus name.
    var running: Bool
    /// An `NMState` value; only `NM_STATE_CONNECTED_GLOBAL` is online.
    var state: UInt32
    /// An `NMMetered` value.
    var metered: UInt32

    /// Captive portals, site-only and local-only connections are not online. Metered counts
    /// only while online.
    var status: NetworkStatus {
        let online = running && state == NM_STATE_CONNECTED_GLOBAL.rawValue
        let metered = metered == NM_METERED_YES.rawValue || metered == NM_METERED_GUESS_YES.rawValue
        return NetworkStatus(online: online, metered: online && metered)
    }
}

/// What the libnm thread reports.
enum NetworkManagerEvent: Sendable, Equatable {
    case snapshot(NetworkManagerSnapshot)
    /// NMClient could not be created (no system bus at all); nothing more will come.
    case failed(String)
}

/// Runs an NMClient on a thread of its own. libnm binds a client to the thread-default
/// GMainContext it was created under and only makes progress while that context is iterated,
/// so the thread pushes its own context, creates the client there and iterates it until
/// `stop()`. Every change of `state`, `metered` or `nm-running` is reported to `deliver`
/// (on this thread; the caller hands it on to its MainLoop).
final class NetworkManagerClientThread: Sendable {
    private let context: ContextBox
    private let stopRequested = Atomic<Bool>(false)
    private let deliver: @Sendable (NetworkManagerEvent) -> Void

    init(deliver: @escaping @Sendable (NetworkManagerEvent) -> Void) {
        self.context = ContextBox(g_main_context_new())
        self.deliver = deliver
    }

    deinit { g_main_context_unref(context.pointer) }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "bgsync-libnm"
        thread.start()
    }

    /// Ends the thread soon (it drops its client first). Safe from any thread.
    func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        g_main_context_wakeup(context.pointer)
    }

    private func run() {
        let context = context.pointer
        g_main_context_push_thread_default(context)
        defer { g_main_context_pop_thread_default(context) }

        var error: UnsafeMutablePointer<GError>?
        guard let client = nm_client_new(nil, &error) else {
            let reason = error.map { String(cString: $0.pointee.message) } ?? "unknown error"
            g_clear_error(&error)
            deliver(.failed(reason))
            return
        }
        let observer = Unmanaged.passRetained(ClientObserver(client: client, deliver: deliver))
        let userData = observer.toOpaque()
        let handler: BGSyncNotifyHandler = { _, _, userData in
            guard let userData else { return }
            Unmanaged<ClientObserver>.fromOpaque(userData).takeUnretainedValue().report()
        }
        let instance = UnsafeMutableRawPointer(client)
        let handlerIDs = [NM_CLIENT_STATE, NM_CLIENT_METERED, NM_CLIENT_NM_RUNNING].map { property in
            bgsync_connect_notify(instance, "notify::\(property)", handler, userData)
        }
        observer.takeUnretainedValue().report()

        while !stopRequested.load(ordering: .sequentiallyConsistent) {
            g_main_context_iteration(context, 1)
        }

        for id in handlerIDs { g_signal_handler_disconnect(instance, id) }
        observer.release()
        g_object_unref(instance)
        // Let libnm finish tearing down its D-Bus subscriptions on this context.
        while g_main_context_iteration(context, 0) != 0 {}
    }
}

/// Reads the client after each notification and reports only real changes.
private final class ClientObserver {
    let client: OpaquePointer
    let deliver: @Sendable (NetworkManagerEvent) -> Void
    var last: NetworkManagerSnapshot?

    init(client: OpaquePointer, deliver: @escaping @Sendable (NetworkManagerEvent) -> Void) {
        self.client = client
        self.deliver = deliver
    }

    func report() {
        let snapshot = NetworkManagerSnapshot(
            running: nm_client_get_nm_running(client) != 0,
            state: nm_client_get_state(client).rawValue,
            metered: nm_client_get_metered(client).rawValue)
        guard snapshot != last else { return }
        last = snapshot
        deliver(.snapshot(snapshot))
    }
}

/// A GMainContext pointer shared between the creating thread and the libnm thread; GLib
/// allows `g_main_context_wakeup` from any thread.
private final class ContextBox: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}
