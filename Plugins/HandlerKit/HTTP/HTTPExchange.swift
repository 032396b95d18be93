// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP request for `HTTPClient.send`: what to send, where the response body goes, and the
/// hooks a handler follows it by (response headers, bytes moved, stop, time left).
public struct HTTPRequest {
    /// An upper-case method such as GET, PUT or POST.
    public var method: String
    /// An http or https URL (see `HTTPURL.check`).
    public var url: String
    /// Header fields in order; a later field of the same name (any case) replaces an earlier one.
    /// Names must be tokens and values free of CR, LF and NUL (else `.invalidRequest`).
    public var headers: [(name: String, value: String)]
    public var body: HTTPBody
    public var response: HTTPSink
    /// Redirects followed at most (http and https only, never to another scheme).
    public var maxRedirects: Int
    /// Called once per response as soon as its headers are complete, before its body (also for a
    /// redirect's 3xx): the status and header fields, names lower-cased. Return false to end the
    /// exchange there (`.stopped`), e.g. when a GET answers with something not worth saving.
    public var onResponseHead: ((_ status: Int, _ headers: [(name: String, value: String)]) -> Bool)?
    /// Bytes moved so far in this exchange, as libcurl reports them (not rate-limited here:
    /// `HandlerControl.reportBytes` is).
    public var onProgress: ((HTTPProgress) -> Void)?
    /// Called with each informational (1xx) response's status and headers (names lower-case)
    /// as it arrives, before the final response: a 104 (Upload Resumption Supported) names the
    /// upload's resource while its body is still being sent. Not called for 100 Continue.
    public var onInformational: ((_ status: Int, _ headers: [(name: String, value: String)]) -> Void)?
    /// True once the exchange should stop (looked at least every `HTTPClient.pollInterval`).
    public var cancelled: () -> Bool
    /// A file descriptor that turns readable on a stop (the host's `cancel_fd`), -1 for none:
    /// waited on beside the sockets, so a stop ends a blocked transfer at once.
    public var cancelFD: Int32
    /// Seconds left for the exchange, asked again while it runs: a deadline that progress moves
    /// (`HandlerEvent.timeBudget`) lets a slow transfer that keeps moving run on.
    public var timeLeft: () -> Double

    public init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [],
        body: HTTPBody = .none, response: HTTPSink = .buffer(limit: HTTPSink.defaultLimit), maxRedirects: Int = 10,
        timeLeft: @escaping () -> Double, cancelled: @escaping () -> Bool = { false }, cancelFD: Int32 = -1
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.response = response
        self.maxRedirects = maxRedirects
        self.timeLeft = timeLeft
        self.cancelled = cancelled
        self.cancelFD = cancelFD
    }

    /// A request with a fixed time limit of `seconds` from now.
    public init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: HTTPBody = .none,
        response: HTTPSink = .buffer(limit: HTTPSink.defaultLimit), timeout seconds: Double
    ) {
        let end = HTTPClock.now() + seconds
        self.init(
            method: method, url: url, headers: headers, body: body, response: response,
            timeLeft: { end - HTTPClock.now() })
    }
}

/// What a request sends.
public enum HTTPBody {
    case none
    /// Bytes held in memory (small bodies: a settings document, a test's JSON).
    case bytes([UInt8])
    /// `length` bytes of the open file `fd` from `offset`, read with pread as they are sent (the
    /// fd's own offset is neither used nor moved, and it stays the caller's to close). Memory does
    /// not grow with the file: libcurl asks for at most its upload buffer at a time.
    case file(fd: Int32, offset: Int64 = 0, length: Int64)

    var length: Int64? {
        switch self {
        case .none: nil
        case .bytes(let bytes): Int64(bytes.count)
        case .file(_, _, let length): length
        }
    }
}

/// Where a response body goes.
public enum HTTPSink {
    /// Counted and dropped.
    case discard
    /// Kept in `HTTPResponse.body`, up to `limit` bytes; a longer body ends the exchange
    /// (`.responseTooLarge`).
    case buffer(limit: Int)
    /// Written to the open file `fd` as it arrives (at its current offset; the caller's to close),
    /// at most `limit` bytes: a longer body ends the exchange (`.responseTooLarge`), so a server
    /// cannot fill the disk.
    case file(fd: Int32, limit: UInt64 = .max)

    /// 1 MiB: ample for the answers handlers read (status documents, a settings copy).
    public static let defaultLimit = 1024 * 1024
}

/// Bytes moved in one exchange so far; the totals are 0 while unknown.
public struct HTTPProgress: Equatable, Sendable {
    public var sent: UInt64
    public var sendTotal: UInt64
    public var received: UInt64
    public var receiveTotal: UInt64

    public init(sent: UInt64 = 0, sendTotal: UInt64 = 0, received: UInt64 = 0, receiveTotal: UInt64 = 0) {
        self.sent = sent
        self.sendTotal = sendTotal
        self.received = received
        self.receiveTotal = receiveTotal
    }
}

/// A complete response.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// The final response's header fields in order, names lower-cased.
    public var headers: [(name: String, value: String)]
    /// The body, for `.buffer` (empty for the other sinks).
    public var body: [UInt8]
    /// Body bytes sent and received in the whole exchange (redirects included).
    public var bytesSent: UInt64
    public var bytesReceived: UInt64

    public init(
        status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], bytesSent: UInt64 = 0,
        bytesReceived: UInt64 = 0
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
    }

    /// The last field named `name` (any case).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.last { $0.name == wanted }?.value
    }

    /// The Retry-After header in seconds from `now` (Unix seconds), or nil.
    public func retryAfter(now: Double = HTTPClock.now()) -> Double? {
        header("retry-after").flatMap { RetryAfter.seconds($0, now: now) }
    }

    /// The body as text (invalid UTF-8 replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Why no response came back.
public struct HTTPFailure: Error, Sendable {
    public enum Code: String, Sendable {
        case timedOut = "timed-out"
        case network = "network"
        case invalidURL = "invalid-url"
        /// A header the caller gave cannot be sent (a CR or LF in it, a bad name).
        case invalidRequest = "invalid-request"
        /// The server's certificate did not verify against the system's store.
        case tls = "tls"
        /// The body file could not be read, or the response file written.
        case localFile = "local-file"
        /// A `.buffer` or `.file` body over its limit.
        case responseTooLarge = "response-too-large"
        /// `cancelled` or `cancelFD` said so: the agent asked the event to stop.
        case cancelled = "cancelled"
        /// `onResponseHead` returned false.
        case stopped = "stopped"
    }

    public var code: Code
    public var message: String
    /// Body bytes moved before it failed.
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }
}

/// Wall-clock seconds since the Unix epoch, as the host's deadlines count them.
public enum HTTPClock {
    public static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
