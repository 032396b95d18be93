// SPDX-License-Identifier: Apache-2.0
import CCurl
import CCurlGlue
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// HTTP for handlers, on libcurl. One exchange at a time per calling thread, blocking it (a
/// handler runs in a worker of its own, one event at a time): `send` drives a curl multi handle
/// with `curl_multi_poll`, waiting on the request's `cancelFD` beside the sockets so that a stop
/// ends a transfer at once, and asking `timeLeft` again as it goes.
///
/// Bodies stream: a `.file` body is read with pread as libcurl asks for it and a `.file` sink
/// written as bytes arrive, so nothing held grows with a file's size.
///
/// Connections are kept: the client keeps its curl handles (each multi handle holds the
/// connection cache, TLS sessions and DNS answers) for the life of the process and reuses them for
/// the next request, of this event or a later one. `HTTPClient.shared` is the one a worker uses;
/// a handler never needs another. HTTP/2 is used where the server offers it over TLS (ALPN);
/// certificates are verified against the system's store (libcurl's default, never turned off).
///
/// Proxies: libcurl reads `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` from the
/// environment itself; when none of them is set, the desktop's settings are asked through
/// libproxy (`ProxySettings`).
public final class HTTPClient: Sendable {
    /// The client of this process.
    public static let shared = HTTPClient()

    /// How often a running exchange looks at `cancelled` and `timeLeft` at the least.
    public static let pollInterval = 0.1
    /// At most this many bytes of response headers per response (a hostile server cannot make a
    /// handler hold more).
    public static let maxHeaderBytes = 64 * 1024
    static let userAgent = "bgsync/1 (+https://github.com/bgsync)"

    /// Idle engines, one per thread that sent at the same time (in a worker: one).
    private let idle = Mutex<[Engine]>([])

    public init() { _ = Self.globalInit }

    /// libcurl's global set-up, once, before any handle (thread-safe through Swift's lazy globals).
    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// Sends `request` and waits for the whole response (or the failure).
    public func send(_ request: HTTPRequest) -> Result<HTTPResponse, HTTPFailure> {
        let engine = idle.withLock { $0.popLast() } ?? Engine()
        defer { idle.withLock { $0.append(engine) } }
        return engine.send(request)
    }
}

/// One easy handle in one multi handle, reused for every exchange.
private final class Engine: @unchecked Sendable {
    let multi: UnsafeMutableRawPointer
    let easy: UnsafeMutableRawPointer
    /// libcurl's own words for the last error (CURLOPT_ERRORBUFFER), kept for the engine's life.
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    /// The sockets of this engine's connections, for what is sent but not yet acknowledged.
    let sockets = ccurl_sockets_new()

