// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import BGSyncValue
import FetchHandler
import Foundation
import HandlerTestKit
import Testing

@Suite struct FetchNamesTests {
    @Test func usableNamesPassAndHostileOnesAreRefusedWithAReason() {
        #expect(FetchNames.problem("episode-42.mp3") == nil)
        #expect(FetchNames.problem("Épisode 42 ✓.ogg") == nil)
        #expect(FetchNames.problem("../../.ssh/authorized_keys") == "it holds a path separator")
        #expect(FetchNames.problem("..") == "it starts with a dot (hidden, or . or ..)")
        #expect(FetchNames.problem(".bashrc") == "it starts with a dot (hidden, or . or ..)")
        #expect(FetchNames.problem("a\\b") == "it holds a path separator")
        #expect(FetchNames.problem("a\nb") == "it holds a control character")
        #expect(FetchNames.problem("") == "it is empty")
        #expect(FetchNames.problem(String(repeating: "x", count: 201)) == "it is longer than 200 bytes")
        #expect(FetchNames.problem(String(repeating: "x", count: 200)) == nil)
    }

    @Test func theURLsLastSegmentIsDecodedWithoutQueryOrFragment() {
        #expect(FetchNames.lastSegment(of: "https://cdn.example.org/show/ep%2042.mp3?token=x#t=3") == "ep 42.mp3")
        #expect(FetchNames.lastSegment(of: "https://cdn.example.org/show/") == nil)
        #expect(FetchNames.lastSegment(of: "https://cdn.example.org") == nil)
        // An encoded slash decodes to a slash, which `problem` then refuses.
        #expect(FetchNames.lastSegment(of: "http://h/a/..%2F..%2Fetc") == "../../etc")
    }

    @Test func contentDispositionPrefersTheUTF8Form() {
        #expect(FetchNames.contentDispositionName("attachment; filename=\"a \\\"b\\\".mp3\"") == "a \"b\".mp3")
        #expect(
            FetchNames.contentDispositionName("attachment; filename=\"plain.mp3\"; filename*=UTF-8''%C3%A9t%C3%A9.mp3")
                == "été.mp3")
        #expect(FetchNames.contentDispositionName("attachment; filename=x.bin") == "x.bin")
        #expect(FetchNames.contentDispositionName("inline") == nil)
        #expect(
            FetchNames.contentDispositionName("attachment; filename=\"../../.ssh/authorized_keys\"")
                == "../../.ssh/authorized_keys")
    }
}

/// The handler against http_server.py (Tests/HandlerTestKit): scripted statuses and headers, and
/// its blob of N patterned bytes (byte i is i % 251).
@Suite final class FetchHandlerTests {
    let server: TestHTTPServer
    let root: TemporaryDirectory
    var directory: String { root.path + "/downloads" }
    /// SHA-256 of the first 100000 bytes of the blob (computed with Python's hashlib).
    static let blobSum = "cd2df694e424bc7968cc37f47751019e5ca0cd1bdf2e479ea537c3a1c32ee1aa"

    init() throws {
        server = try TestHTTPServer()
        root = try TemporaryDirectory()
    }

    deinit { root.remove() }

    func fetch(_ options: [String: Value], control: HandlerControl = HandlerControl(), sandboxed: Bool = false)
        -> HandlerResult
    {
        var all: [String: Value] = ["directory": .string(directory)]
        all.merge(options) { $1 }
        return FetchHandler().handle(
            event(all, root: sandboxed ? root.path : nil, control: control), log: .discard)
    }

    func listing() -> [String] { root.names("downloads") }

    func contents(_ name: String) -> Data? { FileManager.default.contents(atPath: directory + "/" + name) }

