// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerHTTP
import BGSyncHandlerKit

#if canImport(Glibc)
import Glibc
#endif

/// Background Fetch for the desktop: downloads files into a directory the app names, each
/// under a temporary dot-name beside its final one and renamed into place only when whole (and,
/// with `sha256`, verified). An interrupted file resumes where it stopped with `Range` and
/// `If-Range`, so a cut connection costs only what had not yet arrived.
///
/// Options: `url` (s) or `urls` (as); `directory` (s, an absolute path; its last part made if missing);
/// `names` (as, aligned with `urls`: the files' names); `sha256` (s, or as aligned with `urls`,
/// "" for none); `download-total` (an integer: bytes all files together may have);
/// `headers` (a{ss}).
///
/// Without `names`, a file is named by the response's Content-Disposition, else by the URL's last
/// path segment. A name with a path separator, a leading dot, a control character or more than
/// `FetchNames.maxLength` bytes is refused (the event fails), never mended into another name.
/// A name from `names` replaces a file of that name; one the server chose replaces only the file
/// this URL's last download put in place (any other file of that name fails the event).
///
/// Beside the partial file `.fetch-KEY.bgsync-part` (KEY: from the SHA-256 of the URL, since the
/// name may only come with the response) the handler keeps `.fetch-KEY.bgsync-validator`: the
/// response's strong ETag, else its Last-Modified, sent back as If-Range. A server that answers
/// a Range request with 200 (it ignores Range, or the file changed) starts the file over.
/// Once the file is in place, `.fetch-KEY.bgsync-done` keeps its name and the response's
/// validator (one that can be sent back: printable ASCII): the next event for that URL may
/// replace that file, asks with If-None-Match, and a 304 keeps the file
/// (with `sha256`, a file in place that has it is kept without a request).
///
/// 408, 429, 5xx, a dropped connection or a stop is a retry that keeps the partial file; other
/// statuses, a redirect loop, an unusable name, a checksum mismatch and going over
/// `download-total` fail the event. Going over the total or a mismatch leaves no file behind.
public struct FetchHandler: SyncHandler {
    public static let name = "fetch"
    public static let description = "Downloads files into a directory, resuming with Range; checks SHA-256 and size"
    /// It writes only beneath the directory the app names (opened by the host beneath the app's
    /// root) and talks only to the servers the app names: what `upload` does, the other way.
    public static let sandboxSafe = true
    public static let pathOptions = ["directory"]
    public static let urlOptions = ["url", "urls"]

    /// The most URLs one registration may name.
    public static let maxFiles = 1000
    /// Redirects followed per file; one more fails it as a loop.
    public static let maxRedirects = 10
    /// Below this many seconds left, another request is not started.
    static let shortestRequest = 0.5

    public init() {}

    /// One file to fetch.
    struct Item {
        var url: String
        var name: String?
        var sha256: String?
    }

    struct Plan {
        var items: [Item]
        var headers: [(name: String, value: String)]
        var limit: UInt64?
    }