    init() {
        multi = curl_multi_init()
        easy = curl_easy_init()
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    func send(_ request: HTTPRequest) -> Result<HTTPResponse, HTTPFailure> {
        guard HTTPURL.check(request.url) != nil else {
            return .failure(HTTPFailure(code: .invalidURL, message: "not an http or https URL: \(request.url)"))
        }
        let headerList: UnsafeMutablePointer<curl_slist>?
        switch Self.headerList(request.headers, body: request.body) {
        case .failure(let failure): return .failure(failure)
        case .success(let list): headerList = list
        }
        defer { curl_slist_free_all(headerList) }

        let transfer = Transfer(request, sockets: sockets)
        let box = Unmanaged.passRetained(transfer)
        defer { box.release() }
        configure(request, transfer: box.toOpaque(), headers: headerList)

        _ = curl_multi_add_handle(multi, easy)
        defer { _ = curl_multi_remove_handle(multi, easy) }
        var running: Int32 = 1
        var result: CURLcode?
        while true {
            _ = curl_multi_perform(multi, &running)
            var done: UnsafeMutableRawPointer?
            var code = CURLE_OK
            if ccurl_multi_next_done(multi, &done, &code) == 0 {
                result = code
                break
            }
            if running == 0 { break }
            if transfer.isCancelled() {
                return .failure(transfer.failure(.cancelled, "stopped: the agent asked the event to stop"))
            }
            let left = request.timeLeft()
            guard left > 0 else {
                return .failure(transfer.failure(.timedOut, "no response in time"))
            }
            let wait = Int32((min(left, HTTPClient.pollInterval) * 1000).rounded(.up))
            var extra = curl_waitfd(fd: request.cancelFD, events: Int16(CURL_WAIT_POLLIN), revents: 0)
            _ = curl_multi_poll(multi, &extra, request.cancelFD >= 0 ? 1 : 0, max(1, wait), nil)
            if request.cancelFD >= 0, extra.revents & Int16(CURL_WAIT_POLLIN) != 0 {
                return .failure(transfer.failure(.cancelled, "stopped: the agent asked the event to stop"))
            }
            transfer.reportProgress()
        }
        return finish(result ?? CURLE_OK, transfer: transfer)
    }

    /// Everything about the exchange, set afresh each time (curl_easy_reset keeps the connection
    /// cache, which lives in the multi handle, and the DNS cache).
    private func configure(
        _ request: HTTPRequest, transfer: UnsafeMutableRawPointer, headers: UnsafeMutablePointer<curl_slist>?
    ) {
        curl_easy_reset(easy)
        errorBuffer[0] = 0
        _ = ccurl_easy_set_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        _ = ccurl_sockets_follow(easy, sockets)
        _ = ccurl_easy_set_string(easy, CURLOPT_URL, request.url)
        _ = ccurl_easy_set_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = ccurl_easy_set_string(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        _ = ccurl_easy_set_long(easy, CURLOPT_FOLLOWLOCATION, request.maxRedirects > 0 ? 1 : 0)
        _ = ccurl_easy_set_long(easy, CURLOPT_MAXREDIRS, max(0, request.maxRedirects))
        _ = ccurl_easy_set_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        _ = ccurl_easy_set_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_easy_set_string(easy, CURLOPT_USERAGENT, HTTPClient.userAgent)
        // No decompression of bodies asked for by default: a body goes to its sink as sent.
        let connect = max(1, min(request.timeLeft(), 30))
        _ = ccurl_easy_set_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(connect * 1000))
        if let proxy = ProxySettings.shared.proxy(for: request.url) {
            _ = ccurl_easy_set_string(easy, CURLOPT_PROXY, proxy)
        }
        // An https URL through an http proxy starts with CONNECT; without this libcurl passes the
        // proxy's reply ("200 Connection established") to the header callback as a response of
        // its own, and onResponseHead would take it for the server's 200.
        _ = ccurl_easy_set_long(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)

        _ = ccurl_easy_set_pointer(easy, CURLOPT_READDATA, transfer)
        _ = ccurl_easy_set_pointer(easy, CURLOPT_SEEKDATA, transfer)
        _ = ccurl_easy_set_pointer(easy, CURLOPT_WRITEDATA, transfer)
        _ = ccurl_easy_set_pointer(easy, CURLOPT_HEADERDATA, transfer)
        _ = ccurl_easy_set_pointer(easy, CURLOPT_XFERINFODATA, transfer)
        _ = ccurl_easy_set_read_function(easy, Transfer.readCallback)
        _ = ccurl_easy_set_seek_function(easy, Transfer.seekCallback)
        _ = ccurl_easy_set_write_function(easy, Transfer.writeCallback)
        _ = ccurl_easy_set_header_function(easy, Transfer.headerCallback)
        _ = ccurl_easy_set_xferinfo_function(easy, Transfer.progressCallback)
        _ = ccurl_easy_set_long(easy, CURLOPT_NOPROGRESS, 0)

        let method = request.method.uppercased()
        switch (method, request.body.length) {
        case ("HEAD", _):
            _ = ccurl_easy_set_long(easy, CURLOPT_NOBODY, 1)
        case ("GET", nil):
            _ = ccurl_easy_set_long(easy, CURLOPT_HTTPGET, 1)
        case ("POST", let length):
            _ = ccurl_easy_set_long(easy, CURLOPT_POST, 1)
            _ = ccurl_easy_set_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length ?? 0))
        case (_, let length?):
            _ = ccurl_easy_set_long(easy, CURLOPT_UPLOAD, 1)
            _ = ccurl_easy_set_off(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(length))
            if method != "PUT" { _ = ccurl_easy_set_string(easy, CURLOPT_CUSTOMREQUEST, method) }
        case (_, nil):
            _ = ccurl_easy_set_string(easy, CURLOPT_CUSTOMREQUEST, method)
        }
        // After a 301/302/303 a POST stays a POST only for 307/308, as browsers do.
        _ = ccurl_easy_set_slist(easy, CURLOPT_HTTPHEADER, headers)
    }

    /// The caller's fields as libcurl's list, checked: a CR or LF would let a value start a
    /// header of its own. "Expect:" turns off the 100-continue wait libcurl adds for big bodies
    /// (a second per request on servers that do not answer it).
    static func headerList(
        _ fields: [(name: String, value: String)], body: HTTPBody
    ) -> Result<UnsafeMutablePointer<curl_slist>?, HTTPFailure> {
        var kept: [(name: String, value: String)] = []
        for field in fields {
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenByte) else {
                return .failure(HTTPFailure(code: .invalidRequest, message: "'\(field.name)' is not a header name"))
            }
            guard !field.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                return .failure(
                    HTTPFailure(
                        code: .invalidRequest, message: "the value of header '\(field.name)' holds a line break"))
            }
            let lower = field.name.lowercased()
            kept.removeAll { $0.name.lowercased() == lower }
            kept.append(field)
        }
        var list: UnsafeMutablePointer<curl_slist>?
        if body.length != nil, !kept.contains(where: { $0.name.lowercased() == "expect" }) {
            list = curl_slist_append(list, "Expect:")
        }
        for field in kept {
            let value = field.value.trimmingASCIISpaces
            // "Name:" alone would remove a header libcurl adds; "Name;" sends it empty.
            list = curl_slist_append(list, value.isEmpty ? field.name + ";" : field.name + ": " + value)
        }
        return .success(list)
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    private func finish(_ code: CURLcode, transfer: Transfer) -> Result<HTTPResponse, HTTPFailure> {
        if let failure = transfer.callbackFailure { return .failure(failure) }
        guard code == CURLE_OK else { return .failure(transfer.failure(code, detail: errorText())) }
        var status = 0
        _ = ccurl_easy_get_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return .success(
            HTTPResponse(
                status: status, headers: transfer.headers, body: transfer.body, bytesSent: transfer.sent,
                bytesReceived: transfer.received))
    }

    private func errorText() -> String { String(cString: errorBuffer) }
}

