import BGSyncHandlerHTTP
import BGSyncHandlerKit
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
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

    public init() {}

    public func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let files: SettingsFiles, url: URL
        do {
            files = SettingsFiles(path: try event.options.requirePath("file"))
            let text = try event.options.requireString("url")
            guard let parsed = httpURL(text) else {
                return .failure("option 'url' must be an http or https URL with a host, not '\(text)'")
            }
            url = parsed
        } catch {
            return .failure(error.message)
        }
        if FileManager.default.fileExists(atPath: files.server) {
            return .failure("conflict: resolve \(files.server) first")
        }
        guard let content = FileManager.default.contents(atPath: files.path) else {
            return .failure("cannot read the settings file \(files.path)")
        }
        let etag = files.readETag()

        var put = URLRequest(url: url)
        put.httpMethod = "PUT"
        put.httpBody = content
        put.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        if let etag {
            put.setValue(etag, forHTTPHeaderField: "If-Match")
        } else {
            put.setValue("*", forHTTPHeaderField: "If-None-Match")
        }
        let response: HTTPResponse
        switch BlockingHTTP.send(put, timeout: event.timeBudget) {
        case .failure(let failure): return .retry(after: nil, failure.message)
        case .success(let got): response = got
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
            return fetchServerCopy(url: url, files: files, event: event, log: log)
        case 408, 429, 500..<600:
            return .retry(after: response.retryAfter(), "HTTP \(response.status)")
        case 400..<500:
            return .failure("HTTP \(response.status)")
        default:
            return .retry(after: nil, "unexpected HTTP \(response.status)")
        }
    }

    /// After a 412: keep the server's copy beside the file for the app to merge.
    private func fetchServerCopy(url: URL, files: SettingsFiles, event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        var get = URLRequest(url: url)
        get.httpMethod = "GET"
        switch BlockingHTTP.send(get, timeout: event.timeBudget) {
        case .failure(let failure):
            return .retry(after: nil, "conflict, but fetching the server copy failed: \(failure.message)")
        case .success(let response) where (200..<300).contains(response.status):
            do {
                try files.saveServerCopy(response.body, etag: response.header("ETag"))
            } catch {
                return .failure(error.message)
            }
            log.warning("the server copy changed since the last upload; saved it as \(files.server)")
            return .failure("conflict")
        case .success(let response) where response.status == 404 || response.status == 410:
            // The server copy was deleted: nothing to merge; the next attempt creates it anew.
            try? files.saveETag(nil)
            return .retry(after: nil, "the server copy was deleted; will upload anew")
        case .success(let response):
            return .retry(after: response.retryAfter(), "conflict, but fetching the server copy failed: HTTP \(response.status)")
        }
    }
}

/// The settings file and the files the handler keeps beside it.
struct SettingsFiles {
    var path: String
    var etag: String { path + ".etag" }
    var server: String { path + ".server" }
    var serverETag: String { path + ".server.etag" }

    func readETag() -> String? {
        guard let data = FileManager.default.contents(atPath: etag) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    /// Saves (or, for nil, forgets) the server's ETag of the content just uploaded.
    func saveETag(_ value: String?) throws(SettingsError) {
        guard let value else {
            unlink(etag)
            return
        }
        try write(Data((value + "\n").utf8), to: etag)
    }

    func saveServerCopy(_ body: Data, etag value: String?) throws(SettingsError) {
        if let value { try write(Data((value + "\n").utf8), to: serverETag) } else { unlink(serverETag) }
        // Last: its presence is what marks the conflict.
        try write(body, to: server)
    }

    private func write(_ data: Data, to target: String) throws(SettingsError) {
        do {
            try data.write(to: URL(fileURLWithPath: target), options: .atomic)
        } catch {
            throw SettingsError(message: "cannot write \(target): \((error as NSError).localizedDescription)")
        }
    }
}

struct SettingsError: Error {
    let code = "cannot-write"
    var message: String
}
