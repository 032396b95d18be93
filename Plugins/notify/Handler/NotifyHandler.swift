// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import Foundation

/// Shows a desktop notification (org.freedesktop.Notifications.Notify on the session bus).
///
/// Options: `summary` (s, required), `body` (s), `icon` (s, an icon name or file URI). The
/// app name is the app's id, and the `desktop-entry` hint names it too, so the desktop can
/// show the app's icon. No notification daemon (or no session bus) is a retry: one may come.
public struct NotifyHandler: SyncHandler {
    public static let name = "notify"
    public static let description = "Shows a desktop notification"
    /// A notification is something the app could show itself.
    public static let sandboxSafe = true

    /// The session bus to use; nil: the one DBUS_SESSION_BUS_ADDRESS names when an event comes.
    private let sessionBusAddress: String?

    public init() {
        sessionBusAddress = nil
    }

    /// A handler that talks to the bus at `sessionBusAddress` (a private bus in tests).
    public init(sessionBusAddress: String) {
        self.sessionBusAddress = sessionBusAddress
    }

    public func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let notification: Notification
        do {
            notification = Notification(
                appName: event.appID,
                icon: try event.options.optionalString("icon") ?? "",
                summary: try event.options.requireString("summary"),
                body: try event.options.optionalString("body") ?? "",
                desktopEntry: event.appID)
        } catch {
            return .failure(error.message)
        }
        switch NotificationSender.send(notification, busAddress: sessionBusAddress, timeout: event.timeBudget) {
        case .success(let id):
            log.debug("notification \(id) shown")
            return .success("notification shown")
        case .failure(let failure):
            switch failure.code {
            case .noBus, .noDaemon, .noReply: return .retry(after: nil, failure.message)
            case .rejected: return .failure(failure.message)
            }
        }
    }
}
