// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import BGSyncHandlerKit

/// Drains an outbox: each regular file in `outbox` (top level; not dot-files, `*.tmp`,
/// `*.part`, `*~`, nor `failed/`), oldest first, is sent at once as the body of one request to
/// `url`, streamed from the open file (memory does not grow with its size). Reports files sent
/// as progress and bytes as they move (so a big file that keeps moving is never cut by the stall
/// time), and stops between and during requests when the agent asks it to (a condition was lost).
///
/// Options: `outbox` (s, an absolute directory path), `url` (s, http or https), `method` (s, default POST),
/// `headers` (a{ss}; Content-Type defaults to application/octet-stream), `resumable` (s, `tus` or
/// `ietf`; absent: one streamed request per file).
///
/// With `resumable`, a cut upload continues where the server's offset says on the next attempt
/// (ResumableUpload): what it needs is kept in the handler's state directory, and an attempt
/// that got the server to confirm more bytes than ever before is not counted toward
/// max-attempts (`.retry(advanced:)`).
///
/// A 2xx deletes the file. 408, 429, 5xx or a network error stops the attempt with a retry
/// (honouring Retry-After) and keeps the file and the rest. Any other 4xx moves the file to
/// `outbox/failed/` and carries on. A file is never deleted before the server accepted it.
public struct UploadHandler: SyncHandler {
    public static let name = "upload"
    public static let description = "Sends each file of an outbox directory as an HTTP request, oldest first"
    /// It reads only the directory the app names (opened by the host beneath the app's root)
    /// and talks to the server the app names.
    public static let sandboxSafe = true
    public static let pathOptions = ["outbox"]
    public static let urlOptions = ["url"]

    /// Below this many seconds left, another request is not started.
    static let shortestRequest = 0.5
    /// Scans of the outbox in one event: files replaced while being sent are sent again.
    static let passes = 3

    public init() {}

    public func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let outbox: Outbox
        let url: String
        let method: String
        let headers: [(key: String, value: String)]
        var resumable: ResumableProtocol?
        do {
            let path = try event.options.requirePath("outbox")
            let text = try event.options.requireString("url")
            guard let parsed = HTTPURL.check(text) else {
                return .failure("option 'url' must be an http or https URL with a host, not '\(text)'")
            }
            url = parsed
            method = try event.options.optionalString("method")?.uppercased() ?? "POST"
            guard !method.isEmpty, method.allSatisfy({ $0.isLetter }) else {
                return .failure("option 'method' must be an HTTP method such as POST or PUT, not '\(method)'")
            }
            headers = try event.options.optionalStringPairs("headers")
            if let text = try event.options.optionalString("resumable") {
                guard let chosen = ResumableProtocol(rawValue: text) else {
                    return .failure("option 'resumable' must be 'tus' or 'ietf', not '\(text)'")
                }
                guard method == "POST" else {
                    return .failure(
                        "option 'method' cannot be used with 'resumable' (the protocol chooses the methods)")
                }
                resumable = chosen
            }
            outbox = try Outbox.open(event.files, option: "outbox", path: path)
        } catch let error as OptionError {
            return .failure(error.message)
        } catch let error as OutboxError {
            // Missing, unreadable, or a link where a sandboxed app may have none: not for a retry.
            return .failure(error.message)
        } catch {
            return .failure("\(error)")
        }

