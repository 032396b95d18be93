// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import BGSyncHandlerKit

/// Sends one outbox file with a resumable upload protocol (the option `resumable`), picking up
/// where an earlier attempt was cut: the upload resource and the offsets are kept in the
/// handler's state directory (ResumeStore), and the server's offset (HEAD) is the truth, unless
/// it is one the client never sent (above what it sent, or above the file's size): then the
/// upload starts over, so that no byte is ever skipped.
struct ResumableUpload {
    /// The draft's interop version this client announces (draft-ietf-httpbis-resumable-upload).
    /// Its header names and media type are those since draft -05 (Upload-Complete, Upload-Offset,
    /// application/partial-upload); one constant, to follow the draft as it moves.
    static let ietfInteropVersion = "8"
    static let tusVersion = "1.0.0"
    /// The longest wait for a HEAD that asks how far a cut upload got.
    static let probeTimeout = 10.0
    /// The least a cut request must push past the furthest byte ever sent to count as moving
    /// forward when the server has not confirmed it yet: above libcurl's upload buffer (64 KiB by
    /// default), whose bytes count as sent once read from the file, before they reach the wire.
    static let minimumStep: Int64 = 256 * 1024

    /// How one file ended.
    enum Outcome {
        /// The server has it all; `status` of the last response.
        case sent(status: Int)
        /// The server refused it (a 4xx that is not about the upload's state).
        case rejected(status: Int)
        /// Try again later; `advanced`: the server confirmed more bytes than ever before.
        case retry(after: Double?, String, advanced: Bool)
        /// Cannot go on at all (the state directory is unusable, a bad request).
        case failure(String)
    }

    let resumable: ResumableProtocol
    let endpoint: String
    /// The app's own header fields (option `headers`), sent with every request.
    let fields: [(name: String, value: String)]
    let store: ResumeStore
    let event: HandlerEvent
    let log: HandlerLog
    let meter: TransferMeter

    /// Sends `file` (`name` in the outbox, for messages) whose identity is `identity`.
    func send(_ file: HandlerFile, name: String, identity: FileIdentity) -> Outcome {
        let size = identity.size
        var record = store.load(identity, resumable, endpoint: endpoint)
        var offset: Int64 = 0
        var advanced = false

        if var known = record {
            switch probe(known.location) {
            case .offset(let server, let complete):
                if server > known.sent || server > size || (complete && server != size) {
                    // An offset this client never sent: the server lost track, or lies. Skipping
                    // to it would leave a hole; start over.
                    log.warning(
                        "\(name): the server says it has \(server) bytes of an upload this client sent at most "
                            + "\(min(known.sent, size)) bytes of; starting it over")
                    store.remove(known)
                    record = nil
                } else {
                    offset = server
                    if server > known.confirmed {
                        known.confirmed = server
                        advanced = true
                        try? store.save(known)
                    }
                    record = known
                    if complete || (resumable == .tus && server == size) {
                        // All there already (the last response was lost): nothing left to keep.
                        store.remove(known)
                        return .sent(status: 200)
                    }
                }
            case .gone(let status):
                log.info("\(name): the server no longer knows the upload (HTTP \(status)); starting it over")
                store.remove(known)
                record = nil
            case .unreachable(let after, let message):
                return .retry(after: after, message, advanced: false)
            }
        }

        if record == nil {
            switch resumable {
            case .tus:
                switch create(size: size, identity: identity, name: name) {
                case .success(let created): record = created
                case .failure(let failed): return failed.outcome
                }
            case .ietf:
                return startIETF(file, name: name, identity: identity)
            }
        }
        guard var record else { return .failure("no upload resource") }
        if resumable == .tus && offset == size {
            store.remove(record)  // an empty file: the creation completed it
            return .sent(status: 201)
        }
        return append(file, name: name, record: &record, from: offset, advancedBefore: advanced)
    }

    // MARK: - Requests