    @Test func downloadsNamesChecksAndCountsTheBytes() throws {
        let control = HandlerControl()
        let result = fetch(
            [
                "urls": .stringArray([server.url("/_control/blob?size=100000"), server.url("/_control/blob?size=10")]),
                "names": ["blob.bin", "small.bin"], "sha256": .stringArray([Self.blobSum, ""]),
            ], control: control, sandboxed: true)
        #expect(result == .success("fetched 2 files: blob.bin, small.bin"))
        // Beside each file what lets a repeat check blob.bin by its SHA-256, and replace either
        // (small.bin has no checksum and the server no validator: only its name is kept).
        #expect(listing().filter { !$0.hasPrefix(".") } == ["blob.bin", "small.bin"])
        #expect(listing().filter { $0.hasSuffix(".bgsync-done") }.count == 2)
        #expect(!listing().contains { $0.hasSuffix(".bgsync-part") || $0.hasSuffix(".bgsync-validator") })
        #expect(contents("blob.bin")?.count == 100000)
        #expect(Array(contents("small.bin") ?? Data()) == (0..<10).map { UInt8($0) })
        #expect(control.bytesReceived == 100010)
        #expect(control.reports.last?.text == "2 of 2 files, 100010 bytes")
    }

    @Test func aChecksumMismatchLeavesNothing() throws {
        let wrong = String(repeating: "0", count: 64)
        let result = fetch(["url": .string(server.url("/_control/blob?size=5000")), "sha256": .string(wrong)])
        guard case .failure(let detail) = result else {
            Issue.record("\(result)")
            return
        }
        #expect(detail.contains("blob: the SHA-256 is "))
        #expect(detail.hasSuffix("nothing kept, nothing arrived"))
        #expect(listing() == [])
    }

    @Test func anAnnouncedSizeOverTheTotalFailsBeforeTheBody() throws {
        let control = HandlerControl()
        let result = fetch(
            ["url": .string(server.url("/_control/blob?size=3000000")), "download-total": 1_000_000], control: control)
        guard case .failure(let detail) = result else {
            Issue.record("\(result)")
            return
        }
        #expect(detail.contains("the server announced 3000000 bytes, over download-total (1000000 bytes)"))
        #expect(listing() == [])
        // Stopped at the headers: far less than the body came.
        #expect(control.bytesReceived < 1_000_000)
    }

    @Test func theTotalCountsAllFiles() throws {
        let blob = server.url("/_control/blob?size=600")
        let result = fetch(
            ["urls": .stringArray([blob, blob]), "names": ["a", "b"], "download-total": 1000])
        guard case .failure(let detail) = result else {
            Issue.record("\(result)")
            return
        }
        #expect(detail.hasSuffix("arrived: a"))
        // "a" and the name its URL put there; nothing of "b".
        #expect(listing().filter { !$0.hasSuffix(".bgsync-done") } == ["a"])
    }