    public func handle(_ event: HandlerEvent, log: HandlerLog) -> HandlerResult {
        let plan: Plan
        let directory: HandlerDirectory
        do {
            plan = try Self.plan(event.options)
            _ = try event.options.requirePath("directory")
            directory = try event.files.openDirectory(option: "directory", .create)
        } catch let error as OptionError {
            return .failure(error.message)
        } catch let error as FileError {
            return .failure("cannot open the download directory: \(error.message)")
        } catch {
            return .failure("\(error)")
        }

        let meter = TransferMeter(control: event.control)
        var arrived: [String] = []
        var unchanged: [String] = []
        var arrivedBytes: UInt64 = 0
        for (index, item) in plan.items.enumerated() {
            func summary() -> String {
                var text = arrived.isEmpty ? "nothing arrived" : "arrived: " + arrived.joined(separator: ", ")
                if !unchanged.isEmpty { text += "; unchanged: " + unchanged.joined(separator: ", ") }
                return text
            }
            if event.control.isCancelled { return .retry(after: nil, "stopped, \(summary())") }
            guard event.timeBudget >= Self.shortestRequest else {
                return .retry(after: nil, "out of time, \(summary())")
            }
            let download = Download(
                item: item, directory: directory, headers: plan.headers, limit: plan.limit, before: arrivedBytes,
                event: event, meter: meter, log: log)
            download.checking = { name, bytes in
                event.control.progress(
                    done: UInt64(index), total: UInt64(plan.items.count),
                    "checking the SHA-256 of \(name), \(bytes >> 20) MiB read")
            }
            switch download.run(taken: Set(arrived + unchanged)) {
            case .arrived(let name, let size):
                arrived.append(name)
                arrivedBytes += size
                event.control.progress(
                    done: UInt64(index + 1), total: UInt64(plan.items.count),
                    "\(arrived.count + unchanged.count) of \(plan.items.count) files, \(arrivedBytes) bytes")
                log.debug("fetched \(item.url) as \(name), \(size) bytes")
            case .unchanged(let name):
                unchanged.append(name)
                event.control.progress(
                    done: UInt64(index + 1), total: UInt64(plan.items.count),
                    "\(arrived.count + unchanged.count) of \(plan.items.count) files, \(arrivedBytes) bytes")
                log.debug("\(item.url): \(name) is unchanged (HTTP 304)")
            case .retry(let after, let message):
                return .retry(after: after, "\(message), \(summary())")
            case .failure(let message):
                return .failure("\(message), \(summary())")
            }
        }
        var detail = "fetched \(Self.files(arrived.count))"
        if !arrived.isEmpty { detail += ": " + arrived.joined(separator: ", ") }
        if !unchanged.isEmpty { detail += "; unchanged: " + unchanged.joined(separator: ", ") }
        return .success(detail)
    }

    static func files(_ count: Int) -> String { count == 1 ? "1 file" : "\(count) files" }

    /// The options, checked as a whole before anything is fetched.
    static func plan(_ options: HandlerOptions) throws(OptionError) -> Plan {
        let urls: [String]
        switch (options.type("url"), options.type("urls")) {
        case (.some, .some):
            throw OptionError(.invalid, option: "urls", "give either option 'url' or option 'urls', not both")
        case (nil, nil):
            throw OptionError(
                .missing, option: "url", "option 'url' (s) or 'urls' (as) is missing: name what to download")
        case (.some, nil):
            urls = [try options.requireString("url")]
        case (nil, .some(let type)):
            guard let list = options.strings("urls") else {
                throw OptionError(
                    .wrongType, option: "urls", "option 'urls' must be an array of strings (as), not \(type)")
            }
            guard !list.isEmpty else { throw OptionError(.invalid, option: "urls", "option 'urls' is empty") }
            urls = list
        }
        let urlOption = options.type("url") != nil ? "url" : "urls"
        guard urls.count <= maxFiles else {
            throw OptionError(.invalid, option: "urls", "option 'urls' names \(urls.count) URLs; at most \(maxFiles)")
        }
        for url in urls where HTTPURL.check(url) == nil {
            throw OptionError(
                .invalid, option: urlOption,
                "option '\(urlOption)' must hold http or https URLs with a host, not '\(FetchNames.shown(url))'")
        }

        var names: [String?] = Array(repeating: nil, count: urls.count)
        if let type = options.type("names") {
            guard let list = options.strings("names") else {
                throw OptionError(
                    .wrongType, option: "names", "option 'names' must be an array of strings (as), not \(type)")
            }
            guard list.count == urls.count else {
                throw OptionError(
                    .invalid, option: "names", "option 'names' has \(list.count) names for \(urls.count) URLs")
            }
            for name in list {
                if let problem = FetchNames.problem(name) {
                    throw OptionError(
                        .invalid, option: "names",
                        "option 'names': '\(FetchNames.shown(name))' is no file name: \(problem)")
                }
            }
            guard Set(list).count == list.count else {
                throw OptionError(.invalid, option: "names", "option 'names' names a file twice")
            }
            names = list
        }

        var sums: [String?] = Array(repeating: nil, count: urls.count)
        switch options.type("sha256") {
        case nil: break
        case "s":
            guard urls.count == 1 else {
                throw OptionError(
                    .wrongType, option: "sha256",
                    "option 'sha256' is one string but there are \(urls.count) URLs: give an array (as) aligned with 'urls'"
                )
            }
            sums = [try checkedSum(options.string("sha256") ?? "")]
        case "as":
            let list = options.strings("sha256") ?? []
            guard list.count == urls.count else {
                throw OptionError(
                    .invalid, option: "sha256", "option 'sha256' has \(list.count) checksums for \(urls.count) URLs")
            }
            sums = try list.map { (sum: String) throws(OptionError) -> String? in
                sum.isEmpty ? nil : try checkedSum(sum)
            }
        case let type?:
            throw OptionError(
                .wrongType, option: "sha256", "option 'sha256' must be a string (s) or strings (as), not \(type)")
        }

        var limit: UInt64?
        if let type = options.type("download-total") {
            guard let value = options.int("download-total") else {
                throw OptionError(
                    .wrongType, option: "download-total", "option 'download-total' must be an integer (t), not \(type)")
            }
            guard value >= 0 else {
                throw OptionError(.invalid, option: "download-total", "option 'download-total' is negative")
            }
            limit = UInt64(value)
        }

        let headers = try options.optionalStringPairs("headers")
        for header in headers where ["range", "if-range"].contains(header.key.lowercased()) {
            throw OptionError(
                .invalid, option: "headers", "option 'headers' may not set \(header.key): the handler sets it to resume"
            )
        }
        let items = urls.indices.map { Item(url: urls[$0], name: names[$0], sha256: sums[$0]) }
        return Plan(items: items, headers: headers.map { (name: $0.key, value: $0.value) }, limit: limit)
    }