    /// The header fields of every request: the app's, then the protocol's (which win).
    func headers(_ own: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var all = fields
        switch resumable {
        case .tus: all.append(("Tus-Resumable", Self.tusVersion))
        case .ietf: all.append(("Upload-Draft-Interop-Version", Self.ietfInteropVersion))
        }
        return all + own
    }

    func request(
        _ method: String, _ url: String, headers own: [(name: String, value: String)], body: HTTPBody = .none,
        timeLeft: (() -> Double)? = nil
    ) -> HTTPRequest {
        var request = HTTPRequest(
            method: method, url: url, headers: headers(own), body: body, response: .discard,
            timeLeft: timeLeft ?? event.budget(), cancelled: { event.control.isCancelled },
            cancelFD: event.control.cancelFD)
        request.onProgress = { meter.moving(sent: $0.sent, received: $0.received) }
        return request
    }

    func finish(_ result: Result<HTTPResponse, HTTPFailure>) {
        switch result {
        case .success(let response): meter.finished(sent: response.bytesSent, received: response.bytesReceived)
        case .failure(let failure): meter.finished(sent: failure.bytesSent, received: failure.bytesReceived)
        }
    }

    enum Probe {
        case offset(Int64, complete: Bool)
        case gone(status: Int)
        case unreachable(after: Double?, String)
    }

    /// HEAD the upload resource: how much of it the server has.
    func probe(_ location: String, quick: Bool = false) -> Probe {
        let budget = event.budget()
        let limit: () -> Double = quick ? { min(Self.probeTimeout, budget()) } : budget
        let result = HTTPClient.shared.send(request("HEAD", location, headers: [], timeLeft: limit))
        finish(result)
        switch result {
        case .failure(let failure):
            return .unreachable(after: nil, "cannot ask how far the upload got: \(failure.message)")
        case .success(let response) where (200..<300).contains(response.status):
            guard let text = response.header("upload-offset"), let server = Self.offset(text) else {
                return .unreachable(after: nil, "HTTP \(response.status) to HEAD without a valid Upload-Offset")
            }
            return .offset(server, complete: response.header("upload-complete") == "?1")
        case .success(let response) where [403, 404, 410].contains(response.status):
            return .gone(status: response.status)
        case .success(let response):
            return .unreachable(
                after: response.retryAfter(), "HTTP \(response.status) when asking how far the upload got")
        }
    }