        var sent = 0
        var rejected = 0
        var changed = 0
        var bytes: Int64 = 0
        let meter = TransferMeter(control: event.control)
        var fields: [(name: String, value: String)] = [("Content-Type", "application/octet-stream")]
        fields += headers.map { (name: $0.key, value: $0.value) }
        var resumer: ResumableUpload?
        if let resumable {
            let directory: StateDirectory
            do {
                directory = try event.state.open()
            } catch {
                return .failure("cannot keep resumable uploads' state: \(error.message)")
            }
            let store = ResumeStore(directory: directory, app: event.appID, tag: event.tag)
            store.forgetOld(now: HTTPClock.now())
            resumer = ResumableUpload(
                resumable: resumable, endpoint: url, fields: fields, store: store, event: event, log: log, meter: meter)
        }
        // Resumable: an event that finished a file, or got the server to confirm more bytes of
        // one than ever before, moved forward (its retry is not counted).
        var advanced = false
        // A file the app replaced while it was being sent is ready again: look once more (a
        // few times at most), rather than spending an attempt on it.
        for _ in 0..<Self.passes {
            let ready: [Outbox.Item]
            do {
                ready = try outbox.scan()
            } catch {
                // Missing or unreadable outbox: the app's mistake, which a retry will not mend.
                return .failure(error.message)
            }
            let total = UInt64(sent + rejected + ready.count)
            meter.expected = meter.sent + ready.reduce(0) { $0 + UInt64(max(0, $1.size)) }
            changed = 0
            for (index, item) in ready.enumerated() {
                let left = ready.count - index
                if event.control.isCancelled {
                    return .retry(after: nil, "stopped, \(Self.files(sent)) sent, \(Self.files(left)) left")
                }
                let budget = event.timeBudget
                guard budget >= Self.shortestRequest else {
                    return .retry(after: nil, "out of time, \(Self.files(sent)) sent, \(Self.files(left)) left")
                }
                let file: HandlerFile
                let size: Int64
                do {
                    guard let opened = try outbox.open(item) else {
                        log.warning("\(item.name) was replaced after the scan; kept to be sent again")
                        changed += 1
                        continue
                    }
                    (file, size) = opened
                } catch {
                    // Gone (the app took it back), unreadable, or swapped for a link: skip it.
                    log.warning("cannot read \(item.name) in the outbox: \(error.message); skipped")
                    continue
                }
                let outcome: ResumableUpload.Outcome
                if let resumer {
                    guard let info = file.status() else {
                        log.warning("cannot read \(item.name) in the outbox; skipped")
                        continue
                    }
                    outcome = resumer.send(file, name: item.name, identity: FileIdentity(info))
                } else {
                    outcome = send(
                        file, size: size, method: method, url: url, fields: fields, event: event, meter: meter)
                }
                switch outcome {
                case .failure(let message):
                    return .failure(message)
                case .retry(let after, let message, let moved):
                    let detail = "\(message), \(Self.files(sent)) sent, \(Self.files(left)) left"
                    return .retry(after: after, detail, advanced: resumer != nil && (moved || advanced))
                case .sent(let status):
                    advanced = true
                    do {
                        if try !outbox.remove(item) {
                            log.warning("\(item.name) changed while it was being sent; kept to be sent again")
                            changed += 1
                            continue
                        }
                    } catch {
                        return .failure(error.message)
                    }
                    sent += 1
                    bytes += size
                    event.control.progress(
                        done: UInt64(sent + rejected), total: total, "\(Self.files(sent)) sent, \(bytes) bytes")
                    log.debug("sent \(item.name): HTTP \(status)")
                case .rejected(let status):
                    do {
                        let target = try outbox.moveToFailed(item)
                        log.warning("server rejected \(item.name) with HTTP \(status); moved to \(target)")
                    } catch {
                        return .failure(error.message)
                    }
                    rejected += 1
                }
            }
            guard changed > 0 else { break }
        }
        var detail = "sent \(Self.files(sent))"
        if rejected > 0 { detail += ", \(rejected) rejected (moved to \(Outbox.failedDirectory)/)" }
        // Files still named as being written are not this event's: the app registers again once
        // it renames them in (a Register while this runs makes it run once more). A file changed
        // in every pass is retried with back-off rather than stranded.
        if changed > 0 {
            return .retry(
                after: nil, detail + ", \(Self.files(changed)) changed while being sent",
                advanced: resumer != nil && advanced)
        }
        return .success(detail)
    }

    /// Without `resumable`: the file as the body of one streamed request.
    func send(
        _ file: HandlerFile, size: Int64, method: String, url: String, fields: [(name: String, value: String)],
        event: HandlerEvent, meter: TransferMeter
    ) -> ResumableUpload.Outcome {
        var request = HTTPRequest(
            method: method, url: url, headers: fields, body: .file(fd: file.fd, length: size),
            response: .discard, timeLeft: event.budget(), cancelled: { event.control.isCancelled },
            cancelFD: event.control.cancelFD)
        request.onProgress = { meter.moving(sent: $0.sent, received: $0.received) }
        let result = withExtendedLifetime(file) { HTTPClient.shared.send(request) }
        switch result {
        case .failure(let failure) where failure.code == .invalidRequest:
            return .failure("cannot send the request: \(failure.message)")
        case .failure(let failure):
            meter.finished(sent: failure.bytesSent, received: failure.bytesReceived)
            return .retry(after: nil, failure.message, advanced: false)
        case .success(let response):
            meter.finished(sent: response.bytesSent, received: response.bytesReceived)
            if (200..<300).contains(response.status) { return .sent(status: response.status) }
            // 1xx/3xx that were not followed are unexpected: keep the file and try later.
            return ResumableUpload.refused(response)
        }
    }

    /// Statuses worth retrying: the server is busy, slow or broken, not the request.
    static func isTemporary(_ status: Int) -> Bool {
        status == 408 || status == 429 || (500..<600).contains(status)
    }

    static func files(_ count: Int) -> String { count == 1 ? "1 file" : "\(count) files" }
}