    /// 64 hex digits, returned lower-case.
    static func checkedSum(_ text: String) throws(OptionError) -> String {
        let lower = text.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy({ FetchNames.hexValue($0) != nil }) else {
            throw OptionError(
                .invalid, option: "sha256", "option 'sha256': '\(FetchNames.shown(text))' is not 64 hex digits")
        }
        return lower
    }
}

/// What became of one file.
enum FileOutcome {
    case arrived(name: String, size: UInt64)
    /// The server said the file in place is current (304): nothing was downloaded.
    case unchanged(name: String)
    case retry(after: Double?, String)
    case failure(String)
}

/// One file's download: its partial file and validator, the request, and what its answer means.
final class Download {
    let item: FetchHandler.Item
    let directory: HandlerDirectory
    let headers: [(name: String, value: String)]
    /// download-total, and the bytes of the files that arrived before this one.
    let limit: UInt64?
    let before: UInt64
    let event: HandlerEvent
    let meter: TransferMeter
    let log: HandlerLog
    /// Called as a long SHA-256 check goes on: a progress report moves the stall deadline,
    /// which a check of a big file read back without a byte moving would otherwise run into.
    var checking: (_ name: String, _ bytesRead: UInt64) -> Void = { _, _ in }
    static let checkReport: off_t = 64 << 20
    let partName: String
    let validatorName: String
    let doneName: String

    init(
        item: FetchHandler.Item, directory: HandlerDirectory, headers: [(name: String, value: String)],
        limit: UInt64?, before: UInt64, event: HandlerEvent, meter: TransferMeter, log: HandlerLog
    ) {
        self.item = item
        self.directory = directory
        self.headers = headers
        self.limit = limit
        self.before = before
        self.event = event
        self.meter = meter
        self.log = log
        // By URL, not by name: the name may come only with the response.
        let key = SHA256.hex(of: Array(item.url.utf8)).prefix(24)
        partName = ".fetch-\(key).bgsync-part"
        validatorName = ".fetch-\(key).bgsync-validator"
        doneName = ".fetch-\(key).bgsync-done"
    }

