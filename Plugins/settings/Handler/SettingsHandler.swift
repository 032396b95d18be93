// SPDX-License-Identifier: Apache-2.0
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
    public static let pathOptions = ["file"]
    public static let urlOptions = ["url"]

    public init() {}

    public func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let files: SettingsFiles
        let url: URL
        do {
            let path = try event.options.requirePath("file")
            let text = try event.options.requireString("url")
            guard let parsed = httpURL(text) else {
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
        let content: Data
        do {
            content = try files.read(files.name)
        } catch {
            return .failure("cannot read the settings file: \(error.message)")
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
    private func fetchServerCopy(url: URL, files: SettingsFiles, event: HandlerEvent, log: HandlerLog) -> HandlerResult
    {
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
            log.warning("the server copy changed since the last upload; saved it as \(files.pathOf(files.server))")
            return .failure("conflict")
        case .success(let response) where response.status == 404 || response.status == 410:
            // The server copy was deleted: nothing to merge; the next attempt creates it anew.
            try? files.saveETag(nil)
            return .retry(after: nil, "the server copy was deleted; will upload anew")
        case .success(let response):
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

    func read(_ entry: String) throws(FileError) -> Data {
        Data(try directory.open(entry, .read).readAll())
    }

    func readETag() -> String? {
        guard let data = try? read(etag) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    /// Saves (or, for nil, forgets) the server's ETag of the content just uploaded.
    func saveETag(_ value: String?) throws(SettingsError) {
        guard let value else {
            try? directory.remove(etag)
            return
        }
        try write(Data((value + "\n").utf8), to: etag)
    }

    func saveServerCopy(_ body: Data, etag value: String?) throws(SettingsError) {
        if let value { try write(Data((value + "\n").utf8), to: serverETag) } else { try? directory.remove(serverETag) }
        // Last: its presence is what marks the conflict.
        try write(body, to: server)
    }

    /// Atomically: a new temporary file beside it, written and synced, renamed over `entry`.
    private func write(_ data: Data, to entry: String) throws(SettingsError) {
        let temporary = "." + entry + ".tmp-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        do {
            let file = try directory.open(temporary, [.write, .create, .exclusive])
            try file.writeAll(Array(data))
            try directory.rename(temporary, to: entry)
        } catch {
            try? directory.remove(temporary)
            throw SettingsError(message: "cannot write \(pathOf(entry)): \(error.message)")
        }
    }
}

struct SettingsError: Error {
    let code = "cannot-write"
    var message: String
}