/// The state of one exchange, reached from libcurl's callbacks through their user pointer.
private final class Transfer {
    let request: HTTPRequest
    let sockets: OpaquePointer?
    var position: Int64 = 0
    var sent: UInt64 = 0
    var received: UInt64 = 0
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    var headerBytes = 0
    var status = 0
    var lastProgress = HTTPProgress()
    /// What libcurl last said it moved.
    var curlProgress = HTTPProgress()
    /// Set by a callback that ended the exchange for a reason of ours.
    var callbackFailure: HTTPFailure?

    init(_ request: HTTPRequest, sockets: OpaquePointer?) {
        self.request = request
        self.sockets = sockets
    }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> Transfer {
        Unmanaged<Transfer>.fromOpaque(pointer!).takeUnretainedValue()
    }

    func isCancelled() -> Bool { request.cancelled() }

    func failure(_ code: HTTPFailure.Code, _ message: String) -> HTTPFailure {
        var failure = HTTPFailure(code: code, message: message)
        failure.bytesSent = sent
        failure.bytesReceived = received
        return failure
    }

    func fail(_ code: HTTPFailure.Code, _ message: String) {
        if callbackFailure == nil { callbackFailure = failure(code, message) }
    }

    /// libcurl's result as a failure a person can act on.
    func failure(_ code: CURLcode, detail: String) -> HTTPFailure {
        let said = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_OPERATION_TIMEDOUT: return failure(.timedOut, "timed out")
        case CURLE_COULDNT_RESOLVE_HOST: return failure(.network, "cannot resolve the server's name")
        case CURLE_COULDNT_RESOLVE_PROXY: return failure(.network, "cannot resolve the proxy's name (\(said))")
        case CURLE_COULDNT_CONNECT: return failure(.network, "cannot connect to the server (\(said))")
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: return failure(.invalidURL, said)
        case CURLE_TOO_MANY_REDIRECTS: return failure(.network, "too many redirects")
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CONNECT_ERROR:
            return failure(.tls, "TLS: \(said)")
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
            return failure(.network, "the connection was dropped (\(said))")
        case CURLE_ABORTED_BY_CALLBACK: return failure(.cancelled, "stopped: the agent asked the event to stop")
        default: return failure(.network, said)
        }
    }

    // MARK: - Callbacks (C function pointers: no captures, the transfer comes as user data)

    static let readCallback: curl_read_callback = { buffer, size, count, user in
        let transfer = Transfer.from(user)
        guard let buffer else { return Int(CURL_READFUNC_ABORT) }
        return transfer.read(into: buffer, capacity: size * count)
    }

    func read(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        switch request.body {
        case .none:
            return 0
        case .bytes(let bytes):
            let start = Int(position)
            let count = min(capacity, bytes.count - start)
            guard count > 0 else { return 0 }
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + start, byteCount: count)
            }
            position += Int64(count)
            sent += UInt64(count)
            return count
        case .file(let fd, let offset, let length):
            let wanted = Int(min(Int64(capacity), length - position))
            guard wanted > 0 else { return 0 }
            while true {
                let got = pread(fd, buffer, wanted, off_t(offset + position))
                if got < 0 && errno == EINTR { continue }
                if got < 0 {
                    fail(.localFile, "cannot read the body: \(String(cString: strerror(errno)))")
                    return Int(CURL_READFUNC_ABORT)
                }
                if got == 0 {
                    // The file shrank since its length was taken: never send a short body.
                    fail(.localFile, "the body file is shorter than announced (changed while being sent)")
                    return Int(CURL_READFUNC_ABORT)
                }
                position += Int64(got)
                sent += UInt64(got)
                return got
            }
        }
    }

    /// libcurl rewinds the body to send it again (after a 307/308, or on a fresh connection).
    static let seekCallback: curl_seek_callback = { user, offset, origin in
        let transfer = Transfer.from(user)
        guard origin == SEEK_SET, offset >= 0, Int64(offset) <= (transfer.request.body.length ?? 0) else {
            return Int32(CURL_SEEKFUNC_CANTSEEK)
        }
        transfer.position = Int64(offset)
        return Int32(CURL_SEEKFUNC_OK)
    }

    static let writeCallback: curl_write_callback = { data, size, count, user in
        let transfer = Transfer.from(user)
        let length = size * count
        guard let data else { return 0 }
        return transfer.write(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        received += UInt64(bytes.count)
        switch request.response {
        case .discard:
            return true
        case .buffer(let limit):
            guard body.count + bytes.count <= limit else {
                fail(.responseTooLarge, "the response is larger than \(limit) bytes")
                return false
            }
            body.append(contentsOf: bytes)
            return true
        case .file(let fd, let limit):
            guard received <= limit else {
                fail(.responseTooLarge, "the response is larger than \(limit) bytes")
                return false
            }
            var offset = 0
            while offset < bytes.count {
                let wrote = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if wrote < 0 && errno == EINTR { continue }
                if wrote < 0 {
                    fail(.localFile, "cannot write the response: \(String(cString: strerror(errno)))")
                    return false
                }
                offset += wrote
            }
            return true
        }
    }

    static let headerCallback: curl_write_callback = { data, size, count, user in
        let transfer = Transfer.from(user)
        let length = size * count
        guard let data else { return 0 }
        return transfer.header(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
    }

    /// One header line: a status line starts a response, a blank line ends its header.
    func header(_ line: UnsafeRawBufferPointer) -> Bool {
        headerBytes += line.count
        guard headerBytes <= HTTPClient.maxHeaderBytes else {
            fail(.network, "the server sent more than \(HTTPClient.maxHeaderBytes) bytes of headers")
            return false
        }
        // Bytes, not Characters: "\r\n" is one Character, which hasSuffix("\n") does not match.
        var end = line.count
        while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: line[..<end]), as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            headers = []
            headerBytes = line.count
            let parts = text.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            return true
        }
        if text.isEmpty {
            // 1xx interim responses: only those a caller asked for (100 Continue is libcurl's).
            if (101..<200).contains(status), let onInformational = request.onInformational {
                onInformational(status, headers)
                return true
            }
            if status >= 200, let onHead = request.onResponseHead, !onHead(status, headers) {
                fail(.stopped, "stopped after the response's headers (HTTP \(status))")
                return false
            }
            return true
        }
        guard let colon = text.firstIndex(of: ":") else { return true }
        let name = text[..<colon].lowercased()
        let value = String(text[text.index(after: colon)...]).trimmingASCIISpaces
        headers.append((name, value))
        return true
    }

    static let progressCallback: curl_xferinfo_callback = { user, downloadTotal, downloaded, uploadTotal, uploaded in
        let transfer = Transfer.from(user)
        return transfer.progressed(
            HTTPProgress(
                sent: UInt64(max(0, uploaded)), sendTotal: UInt64(max(0, uploadTotal)),
                received: UInt64(max(0, downloaded)), receiveTotal: UInt64(max(0, downloadTotal))))
    }

    func progressed(_ progress: HTTPProgress) -> Int32 {
        if request.cancelled() { return 1 }
        curlProgress = progress
        reportProgress()
        return 0
    }

    /// Tells `onProgress` what moved, if anything did. Sent is what left the machine: what libcurl
    /// wrote to the socket less what the peer has not acknowledged (SIOCOUTQ). libcurl alone
    /// counts a body as sent once it is in the kernel's send buffer, megabytes ahead of a slow
    /// link, and then nothing moves for as long as the buffer takes to drain: longer than the
    /// stall time on a slow uplink (measured: 6 MiB through a 1 MiB/s relay stalled 2 s and was
    /// cut). Never goes back.
    func reportProgress() {
        guard request.onProgress != nil else { return }
        var progress = curlProgress
        if progress.sent > 0 {
            let queued = ccurl_sockets_unacknowledged(sockets)
            if queued > 0 { progress.sent -= min(progress.sent, UInt64(queued)) }
        }
        progress.sent = max(progress.sent, lastProgress.sent)
        progress.received = max(progress.received, lastProgress.received)
        guard progress != lastProgress else { return }
        lastProgress = progress
        request.onProgress?(progress)
    }
}