    /// Why the exchange was ended from its response head.
    enum Refusal {
        case redirectLoop
        case status(HTTPResponse)
        case overLimit(announced: UInt64)
        case badRange(String)
        case noName
        case badName(String, String)
        case local(String)
    }

    /// What `attempt` found: done, or start the file over once.
    enum Step {
        case done(FileOutcome)
        case restart(String)
    }

    func run(taken: Set<String>) -> FileOutcome {
        var step = attempt(taken: taken)
        if case .restart(let why) = step {
            log.info("\(item.url): \(why); starting the file over")
            forget()
            step = attempt(taken: taken)
        }
        switch step {
        case .done(let outcome): return outcome
        case .restart(let why):
            // The second try started from nothing and was refused at its head: nothing of it is worth keeping.
            forget()
            return .retry(after: nil, "\(item.url): \(why)")
        }
    }

    /// Removes the partial file and its validator (ENOENT is fine).
    func forget() {
        try? directory.remove(partName)
        try? directory.remove(validatorName)
    }

    /// The first `limit` bytes of a small companion file, nil if it cannot be read (the app's
    /// directory is the app's: a huge file there is read no further).
    func readSmall(_ name: String, limit: Int = 8192) -> [UInt8]? {
        guard let file = try? directory.open(name, .read) else { return nil }
        var buffer = [UInt8](repeating: 0, count: limit)
        var count = 0
        while count < limit {
            let got = buffer[count...].withUnsafeMutableBytes { pread(file.fd, $0.baseAddress, $0.count, off_t(count)) }
            if got < 0 && errno == EINTR { continue }
            if got < 0 { return nil }
            if got == 0 { break }
            count += got
        }
        return Array(buffer[..<count])
    }

