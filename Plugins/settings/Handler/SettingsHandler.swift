// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import BGSyncHandlerKit

#if canImport(Glibc)
import Glibc
#endif

/// Keeps a settings file in step with a server, never overwriting either side silently.
///
/// Options: `file` (s, an absolute path) and `url` (s, http or https).
///
/// The current content goes up with PUT. Beside the file the handler keeps:
///  - `FILE.etag`: the server's ETag of the last upload. A PUT with it sends `If-Match`; a
///    first upload (no `FILE.etag`) sends `If-None-Match: *`, so it only creates.
///  - `FILE.server` (+ `FILE.server.etag`): on 412 (someone else changed the server copy),
///    the server's copy as fetched with GET. The event fails with detail "conflict".
///
/// To resolve a conflict the app merges, writes the result to FILE, renames
/// `FILE.server.etag` to `FILE.etag`, deletes `FILE.server` and registers again. While
/// `FILE.server` exists, the handler does not upload.
public struct SettingsHandler: SyncHandler {
    public static let name = "settings"
    public static let description = "Uploads a settings file with PUT and If-Match; keeps the server copy on conflict"
    public static let sandboxSafe = true
    public static let pathOptions = ["file"]
    public static let urlOptions = ["url"]

    /// A server copy larger than this is not saved (the event retries): a settings file is small,
    /// and a server must not be able to fill the app's disk.
    static let maxServerCopyBytes: UInt64 = 64 * 1024 * 1024

    public init() {}

    public func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let files: SettingsFiles
        let url: String
        do {
            let path = try event.options.requirePath("file")
            let text = try event.options.requireString("url")
            guard let parsed = HTTPURL.check(text) else {
                return .failure("option 'url' must be an http or https URL with a host, not '\(text)'")
            }
            url = parsed
            // The directory holding the file, opened by the host beneath the app's root: the file
            // and its companions are then names in it, never paths a swapped link could redirect.
            let (directory, name) = try event.files.openParent(option: "file")
            files = SettingsFiles(directory: directory, name: name, path: path)
        } catch let error as OptionError {
            return .failure(error.message)
        } catch let error as FileError {
            return .failure("cannot open the settings file's directory: \(error.message)")
        } catch {
            return .failure("\(error)")
        }
        if files.exists(files.server) {
            return .failure("conflict: resolve \(files.pathOf(files.server)) first")
        }
        // The content goes up from the open file, as it is read: never held whole.
        let content: HandlerFile
        let size: Int64
        do throws(FileError) {
            content = try files.directory.open(files.name, .read)
            guard let info = content.status() else { throw FileError(errno: errno, subject: files.path) }
            size = Int64(info.st_size)
        } catch {
            return .failure("cannot read the settings file: \(error.message)")
        }
        let etag = files.readETag()
        let meter = TransferMeter(control: event.control, expected: UInt64(size))

        var fields: [(name: String, value: String)] = [("Content-Type", "application/octet-stream")]
        fields.append(etag.map { ("If-Match", $0) } ?? ("If-None-Match", "*"))
        var put = HTTPRequest(
            method: "PUT", url: url, headers: fields, body: .file(fd: content.fd, length: size), response: .discard,
            timeLeft: event.budget(), cancelled: { event.control.isCancelled }, cancelFD: event.control.cancelFD)
        put.onProgress = { meter.moving(sent: $0.sent, received: $0.received) }
        let response: HTTPResponse
        switch withExtendedLifetime(content, { HTTPClient.shared.send(put) }) {
        case .failure(let failure):
            meter.finished(sent: failure.bytesSent, received: failure.bytesReceived)
            return .retry(after: nil, failure.message)
        case .success(let got):
            meter.finished(sent: got.bytesSent, received: got.bytesReceived)
            response = got
        }
        switch response.status {
        case 200..<300:
            do {
                try files.saveETag(response.header("ETag"))
            } catch {
                return .failure(error.message)
            }
            if response.header("ETag") == nil {
                log.warning("the server sent no ETag; the next upload will only create, and so conflict")
                return .success("uploaded (the server sent no ETag)")
            }
            return .success("uploaded")
        case 412:
            return fetchServerCopy(url: url, files: files, event: event, log: log, meter: meter)
        case 408, 429, 500..<600:
            return .retry(after: response.retryAfter(), "HTTP \(response.status)")
        case 400..<500:
            return .failure("HTTP \(response.status)")
        default:
            return .retry(after: nil, "unexpected HTTP \(response.status)")
        }
    }

    /// After a 412: keep the server's copy beside the file for the app to merge. It is written to
    /// a temporary file beside the settings as it arrives, and renamed in only when whole.
    private func fetchServerCopy(
        url: String, files: SettingsFiles, event: HandlerEvent, log: HandlerLog, meter: TransferMeter
    ) -> HandlerResult {
        let temporary: (name: String, file: HandlerFile)
        do {
            temporary = try files.temporary(for: files.server)
        } catch {
            return .failure(error.message)
        }
        var keep = false
        defer { if !keep { try? files.directory.remove(temporary.name) } }
        var get = HTTPRequest(
            method: "GET", url: url, response: .file(fd: temporary.file.fd, limit: Self.maxServerCopyBytes),
            timeLeft: event.budget(),
            cancelled: { event.control.isCancelled }, cancelFD: event.control.cancelFD)
        get.onProgress = { progress in
            meter.expected = max(meter.expected, meter.sent + meter.received + progress.receiveTotal)
            meter.moving(sent: progress.sent, received: progress.received)
        }
        // Only a 2xx body is the server's copy: another status's body is not saved at all.
        var refused: HTTPResponse?
        get.onResponseHead = { status, headers in
            guard (200..<400).contains(status) else {
                refused = HTTPResponse(status: status, headers: headers)
                return false
            }
            return true
        }
        let result = HTTPClient.shared.send(get)
        switch result {
        case .failure(let failure) where failure.code == .stopped:
            meter.finished(sent: failure.bytesSent, received: failure.bytesReceived)
            guard let refused else { return .retry(after: nil, "conflict, but fetching the server copy failed") }
            if refused.status == 404 || refused.status == 410 {
                // The server copy was deleted: nothing to merge; the next attempt creates it anew.
                try? files.saveETag(nil)
                return .retry(after: nil, "the server copy was deleted; will upload anew")
            }
            return .retry(
                after: refused.retryAfter(), "conflict, but fetching the server copy failed: HTTP \(refused.status)")
        case .failure(let failure):
            meter.finished(sent: failure.bytesSent, received: failure.bytesReceived)
            return .retry(after: nil, "conflict, but fetching the server copy failed: \(failure.message)")
        case .success(let response) where (200..<300).contains(response.status):
            meter.finished(sent: response.bytesSent, received: response.bytesReceived)
            do {
                try files.saveServerCopy(temporary: temporary, etag: response.header("ETag"))
                keep = true
            } catch {
                return .failure(error.message)
            }
            log.warning("the server copy changed since the last upload; saved it as \(files.pathOf(files.server))")
            return .failure("conflict")
        case .success(let response):
            meter.finished(sent: response.bytesSent, received: response.bytesReceived)
            return .retry(
                after: response.retryAfter(), "conflict, but fetching the server copy failed: HTTP \(response.status)")
        }
    }
}

