// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import DBusKit

import struct Foundation.Date

/// org.bgsync.App (dbus/org.bgsync.App.xml): what the `app` handler sends an app and how it
/// reads the answer. Pure, so every reply an app may send is tested without a bus.
enum AppContract {
    static let interface = "org.bgsync.App"
    static let method = "Sync"
    static let replySignature = "sa{sv}"
    /// Keys the agent puts in `event`; a registration option of the same name is shadowed.
    static let eventKeys: Set<String> = ["attempt", "last-chance", "periodic", "deadline"]
    /// Longest detail kept from an app (bytes): it goes into the log, signals and the database.
    static let maxDetailBytes = 1024

    /// Sync's arguments: the tag, then the event: the registration's options, then the agent's keys.
    static func arguments(for event: SyncEvent) -> [Value] {
        var fields = event.options
        fields["attempt"] = .uint32(event.attempt)
        fields["last-chance"] = .bool(event.lastChance)
        fields["periodic"] = .bool(event.key.kind == .periodic)
        let microseconds = event.deadline.timeIntervalSince1970 * 1_000_000
        let clamped = microseconds.isNaN ? 0 : min(max(microseconds, -9e18), 9e18)
        fields["deadline"] = .int64(Int64(clamped.rounded()))
        return [.string(event.key.tag), .vardict(fields)]
    }

    /// The outcome an app's answer stands for. Anything but the documented shape fails the
    /// attempt, saying what was wrong, so an app author sees the mistake in `SyncFinished`.
    static func outcome(ofReply arguments: [Value], appID: String) -> HandlerOutcome {
        guard arguments.count == 2, case .string(let word) = arguments[0],
            let result = arguments[1].stringKeyedDictionary
        else {
            let signature = arguments.map(\.signature).joined()
            return .failure(detail: "\(appID) answered Sync with (\(signature)), not (sa{sv})")
        }
        var detail = ""
        if let value = result["detail"] {
            guard case .string(let text) = value.unwrappingVariants else {
                let type = value.unwrappingVariants.signature
                return .failure(detail: "\(appID) answered Sync with a 'detail' of type \(type), not s")
            }
            detail = sanitized(text)
        }
        var retryAfter: Double?
        if let value = result["retry-after"] {
            guard case .double(let seconds) = value.unwrappingVariants, seconds.isFinite, seconds >= 0 else {
                return .failure(
                    detail: "\(appID) answered Sync with a 'retry-after' that is not a non-negative number "
                        + "of seconds (d)")
            }
            retryAfter = seconds
        }
        switch word {
        case "success": return .success(detail: detail)
        case "retry": return .retry(after: retryAfter, detail: detail)
        case "failure": return .failure(detail: detail)
        default:
            return .failure(
                detail: "\(appID) answered Sync with the unknown outcome '\(sanitized(word, limit: 64))' "
                    + "(expected success, retry or failure)")
        }
    }

    /// The outcome of an error instead of a reply. `fromBus` tells the bus's NoReply (the app
    /// left without answering) from libdbus's own (the time cap).
    static func outcome(ofError error: DBusError, from sender: String, appID: String, path: String) -> HandlerOutcome {
        let short =
            error.name.hasPrefix("org.freedesktop.DBus.Error.")
            ? String(error.name.dropFirst("org.freedesktop.DBus.Error.".count)) : error.name
        let message = sanitized(error.message, limit: 300)
        switch short {
        case "NoReply" where sender == DBusReply.busName:
            return exited(appID: appID)
        case "NoReply", "Timeout", "TimedOut":
            return .retry(after: nil, detail: "timeout")
        case "ServiceUnknown", "NameHasNoOwner":
            return .retry(after: nil, detail: notActivatable(appID: appID))
        case _ where short.hasPrefix("Spawn."):
            return .retry(after: nil, detail: "D-Bus could not start \(appID) (\(short): \(message))")
        case "UnknownMethod", "UnknownObject", "UnknownInterface":
            return .failure(detail: "\(appID) does not implement \(interface).\(method) at \(path) (\(short))")
        case "InvalidSignature":
            return .failure(detail: "\(appID) answered Sync with a reply of the wrong type: \(message)")
        case "AccessDenied":
            return .failure(detail: "the bus does not let bgsync call \(appID) (\(short): \(message))")
        case "Disconnected", "NoMemory", "LimitsExceeded":
            return .retry(after: nil, detail: "the call to \(appID) could not be made (\(short): \(message))")
        default:
            // The app's own code raised an error: like a handler crash, worth another attempt.
            let name = sanitized(error.name, limit: 255)
            return .retry(after: nil, detail: "\(appID) answered Sync with the error \(name): \(message)")
        }
    }

    static func exited(appID: String) -> HandlerOutcome {
        .retry(after: nil, detail: "exited: \(appID) left the bus before answering Sync")
    }

    static func notActivatable(appID: String) -> String {
        "\(appID) is not running and D-Bus cannot start it: no service file \(appID).service "
            + "(a DBusActivatable app installs one in dbus-1/services)"
    }

    /// Text from an app made safe for logs and signals: control characters escaped, at most
    /// `limit` bytes (cut at a character boundary, marked with an ellipsis).
    static func sanitized(_ text: String, limit: Int = maxDetailBytes) -> String {
        var out = ""
        var bytes = 0
        for scalar in text.unicodeScalars {
            let piece: String
            if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value)
                || scalar == "\u{2028}" || scalar == "\u{2029}"
            {
                piece = "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                piece = String(scalar)
            }
            guard bytes + piece.utf8.count <= limit else {
                out += "…"
                break
            }
            out += piece
            bytes += piece.utf8.count
        }
        return out
    }
}
