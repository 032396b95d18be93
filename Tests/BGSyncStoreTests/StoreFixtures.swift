// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncValue
import Foundation

/// A fresh directory under $TMPDIR, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array(
            (NSTemporaryDirectory() as NSString).appendingPathComponent("bgsync-store-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed: \(String(cString: strerror(errno)))") }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    func remove() {
        restorePermissions(path)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Gives back permissions a test took away, so that the directory can be removed.
    private func restorePermissions(_ path: String) {
        _ = chmod(path, 0o700)
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            let child = (path as NSString).appendingPathComponent(entry)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: child, isDirectory: &isDirectory), isDirectory.boolValue {
                restorePermissions(child)
            } else {
                _ = chmod(child, 0o600)
            }
        }
    }
}

enum Fixtures {
    /// Every kind of option value, nested.
    static let everyOption: [String: Value] = [
        "bool": .bool(true), "byte": .byte(255), "int16": .int16(-32768), "uint16": .uint16(65535),
        "int32": .int32(Int32.min), "uint32": .uint32(UInt32.max), "int64": .int64(Int64.min),
        "uint64": .uint64(UInt64.max), "double": .double(-0.1), "tiny": .double(.leastNonzeroMagnitude),
        "string": .string("héllo \"wörld\"\n\t✉"), "empty": .string(""),
        "path": .objectPath("/org/example/Chat"), "signature": .signature("a{sv}"),
        "none": .array(elementSignature: "s", []),
        "list": .array(
            elementSignature: "v", [.variant(.int32(1)), .variant(.string("two")), .variant(.variant(.bool(false)))]),
        "map": .dictionary(
            keySignature: "s", valueSignature: "a(ix)",
            [
                .init(
                    key: .string("a"), value: .array(elementSignature: "(ix)", [.structure([.int32(1), .int64(-2)])])),
                .init(key: .string("b"), value: .array(elementSignature: "(ix)", [])),
            ]),
        "tuple": .structure([.uint64(0), .structure([.double(1e300), .objectPath("/")]), .variant(.signature(""))]),
    ]

    static let oneOff = Registration(
        key: RegistrationKey(appID: "org.example.Chat", tag: "outbox ✉ «1»", kind: .oneOff),
        handler: "upload", options: everyOption, network: .unmetered, maxAttempts: 5, attempts: 2,
        state: .waiting, nextAttempt: Date(timeIntervalSince1970: 1_763_000_000.5),
        lastError: "HTTP 503 from example.org",
        sequence: 42, power: .batteryNotLow, expiresAt: Date(timeIntervalSince1970: 1_763_086_400.25),
        notBefore: Date(timeIntervalSince1970: 1_762_999_000))

    /// Same app and tag as `oneOff`, in the periodic namespace.
    static let periodic = Registration(
        key: RegistrationKey(appID: "org.example.Chat", tag: "outbox ✉ «1»", kind: .periodic),
        handler: "settings", options: [:], network: .any, maxAttempts: UInt32.max, attempts: 0,
        state: .pending, minInterval: 900.25, intervalStart: Date(timeIntervalSince1970: 1_700_000_000),
        sequence: Int64.max,
        confinement: .sandboxed(kind: .snap, appID: "snap.chat_x", root: "/home/u/snap/chat_x: a root with ':'"))

    static func simple(_ tag: String, sequence: Int64, state: RegistrationState = .pending) -> Registration {
        Registration(
            key: RegistrationKey(appID: "org.example.Mail", tag: tag, kind: .oneOff), handler: "exec",
            options: ["argv": .array(elementSignature: "s", [.string("true")])], maxAttempts: 3, state: state,
            sequence: sequence)
    }

    static func bySequence(_ registrations: [Registration]) -> [Registration] {
        registrations.sorted { $0.sequence < $1.sequence }
    }

    static func bytes(of path: String) -> Data? { FileManager.default.contents(atPath: path) }
}