/// The settings file and the files the handler keeps beside it: names in its directory.
struct SettingsFiles {
    let directory: HandlerDirectory
    /// The settings file's name in `directory`, and its path (for messages).
    let name: String
    let path: String
    var etag: String { name + ".etag" }
    var server: String { name + ".server" }
    var serverETag: String { name + ".server.etag" }

    func pathOf(_ entry: String) -> String { path.dropLast(name.utf8.count) + entry }

    func exists(_ entry: String) -> Bool { directory.status(entry) != nil }

    /// A small companion file (an ETag), at most `limit` bytes of it: no more is read (the
    /// directory is the app's, and a huge file planted there must not be read whole).
    func read(_ entry: String, limit: Int = 8192) throws(FileError) -> [UInt8] {
        let file = try directory.open(entry, .read)
        var buffer = [UInt8](repeating: 0, count: max(0, limit))
        var count = 0
        while count < buffer.count {
            let got = buffer[count...].withUnsafeMutableBytes { pread(file.fd, $0.baseAddress, $0.count, off_t(count)) }
            if got < 0 {
                if errno == EINTR { continue }
                throw FileError(errno: errno, subject: "reading \(pathOf(entry))")
            }
            if got == 0 { break }
            count += got
        }
        return Array(buffer[..<count])
    }

    func readETag() -> String? {
        guard let data = try? read(etag) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingASCIIWhitespace
        return text.isEmpty ? nil : text
    }

    /// Saves (or, for nil, forgets) the server's ETag of the content just uploaded.
    func saveETag(_ value: String?) throws(SettingsError) {
        guard let value else {
            try? directory.remove(etag)
            return
        }
        try write(Array((value + "\n").utf8), to: etag)
    }

    /// A new temporary file beside `entry`, to be renamed over it when whole.
    func temporary(for entry: String) throws(SettingsError) -> (name: String, file: HandlerFile) {
        let name = "." + entry + ".tmp-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        do {
            return (name, try directory.open(name, [.write, .create, .exclusive]))
        } catch {
            throw SettingsError(message: "cannot write \(pathOf(entry)): \(error.message)")
        }
    }

    /// The server's copy, fetched into `temporary`, synced and renamed to `server`.
    func saveServerCopy(temporary: (name: String, file: HandlerFile), etag value: String?) throws(SettingsError) {
        if let value {
            try write(Array((value + "\n").utf8), to: serverETag)
        } else {
            try? directory.remove(serverETag)
        }
        // Last: its presence is what marks the conflict.
        do {
            try temporary.file.sync()
            try directory.rename(temporary.name, to: server)
        } catch {
            throw SettingsError(message: "cannot write \(pathOf(server)): \(error.message)")
        }
    }

    /// Atomically: a new temporary file beside it, written and synced, renamed over `entry`.
    private func write(_ data: [UInt8], to entry: String) throws(SettingsError) {
        let (temporary, file) = try temporary(for: entry)
        do {
            try file.writeAll(data)
            try directory.rename(temporary, to: entry)
        } catch {
            try? directory.remove(temporary)
            throw SettingsError(message: "cannot write \(pathOf(entry)): \(error.message)")
        }
    }
}

extension String {
    var trimmingASCIIWhitespace: String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}

struct SettingsError: Error {
    let code = "cannot-write"
    var message: String
}