    func readValidator() -> String? {
        guard let bytes = readSmall(validatorName) else { return nil }
        let line = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).first ?? []
        return Self.usable(String(decoding: line, as: UTF8.self).trimmingSpaces)
    }

    func saveValidator(_ value: String?) throws(FileError) {
        guard let value = Self.usable(value) else {
            try? directory.remove(validatorName)
            return
        }
        let file = try directory.open(validatorName, [.write, .create, .truncate])
        try file.writeAll(Array((value + "\n").utf8))
    }

    /// What the last download of this URL left: the file's name (which a repeat may replace)
    /// and the response's validator (any ETag, else Last-Modified), for a conditional request
    /// next time. The validator is "" when the response had none, or when what is saved could
    /// not be sent back (a file of an older version, or one the app edited).
    func readDone() -> (name: String, validator: String)? {
        guard let bytes = readSmall(doneName) else { return nil }
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        guard lines.count == 3, lines[2].isEmpty else { return nil }
        let name = String(decoding: lines[0], as: UTF8.self)
        guard FetchNames.problem(name) == nil else { return nil }
        return (name, Self.usable(String(decoding: lines[1], as: UTF8.self)) ?? "")
    }

    /// Saves what `readDone` reads: always the name (a later download of this URL may replace
    /// only that file), and the validator when it can be sent back.
    func saveDone(name: String, validator: String?) {
        guard let file = try? directory.open(doneName, [.write, .create, .truncate]) else { return }
        try? file.writeAll(Array((name + "\n" + (Self.usable(validator) ?? "") + "\n").utf8))
    }

    /// `value` if it can go back to the server in a header: printable ASCII, not empty. A
    /// server's ETag with a CR or another control character in it (libcurl passes a bare CR on)
    /// would be refused by HTTPClient as a header of ours (.invalidRequest) on every later event.
    static func usable(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else { return nil }
        return value
    }

    /// Any validator of a response, weak or strong: enough for If-None-Match.
    static func anyValidator(_ headers: [(name: String, value: String)]) -> String? {
        let response = HTTPResponse(status: 200, headers: headers)
        return usable(response.header("etag")) ?? usable(response.header("last-modified"))
    }

    /// A strong validator of a response: its ETag unless weak, else Last-Modified.
    static func validator(_ headers: [(name: String, value: String)]) -> String? {
        let response = HTTPResponse(status: 200, headers: headers)
        if let etag = usable(response.header("etag")), !etag.hasPrefix("W/") { return etag }
        return usable(response.header("last-modified"))
    }

    /// `bytes START-END/TOTAL` (TOTAL may be `*`).
    static func contentRange(_ text: String) -> (start: UInt64, end: UInt64, total: UInt64?)? {
        let trimmed = text.trimmingSpaces
        guard trimmed.lowercased().hasPrefix("bytes ") else { return nil }
        let spec = trimmed.dropFirst(6)
        let halves = spec.split(separator: "/", maxSplits: 1)
        guard halves.count == 2 else { return nil }
        let bounds = halves[0].split(separator: "-", maxSplits: 1)
        guard bounds.count == 2, let start = UInt64(bounds[0]), let end = UInt64(bounds[1]), end >= start else {
            return nil
        }
        if halves[1] == "*" { return (start, end, nil) }
        guard let total = UInt64(halves[1]), total > end else { return nil }
        return (start, end, total)
    }

    /// Over `download-total` with `size` bytes of this file?
    func over(_ size: UInt64) -> Bool {
        guard let limit else { return false }
        return before > limit || size > limit - before
    }

    func attempt(taken: Set<String>) -> Step {
        let part: HandlerFile
        do {
            part = try directory.open(partName, [.write, .create])
        } catch {
            return .done(.failure("cannot write in the download directory: \(error.message)"))
        }
        var offset = Int64(part.status()?.st_size ?? 0)
        let validator = offset > 0 ? readValidator() : nil
        if validator == nil {
            // Nothing to resume from (or nothing to tell the server it is the same file).
            offset = 0
            guard ftruncate(part.fd, 0) == 0 else {
                return .done(.failure("cannot write in the download directory: \(String(cString: strerror(errno)))"))
            }
        }
        guard lseek(part.fd, off_t(offset), SEEK_SET) == off_t(offset) else {
            return .done(.failure("cannot write in the download directory: \(String(cString: strerror(errno)))"))
        }
        var fields = headers
        if let validator, offset > 0 {
            fields.append(("Range", "bytes=\(offset)-"))
            fields.append(("If-Range", validator))
        }
        // The file this URL gave last time is in place: ask only for a newer one (a repeat of
        // the event after a later file failed costs a 304, not the download again). With
        // `sha256` the file in place answers by itself: the one wanted needs no request at all,
        // another is fetched anew.
        var current: String?
        if offset == 0, let done = readDone(), item.name == nil || item.name == done.name,
            let info = directory.status(done.name), info.st_mode & S_IFMT == S_IFREG
        {
            if let expected = item.sha256 {
                if (try? hash(done.name, shown: done.name)) == expected {
                    try? directory.remove(partName)
                    return .done(.unchanged(name: done.name))
                }
            } else if !done.validator.isEmpty {
                let isETag = done.validator.hasPrefix("\"") || done.validator.hasPrefix("W/")
                fields.append(isETag ? ("If-None-Match", done.validator) : ("If-Modified-Since", done.validator))
                current = done.name
            }
        }
        var unchanged = false
        var doneValidator: String?
        /// The whole file's length, where the response says it.
        var expectedSize: UInt64?

        var redirects = 0
        var refusal: Refusal?
        var name: String?
        var overLimit = false
        let fd = part.fd
        let event = self.event
        var request = HTTPRequest(
            method: "GET", url: item.url, headers: fields, response: .file(fd: fd),
            maxRedirects: FetchHandler.maxRedirects + 1, timeLeft: event.budget(),
            cancelled: { overLimit || event.control.isCancelled }, cancelFD: event.control.cancelFD)
        request.onResponseHead = { [self] status, headers in
            let response = HTTPResponse(status: status, headers: headers)
            if (300..<400).contains(status), response.header("location") != nil {
                redirects += 1
                if redirects > FetchHandler.maxRedirects {
                    refusal = .redirectLoop
                    return false
                }
                return true
            }
            let length = response.header("content-length").flatMap { UInt64($0.trimmingSpaces) }
            doneValidator = Self.anyValidator(headers)
            switch status {
            case 304 where current != nil:
                unchanged = true
                name = current
                return true
            case 200:
                expectedSize = length
                // The whole file: the server ignored Range, or If-Range found the file changed.
                if offset > 0 {
                    log.info("\(item.url): the server sent the whole file (HTTP 200), not the rest; starting over")
                    guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
                        refusal = .local(String(cString: strerror(errno)))
                        return false
                    }
                    offset = 0
                }
                do throws(FileError) {
                    try saveValidator(Self.validator(headers))
                } catch {
                    refusal = .local(error.message)
                    return false
                }
                if let length, over(length) {
                    refusal = .overLimit(announced: length)
                    return false
                }
            case 206:
                guard let range = response.header("content-range").flatMap(Self.contentRange) else {
                    refusal = .badRange("a 206 without a usable Content-Range")
                    return false
                }
                guard offset > 0 else {
                    refusal = .badRange("a 206 to a request without Range")
                    return false
                }
                guard range.start == UInt64(offset) else {
                    refusal = .badRange("a 206 from byte \(range.start), not \(offset)")
                    return false
                }
                // Only the rest of the file will do: a piece of it would be renamed in as whole.
                // No arithmetic on the server's numbers that could trap: END may be 2^64-1.
                guard let total = range.total, total > range.end, total - range.end == 1 else {
                    let total = range.total.map(String.init) ?? "*"
                    refusal = .badRange(
                        "a 206 that does not run to the file's end (Content-Range bytes \(range.start)-\(range.end)/\(total))"
                    )
                    return false
                }
                if over(total) {
                    refusal = .overLimit(announced: total)
                    return false
                }
                expectedSize = total
            default:
                refusal = .status(response)
                return false
            }
            let chosen =
                item.name ?? response.header("content-disposition").flatMap(FetchNames.contentDispositionName)
                ?? FetchNames.lastSegment(of: item.url)
            guard let chosen else {
                refusal = .noName
                return false
            }
            if let problem = FetchNames.problem(chosen) {
                refusal = .badName(chosen, problem)
                return false
            }
            name = chosen
            return true
        }
        request.onProgress = { [self] progress in
            // The file's own length is the count: what the server says does not matter.
            let written = lseek(fd, 0, SEEK_CUR)
            if written >= 0, over(UInt64(written)) { overLimit = true }
            // receiveTotal is the server's Content-Length: added without a trap.
            let (total, overflow) = meter.received.addingReportingOverflow(progress.receiveTotal)
            meter.expected = max(meter.expected, overflow ? .max : total)
            meter.moving(sent: progress.sent, received: progress.received)
        }

        let result = withExtendedLifetime(part) { HTTPClient.shared.send(request) }
        switch result {
        case .failure(let failure):
            meter.finished(sent: failure.bytesSent, received: failure.bytesReceived)
            if overLimit { return .done(overLimitFailure(nil)) }
            if let refusal { return refused(refusal) }
            switch failure.code {
            case .invalidRequest, .invalidURL:
                forget()
                return .done(.failure("\(item.url): \(failure.message)"))
            default:
                // Dropped, timed out, stopped: what arrived stays for the next attempt's Range.
                if readValidator() == nil { forget() }
                return .done(.retry(after: nil, "\(item.url): \(failure.message)"))
            }
        case .success(let response):
            meter.finished(sent: response.bytesSent, received: response.bytesReceived)
            guard let name else {
                forget()
                return .done(.retry(after: nil, "\(item.url): unexpected HTTP \(response.status)"))
            }
            if unchanged {
                try? directory.remove(partName)
                return .done(.unchanged(name: name))
            }
            if let expectedSize, let size = part.status()?.st_size, UInt64(size) != expectedSize {
                // libcurl ends a short body with an error; this is the last guard before the rename.
                return .done(.retry(after: nil, "\(item.url): \(size) of \(expectedSize) bytes arrived"))
            }
            return finish(part: part, name: name, taken: taken, validator: doneValidator)
        }
    }

    /// The whole file is in the partial file: check it, then rename it into place.
    func finish(part: HandlerFile, name: String, taken: Set<String>, validator: String?) -> Step {
        guard let info = part.status() else {
            return .done(.failure("cannot read back \(partName): \(String(cString: strerror(errno)))"))
        }
        let size = UInt64(info.st_size)
        if over(size) { return .done(overLimitFailure(nil)) }
        guard !taken.contains(name) else {
            forget()
            return .done(
                .failure("\(item.url): its name \(FetchNames.shown(name)) was taken by another file of this fetch"))
        }
        // A name the server chose (Content-Disposition, or the URL's) never replaces a file the
        // app keeps: only a name from `names`, or the one this URL's last download put in place.
        let mayReplace = item.name != nil || readDone()?.name == name
        do {
            try part.sync()
            if let expected = item.sha256 {
                let got = try hash(partName, shown: name)
                guard got == expected else {
                    forget()
                    return .done(
                        .failure(
                            "\(FetchNames.shown(name)): the SHA-256 is \(got), not \(expected) as given; nothing kept"))
                }
            }
            try directory.rename(partName, to: name, noReplace: !mayReplace)
        } catch {
            if error.errno == EEXIST, !mayReplace {
                forget()
                return .done(
                    .failure(
                        "\(item.url): a file named \(FetchNames.shown(name)) is already in the directory and is not "
                            + "from an earlier download of this URL; it is kept and nothing replaces it "
                            + "(give the download a name in 'names')"))
            }
            return .done(.failure("cannot put \(FetchNames.shown(name)) in place: \(error.message)"))
        }
        try? directory.remove(validatorName)
        saveDone(name: name, validator: validator)
        return .done(.arrived(name: name, size: size))
    }

    /// SHA-256 of the file `name` of the directory, read from the start.
    func hash(_ name: String, shown: String) throws(FileError) -> String {
        let file = try directory.open(name, .read)
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var position: off_t = 0
        while true {
            let got = buffer.withUnsafeMutableBytes { pread(file.fd, $0.baseAddress, $0.count, position) }
            if got < 0 {
                if errno == EINTR { continue }
                throw FileError(errno: errno, subject: "reading back \(name)")
            }
            if got == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
            position += off_t(got)
            if position % Self.checkReport < off_t(got) { checking(shown, UInt64(position)) }
        }
        return SHA256.hex(hasher.finish())
    }

    func overLimitFailure(_ announced: UInt64?) -> FileOutcome {
        forget()
        let limitText = "download-total (\(limit ?? 0) bytes)"
        if let announced {
            return .failure("\(item.url): the server announced \(announced) bytes, over \(limitText); nothing kept")
        }
        return .failure("\(item.url): the server sent more than \(limitText) allows; nothing kept")
    }

    func refused(_ refusal: Refusal) -> Step {
        switch refusal {
        case .redirectLoop:
            forget()
            return .done(
                .failure("\(item.url): more than \(FetchHandler.maxRedirects) redirects (a redirect loop?)"))
        case .overLimit(let announced):
            return .done(overLimitFailure(announced))
        case .badRange(let why):
            return .restart(why)
        case .noName:
            forget()
            return .done(
                .failure(
                    "\(item.url): no file name in the URL's path nor in a Content-Disposition; give one in 'names'"))
        case .badName(let name, let problem):
            forget()
            return .done(
                .failure("\(item.url): the server's file name '\(FetchNames.shown(name))' is refused: \(problem)"))
        case .local(let message):
            return .done(.failure("cannot write in the download directory: \(message)"))
        case .status(let response):
            switch response.status {
            case 416:
                // The range asked for is past the server's end: the partial file is not of this file.
                return .restart("HTTP 416 for the rest of a partial file")
            case 408, 429, 500..<600:
                return .done(.retry(after: response.retryAfter(), "\(item.url): HTTP \(response.status)"))
            default:
                forget()
                return .done(.failure("\(item.url): HTTP \(response.status)"))
            }
        }
    }
}
