// SPDX-License-Identifier: Apache-2.0
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP exchange, done synchronously: handlers run in their own worker process, one event
/// at a time, so blocking the calling thread on a semaphore is what we want.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: Data

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The Retry-After header in seconds from `now` (delta-seconds or an HTTP-date), or nil.
    public func retryAfter(now: Date = Date()) -> Double? {
        header("Retry-After").flatMap { RetryAfter.seconds($0, now: now) }
    }
}

/// Why no HTTP response came back.
public struct HTTPFailure: Error, Sendable {
    public enum Code: String, Sendable {
        case timedOut = "timed-out"
        case network = "network"
        case invalidURL = "invalid-url"
        /// `cancelled` said so while waiting: the agent asked the event to stop.
        case cancelled = "cancelled"
    }

    public var code: Code
    public var message: String
}

public enum BlockingHTTP {
    /// How often a waiting request looks at its `cancelled` closure: a stop is seen within this,
    /// well inside the agent's grace period (5 s by default).
    public static let cancelPollInterval = 0.05

    /// Sends `request` and waits for the whole response, at most `timeout` seconds. `cancelled`
    /// is looked at every `cancelPollInterval` while waiting; once true the request is dropped.
    public static func send(
        _ request: URLRequest, timeout: Double, cancelled: (() -> Bool)? = nil
    ) -> Result<HTTPResponse, HTTPFailure> {
        let timeout = max(timeout, 0.1)
        var request = request
        request.timeoutInterval = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        let session = URLSession(configuration: configuration)
        defer { session.invalidateAndCancel() }

        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: request) { data, response, error in
            box.set(Self.outcome(data: data, response: response, error: error))
            done.signal()
        }
        task.resume()
        // URLSession's own timeouts should fire first; this is the backstop.
        let backstop = DispatchTime.now() + timeout + 1
        while true {
            let step = cancelled == nil ? backstop : min(backstop, .now() + cancelPollInterval)
            if done.wait(timeout: step) == .success { break }
            if cancelled?() == true {
                task.cancel()
                return .failure(HTTPFailure(code: .cancelled, message: "stopped: the agent asked the event to stop"))
            }
            if DispatchTime.now() >= backstop {
                task.cancel()
                return .failure(HTTPFailure(code: .timedOut, message: "no response within \(Int(timeout.rounded())) s"))
            }
        }
        return box.get() ?? .failure(HTTPFailure(code: .network, message: "no response"))
    }

    private static func outcome(data: Data?, response: URLResponse?, error: Error?) -> Result<HTTPResponse, HTTPFailure>
    {
        if let error {
            let urlError = error as? URLError
            if urlError?.code == .timedOut {
                return .failure(HTTPFailure(code: .timedOut, message: "timed out"))
            }
            if urlError?.code == .unsupportedURL || urlError?.code == .badURL {
                return .failure(HTTPFailure(code: .invalidURL, message: error.localizedDescription))
            }
            return .failure(HTTPFailure(code: .network, message: Self.describe(error)))
        }
        guard let http = response as? HTTPURLResponse else {
            return .failure(HTTPFailure(code: .network, message: "not an HTTP response"))
        }
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String { headers[key.lowercased()] = value }
        }
        return .success(HTTPResponse(status: http.statusCode, headers: headers, body: data ?? Data()))
    }

    private static func describe(_ error: Error) -> String {
        guard let urlError = error as? URLError else { return error.localizedDescription }
        switch urlError.code {
        case .cannotConnectToHost: return "cannot connect to the server"
        case .cannotFindHost: return "cannot resolve the server's name"
        case .networkConnectionLost: return "the connection was dropped"
        case .notConnectedToInternet: return "not connected"
        case .badServerResponse: return "bad response from the server"
        default: return urlError.localizedDescription
        }
    }
}

/// Hands the completion's result to the waiting thread.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<HTTPResponse, HTTPFailure>?
    func set(_ result: Result<HTTPResponse, HTTPFailure>) { lock.withLock { value = result } }
    func get() -> Result<HTTPResponse, HTTPFailure>? { lock.withLock { value } }
}

/// Parses Retry-After: delta-seconds or an HTTP-date (RFC 9110, IMF-fixdate and the two
/// obsolete forms).
public enum RetryAfter {
    public static func seconds(_ text: String, now: Date = Date()) -> Double? {
        let text = text.trimmingCharacters(in: .whitespaces)
        if let seconds = UInt64(text) { return Double(seconds) }
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            // RFC 9110: a two-digit year more than 50 years ahead of now is the latest past one with
            // those digits. Foundation's own window moves with the machine's clock instead (80
            // years back from today), so "94" would have read as 2094 from 2075 on, whatever `now`.
            formatter.twoDigitStartDate = now.addingTimeInterval(-50 * 365.2425 * 86400)
            if let date = formatter.date(from: text) { return max(0, date.timeIntervalSince(now)) }
        }
        return nil
    }
}

/// Checks an option holding a URL: http or https with a host.
public func httpURL(_ text: String) -> URL? {
    guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
        url.host != nil
    else { return nil }
    return url
}