    @Test func aHostileContentDispositionIsRefusedAndNothingIsWrittenOutside() throws {
        try server.program(responses: [
            [
                "status": 200,
                "headers": ["Content-Disposition": "attachment; filename=\"../../.ssh/authorized_keys\""],
                "body": "ssh-ed25519 AAAA attacker",
            ]
        ])
        let result = fetch(["url": .string(server.url("/episode.mp3"))], sandboxed: true)
        #expect(
            result
                == .failure(
                    "\(server.url("/episode.mp3")): the server's file name '../../.ssh/authorized_keys' is refused: "
                        + "it holds a path separator, nothing arrived"))
        #expect(listing() == [])
        #expect(root.names() == ["downloads"])
    }

    @Test func aRedirectLoopIsAClearFailure() throws {
        let loop = server.url("/loop")
        try server.program(
            responses: Array(repeating: ["status": 302, "headers": ["Location": loop]], count: 20))
        let result = fetch(["url": .string(loop)])
        #expect(result == .failure("\(loop): more than 10 redirects (a redirect loop?), nothing arrived"))
        #expect(try server.received().count == 11)
        #expect(listing() == [])
    }

    @Test func serverTroubleIsARetryAnd404AFailure() throws {
        try server.program(responses: [["status": 503, "headers": ["Retry-After": "9"]], ["status": 404]])
        let url = server.url("/ep.mp3")
        #expect(fetch(["url": .string(url)]) == .retry(after: 9, "\(url): HTTP 503, nothing arrived"))
        #expect(fetch(["url": .string(url)]) == .failure("\(url): HTTP 404, nothing arrived"))
        #expect(listing() == [])
    }

    /// For a sandboxed app the host opens the directory: a link swapped in for it after Register
    /// fails the event, and nothing is written where it points.
    @Test func aSandboxedAppsDirectorySwappedForALinkIsRefused() throws {
        let elsewhere = try TemporaryDirectory()
        defer { elsewhere.remove() }
        try FileManager.default.createSymbolicLink(atPath: directory, withDestinationPath: elsewhere.path)
        let result = fetch(["url": .string(server.url("/_control/blob?size=10"))], sandboxed: true)
        #expect(
            result
                == .failure(
                    "cannot open the download directory: option 'directory' (\(directory)): a symbolic link is in "
                        + "the way (a sandboxed app's paths are not followed through links)"))
        #expect(elsewhere.names() == [])
    }

    /// A file in place from the last download of its URL is asked for again only if newer.
    @Test func aRepeatAsksWithIfNoneMatchAndA304KeepsTheFile() throws {
        try server.program(responses: [
            ["status": 200, "headers": ["ETag": "\"v1\""], "body": "episode one"], ["status": 304],
        ])
        let url = Value.string(server.url("/show/ep1.mp3"))
        #expect(fetch(["url": url]) == .success("fetched 1 file: ep1.mp3"))
        #expect(fetch(["url": url]) == .success("fetched 0 files; unchanged: ep1.mp3"))
        let received = try server.received()
        #expect(received.map { $0.headers["if-none-match"] } == [nil, "\"v1\""])
        #expect(contents("ep1.mp3") == Data("episode one".utf8))
        #expect(listing().filter { !$0.hasPrefix(".fetch-") } == ["ep1.mp3"])
    }

    /// With `sha256`, a file in place that has it is the file wanted: no request at all.
    @Test func aRepeatWithTheChecksumOfTheFileInPlaceAsksNothing() throws {
        let options: [String: Value] = [
            "url": .string(server.url("/_control/blob?size=100000")), "names": ["blob.bin"],
            "sha256": .string(Self.blobSum),
        ]
        #expect(fetch(options) == .success("fetched 1 file: blob.bin"))
        #expect(fetch(options) == .success("fetched 0 files; unchanged: blob.bin"))
        // The file in place changed: it is not the one wanted, so it is fetched again.
        try Data("edited".utf8).write(to: URL(fileURLWithPath: directory + "/blob.bin"))
        #expect(fetch(options) == .success("fetched 1 file: blob.bin"))
        #expect(contents("blob.bin")?.count == 100000)
    }

    /// What an earlier, cut attempt leaves: the partial file and the validator beside it.
    func leavePartial(url: String, _ content: String, validator: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = SHA256.hex(of: Array(url.utf8)).prefix(24)
        try Data(content.utf8).write(to: URL(fileURLWithPath: directory + "/.fetch-\(key).bgsync-part"))
        try Data((validator + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/.fetch-\(key).bgsync-validator"))
    }

    @Test func aPartialFileResumesWithRangeAndIfRange() throws {
        let url = server.url("/show/ep2.mp3")
        try leavePartial(url: url, "hello ", validator: "\"v1\"")
        try server.program(responses: [
            ["status": 206, "headers": ["Content-Range": "bytes 6-10/11", "ETag": "\"v1\""], "body": "world"]
        ])
        let control = HandlerControl()
        #expect(fetch(["url": .string(url)], control: control) == .success("fetched 1 file: ep2.mp3"))
        #expect(contents("ep2.mp3") == Data("hello world".utf8))
        let asked = try server.received()
        #expect(asked.map { $0.headers["range"] } == ["bytes=6-"])
        #expect(asked.map { $0.headers["if-range"] } == ["\"v1\""])
        #expect(control.bytesReceived == 5)
    }

    /// A 206 that is not the rest of the file (another start, or short of the end) is never
    /// renamed in as whole: the file starts over in the same event.
    @Test func aWrong206StartsTheFileOver() throws {
        let url = server.url("/show/ep3.mp3")
        try leavePartial(url: url, "hello ", validator: "\"v1\"")
        try server.program(responses: [
            ["status": 206, "headers": ["Content-Range": "bytes 6-7/11"], "body": "wo"],
            ["status": 200, "headers": ["ETag": "\"v2\""], "body": "hello there"],
        ])
        #expect(fetch(["url": .string(url)]) == .success("fetched 1 file: ep3.mp3"))
        #expect(contents("ep3.mp3") == Data("hello there".utf8))
        #expect(try server.received().map { $0.headers["range"] } == ["bytes=6-", nil])
    }

    /// A 206 whose Content-Range ends at 2^64-1 (with `/*`): refused without a trap, and the
    /// file starts over in the same event.
    @Test func aResumeAnsweredWithAnEndlessRangeStartsOver() throws {
        let url = server.url("/show/ep4.mp3")
        try leavePartial(url: url, "hello ", validator: "\"v1\"")
        try server.program(responses: [
            ["status": 206, "headers": ["Content-Range": "bytes 6-18446744073709551615/*"], "body": "world"],
            ["status": 200, "headers": ["ETag": "\"v2\""], "body": "hello there"],
        ])
        let lines = Lines()
        let log = HandlerLog { _, message in lines.append(message) }
        let result = FetchHandler().handle(event(["url": .string(url), "directory": .string(directory)]), log: log)
        #expect(result == .success("fetched 1 file: ep4.mp3"))
        #expect(contents("ep4.mp3") == Data("hello there".utf8))
        #expect(try server.received().map { $0.headers["range"] } == ["bytes=6-", nil])
        #expect(
            lines.all.contains(
                "\(url): a 206 that does not run to the file's end "
                    + "(Content-Range bytes 6-18446744073709551615/*); starting the file over"))
    }

    /// A server that answers every request with such a 206: a retry naming what it sent, and
    /// nothing left behind (no partial file, nothing under the final name).
    @Test func aServerOfEndless206sIsARetryThatLeavesNothing() throws {
        let url = server.url("/show/ep5.mp3")
        try leavePartial(url: url, "hello ", validator: "\"v1\"")
        try server.program(responses: [
            ["status": 206, "headers": ["Content-Range": "bytes 6-18446744073709551615/*"], "body": "world"],
            ["status": 206, "headers": ["Content-Range": "bytes 0-18446744073709551615/*"], "body": "world"],
        ])
        #expect(
            fetch(["url": .string(url)])
                == .retry(after: nil, "\(url): a 206 to a request without Range, nothing arrived"))
        #expect(listing() == [])
    }

    /// A 206 announcing a total of 2^64-1 bytes: over download-total, or short of what it said.
    @Test func a206AnnouncingTheLargestTotalIsCheckedWithoutATrap() throws {
        let url = server.url("/show/ep6.mp3")
        let range = "bytes 6-18446744073709551614/18446744073709551615"
        try leavePartial(url: url, "hello ", validator: "\"v1\"")
        try server.program(responses: [
            ["status": 206, "headers": ["Content-Range": range], "body": "world"],
            ["status": 206, "headers": ["Content-Range": range], "body": "world"],
        ])
        #expect(
            fetch(["url": .string(url), "download-total": 1_000_000])
                == .failure(
                    "\(url): the server announced 18446744073709551615 bytes, over download-total (1000000 bytes); "
                        + "nothing kept, nothing arrived"))
        #expect(listing() == [])
        try leavePartial(url: url, "hello ", validator: "\"v1\"")
        #expect(
            fetch(["url": .string(url)])
                == .retry(after: nil, "\(url): 11 of 18446744073709551615 bytes arrived, nothing arrived"))
        #expect(!listing().contains("ep6.mp3"))
    }

    /// A name the server chose (the URL's, or Content-Disposition's) never replaces a file the
    /// app keeps: the event fails naming it, and the file is as it was.
    @Test func aServersNameNeverReplacesAFileTheAppKeeps() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data("my notes".utf8).write(to: URL(fileURLWithPath: directory + "/notes.txt"))
        try server.program(responses: [
            ["status": 200, "body": "from the URL"],
            ["status": 200, "headers": ["Content-Disposition": "attachment; filename=\"notes.txt\""], "body": "cd"],
        ])
        for (path, sandboxed) in [("/notes.txt", false), ("/get?id=7", true)] {
            let url = server.url(path)
            #expect(
                fetch(["url": .string(url)], sandboxed: sandboxed)
                    == .failure(
                        "\(url): a file named notes.txt is already in the directory and is not from an earlier "
                            + "download of this URL; it is kept and nothing replaces it (give the download a name "
                            + "in 'names'), nothing arrived"))
            #expect(contents("notes.txt") == Data("my notes".utf8))
            #expect(listing() == ["notes.txt"])
        }
    }

    /// The file the same URL put in place last time is replaced (without a validator too), and
    /// so is a file named by `names`.
    @Test func aRepeatReplacesItsOwnFileAndNamesReplaceAnyFile() throws {
        try server.program(responses: [
            ["status": 200, "body": "first"], ["status": 200, "body": "second"], ["status": 200, "body": "named"],
        ])
        let url = server.url("/show/ep7.mp3")
        #expect(fetch(["url": .string(url)]) == .success("fetched 1 file: ep7.mp3"))
        #expect(fetch(["url": .string(url)]) == .success("fetched 1 file: ep7.mp3"))
        #expect(contents("ep7.mp3") == Data("second".utf8))
        let other = server.url("/other")
        #expect(fetch(["url": .string(other), "names": ["ep7.mp3"]]) == .success("fetched 1 file: ep7.mp3"))
        #expect(contents("ep7.mp3") == Data("named".utf8))
    }

    /// An ETag with a bare CR (libcurl passes it on) is not kept: the repeat asks without
    /// If-None-Match instead of failing for good on a header HTTPClient refuses to send.
    @Test func aValidatorWithAControlCharacterIsNotKept() throws {
        try server.program(responses: [
            ["status": 200, "headers": ["ETag": "\"a\rb\""], "body": "one"],
            ["status": 200, "headers": ["ETag": "\"a\rb\""], "body": "two"],
        ])
        let url = server.url("/show/ep8.mp3")
        #expect(fetch(["url": .string(url)]) == .success("fetched 1 file: ep8.mp3"))
        #expect(fetch(["url": .string(url)]) == .success("fetched 1 file: ep8.mp3"))
        #expect(contents("ep8.mp3") == Data("two".utf8))
        #expect(try server.received().map { $0.headers["if-none-match"] } == [nil, nil])
        let key = SHA256.hex(of: Array(url.utf8)).prefix(24)
        #expect(contents(".fetch-\(key).bgsync-done") == Data("ep8.mp3\n\n".utf8))
    }

    /// A done file an older version saved with such a validator: its name still counts, its
    /// validator is not sent.
    @Test func aSavedValidatorThatCannotBeSentIsLeftOut() throws {
        let url = server.url("/show/ep9.mp3")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: URL(fileURLWithPath: directory + "/ep9.mp3"))
        let key = SHA256.hex(of: Array(url.utf8)).prefix(24)
        try Data("ep9.mp3\n\"a\rb\"\n".utf8).write(to: URL(fileURLWithPath: directory + "/.fetch-\(key).bgsync-done"))
        try server.program(responses: [["status": 200, "headers": ["ETag": "\"v2\""], "body": "new"]])
        #expect(fetch(["url": .string(url)]) == .success("fetched 1 file: ep9.mp3"))
        #expect(contents("ep9.mp3") == Data("new".utf8))
        #expect(try server.received().map { $0.headers["if-none-match"] } == [nil])
    }

    @Test func badOptionsAreNamed() {
        let url = Value.string(server.url("/a"))
        #expect(fetch([:]) == .failure("option 'url' (s) or 'urls' (as) is missing: name what to download"))
        #expect(fetch(["url": "file:///etc/passwd"]).detail.contains("must hold http or https URLs"))
        #expect(fetch(["url": url, "names": ["a", "b"]]) == .failure("option 'names' has 2 names for 1 URLs"))
        #expect(
            fetch(["url": url, "names": ["../x"]])
                == .failure("option 'names': '../x' is no file name: it holds a path separator"))
        #expect(fetch(["url": url, "sha256": "abc"]) == .failure("option 'sha256': 'abc' is not 64 hex digits"))
        #expect(fetch(["url": url, "download-total": "big"]).detail.contains("must be an integer"))
        #expect(fetch(["url": url, "headers": ["Range": "bytes=0-"]]).detail.contains("may not set Range"))
    }
}

/// Log lines, collected.
final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}