    /// An Upload-Offset value: digits only (RFC 8941 integer, non-negative), at most 15 of them.
    static func offset(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: " \t")
        guard !trimmed.isEmpty, trimmed.utf8.count <= 15, trimmed.utf8.allSatisfy({ (0x30...0x39).contains($0) })
        else { return nil }
        return Int64(trimmed)
    }

    /// tus creation: POST with Upload-Length; 201 with Location. Upload-Metadata names the file
    /// and its type (`filename`, `filetype`, as tus clients send them; some servers require both).
    func create(size: Int64, identity: FileIdentity, name: String) -> Result<ResumeRecord, CreateFailure> {
        let type = fields.last { $0.name.lowercased() == "content-type" }?.value ?? "application/octet-stream"
        let metadata = "filename \(Self.base64(Array(name.utf8))),filetype \(Self.base64(Array(type.utf8)))"
        let own = [("Upload-Length", String(size)), ("Upload-Metadata", metadata)]
        let result = HTTPClient.shared.send(request("POST", endpoint, headers: own))
        finish(result)
        switch result {
        case .failure(let failure) where failure.code == .invalidRequest:
            return .failure(CreateFailure(.failure("cannot send the request: \(failure.message)")))
        case .failure(let failure):
            return .failure(CreateFailure(.retry(after: nil, failure.message, advanced: false)))
        case .success(let response) where response.status == 201:
            guard let location = response.header("location").flatMap({ Self.location($0, against: endpoint) }) else {
                return .failure(
                    CreateFailure(
                        .retry(after: nil, "the server created the upload without a usable Location", advanced: false)))
            }
            let record = ResumeRecord(
                app: store.app, tag: store.tag, file: identity, resumable: .tus, endpoint: endpoint,
                location: location, sent: 0, confirmed: 0)
            do {
                try store.save(record)
            } catch {
                return .failure(CreateFailure(.failure("cannot keep the upload's state: \(error.message)")))
            }
            return .success(record)
        case .success(let response):
            return .failure(CreateFailure(Self.refused(response)))
        }
    }

    /// RFC 4648 base64, as tus's Upload-Metadata values are.
    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * UInt32($1.offset)) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[Int(value >> (18 - 6 * UInt32(position)) & 0x3F)] : 0x3D)
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    struct CreateFailure: Error {
        var outcome: Outcome
        init(_ outcome: Outcome) { self.outcome = outcome }
    }

    /// A server's Location made absolute; nil if it is not an http(s) URL on one line.
    static func location(_ text: String, against base: String) -> String? {
        guard !text.isEmpty, !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return nil }
        return HTTPURL.resolve(text, against: base)
    }

    /// The response to a request that carried bytes: what to make of a status that is not a success.
    static func refused(_ response: HTTPResponse) -> Outcome {
        if UploadHandler.isTemporary(response.status) {
            return .retry(after: response.retryAfter(), "HTTP \(response.status)", advanced: false)
        }
        if (400..<500).contains(response.status) { return .rejected(status: response.status) }
        return .retry(after: nil, "unexpected HTTP \(response.status)", advanced: false)
    }

    /// PATCH the rest of the file from `offset` to the upload resource.
    func append(
        _ file: HandlerFile, name: String, record: inout ResumeRecord, from offset: Int64, advancedBefore: Bool
    ) -> Outcome {
        let size = record.file.size
        // Written before a byte goes out: a server offset above it was never sent.
        record.sent = max(record.sent, size)
        do {
            try store.save(record)
        } catch {
            return .failure("cannot keep the upload's state: \(error.message)")
        }
        // 100-continue: a server that disagrees with the offset (it stored more of a cut request
        // since the HEAD; or libcurl resends the request once on a reused connection that broke)
        // answers 409 before the body goes out, instead of after the client sent it all again.
        var own: [(name: String, value: String)] = [("Upload-Offset", String(offset)), ("Expect", "100-continue")]
        switch resumable {
        case .tus: own.append(("Content-Type", "application/offset+octet-stream"))
        case .ietf:
            own.append(("Content-Type", "application/partial-upload"))
            own.append(("Upload-Complete", "?1"))
        }
        let patch = request(
            "PATCH", record.location, headers: own, body: .file(fd: file.fd, offset: offset, length: size - offset))
        let result = withExtendedLifetime(file) { HTTPClient.shared.send(patch) }
        finish(result)
        switch result {
        case .failure(let failure) where failure.code == .invalidRequest || failure.code == .localFile:
            return .failure("cannot send \(name): \(failure.message)")
        case .failure(let failure):
            return afterCut(
                record: &record, message: failure.message, advancedBefore: advancedBefore,
                reached: offset + Int64(failure.bytesSent))
        case .success(let response) where (200..<300).contains(response.status):
            if resumable == .tus, let text = response.header("upload-offset"), Self.offset(text) != size {
                return afterCut(
                    record: &record, message: "the server stopped at offset \(text) of \(size)",
                    advancedBefore: advancedBefore)
            }
            store.remove(record)
            return .sent(status: response.status)
        case .success(let response) where response.status == 409:
            // The offsets disagree: the server has stored more (or less) since it was asked. Ask
            // again; the next attempt goes on from what it says.
            return afterCut(
                record: &record, message: "HTTP 409 (offset mismatch) to the upload's PATCH",
                advancedBefore: advancedBefore)
        case .success(let response) where [404, 410].contains(response.status):
            // Gone: the next attempt starts over.
            store.remove(record)
            return .retry(after: nil, "HTTP \(response.status) to the upload's PATCH", advanced: advancedBefore)
        case .success(let response):
            let outcome = Self.refused(response)
            if case .rejected = outcome { store.remove(record) }
            if case .retry(let after, let message, _) = outcome {
                return .retry(after: after, message, advanced: advancedBefore)
            }
            return outcome
        }
    }

    /// After a transfer was cut: ask the server how far it got (briefly: the link may be down),
    /// keep what it confirms, and say whether that is more than ever before.
    func afterCut(record: inout ResumeRecord, message: String, advancedBefore: Bool, reached: Int64 = 0) -> Outcome {
        var advanced = advancedBefore
        if reached >= record.reached + Self.minimumStep {
            record.reached = min(reached, record.file.size)
            try? store.save(record)
            advanced = true
        }
        if !event.control.isCancelled, case .offset(let server, _) = probe(record.location, quick: true) {
            if server > record.sent || server > record.file.size {
                // Bytes this client never sent: the next attempt starts over rather than skip.
                log.warning(
                    "the server says it has \(server) bytes of an upload this client sent at most "
                        + "\(min(record.sent, record.file.size)) bytes of; it will start over")
                store.remove(record)
                return .retry(after: nil, "\(message), the server's offset is past what was sent", advanced: false)
            }
            if server > record.confirmed {
                record.confirmed = server
                try? store.save(record)
                advanced = true
            }
        }
        let got = "\(record.confirmed) of \(record.file.size) bytes confirmed"
        return .retry(after: nil, "\(message), \(got)", advanced: advanced)
    }

    /// The draft's first request: the whole body in one POST with Upload-Complete: ?1. A server
    /// that supports resumption answers 104 first with the upload resource's Location, kept at
    /// once so that a cut from then on resumes; one that does not just answers, as a plain POST.
    func startIETF(_ file: HandlerFile, name: String, identity: FileIdentity) -> Outcome {
        let size = identity.size
        var kept: ResumeRecord?
        var stateFailure: String?
        var post = request(
            "POST", endpoint, headers: [("Upload-Complete", "?1")], body: .file(fd: file.fd, length: size))
        post.onInformational = { status, headers in
            guard status == 104, kept == nil,
                let text = headers.first(where: { $0.name == "location" })?.value,
                let location = Self.location(text, against: endpoint)
            else { return }
            let record = ResumeRecord(
                app: store.app, tag: store.tag, file: identity, resumable: .ietf, endpoint: endpoint,
                location: location, sent: size, confirmed: 0)
            do {
                try store.save(record)
                kept = record
            } catch {
                stateFailure = (error as? FileError)?.message ?? "\(error)"
            }
        }
        // The user's Content-Type (or the default) describes the representation: it stays.
        let result = withExtendedLifetime(file) { HTTPClient.shared.send(post) }
        finish(result)
        if let stateFailure { log.warning("\(name): cannot keep the upload's state (\(stateFailure)); not resumable") }
        switch result {
        case .failure(let failure) where failure.code == .invalidRequest || failure.code == .localFile:
            if let kept { store.remove(kept) }
            return .failure("cannot send \(name): \(failure.message)")
        case .failure(let failure):
            guard var record = kept else { return .retry(after: nil, failure.message, advanced: false) }
            return afterCut(
                record: &record, message: failure.message, advancedBefore: false, reached: Int64(failure.bytesSent))
        case .success(let response):
            if (200..<300).contains(response.status) {
                if let kept { store.remove(kept) }
                return .sent(status: response.status)
            }
            let outcome = Self.refused(response)
            // A busy server that named the upload keeps it: the next attempt resumes it.
            if case .retry = outcome, var record = kept {
                return afterCut(record: &record, message: "HTTP \(response.status)", advancedBefore: false)
            }
            if let kept { store.remove(kept) }
            return outcome
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let skip = Set(set.utf8)
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !skip.contains($0) }),
            let last = bytes.lastIndex(where: { !skip.contains($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
