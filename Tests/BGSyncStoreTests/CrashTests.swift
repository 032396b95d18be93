// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Foundation
import Testing

@testable import BGSyncStore

/// Acknowledged means durable: a child process saves, updates and deletes registrations and says
/// "acked" after each store call returns; the test kills it with SIGKILL at a random point while
/// it is still writing, reopens the database and finds every acknowledged operation in it.
@Suite struct CrashTests {
    /// What the child announced it was about to do.
    enum Operation {
        case save(Registration)
        case delete(RegistrationKey)

        var key: RegistrationKey {
            switch self {
            case .save(let registration): registration.key
            case .delete(let key): key
            }
        }

        init(line: String) throws {
            let decoder = JSONDecoder()
            if line.hasPrefix("save ") {
                self = .save(try decoder.decode(Registration.self, from: Data(line.dropFirst(5).utf8)))
            } else if line.hasPrefix("delete ") {
                self = .delete(try decoder.decode(RegistrationKey.self, from: Data(line.dropFirst(7).utf8)))
            } else {
                throw UnexpectedLine(line: line)
            }
        }

        func apply(to model: inout [RegistrationKey: Registration]) {
            switch self {
            case .save(let registration): model[registration.key] = registration.durable
            case .delete(let key): model[key] = nil
            }
        }
    }

    struct UnexpectedLine: Error { var line: String }

    static let kills = 20

    @Test func everyAcknowledgedWriteSurvivesSIGKILL() throws {
        guard let binary = CrashChild.binary else {
            Issue.record("store-crash-child is not next to the test bundle; build it with `swift build --build-tests`.")
            return
        }
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var model: [RegistrationKey: Registration] = [:]
        var checked = 0
        var acknowledged = 0
        var savedFiring = 0
        var inFlightApplied = 0

        for round in 0..<Self.kills {
            let child = try CrashChild(binary: binary, arguments: ["run", directory.path, String(round)])
            let killAfter = Int.random(in: 1...120)
            var announced: Operation?
            var acks = 0
            func take(_ line: String) throws {
                if line == "acked" {
                    guard let operation = announced else { throw UnexpectedLine(line: line) }
                    operation.apply(to: &model)
                    if case .save(let registration) = operation,
                        registration.state == .firing || registration.state == .reregisteredWhileFiring
                    {
                        savedFiring += 1
                    }
                    announced = nil
                    acks += 1
                } else {
                    announced = try Operation(line: line)
                }
            }
            while acks < killAfter, let line = try child.readLine() { try take(line) }
            // Let the child run on for up to 1.5 ms more, so that the kill lands at any point of
            // a save (often mid-commit), not only just after an acknowledgement was written.
            usleep(UInt32.random(in: 0...1500))
            child.kill()
            // Lines the child wrote before it died are acknowledgements too.
            while let line = try child.readLine() { try take(line) }
            #expect(child.wasKilled, "the child exited by itself: \(child.standardError)")
            #expect(acks >= killAfter, "the child stopped after \(acks) operations: \(child.standardError)")
            acknowledged += acks

            let store = try SQLiteRegistrationStore(directory: directory.path)
            let loaded = Dictionary(uniqueKeysWithValues: try store.loadAll().map { ($0.key, $0) })
            store.close()

            // The operation in flight at the kill may or may not have happened.
            var withInFlight = model
            announced?.apply(to: &withInFlight)
            let inFlightKey = announced?.key
            for key in Set(model.keys).union(withInFlight.keys).union(loaded.keys) {
                if key == inFlightKey {
                    #expect(loaded[key] == model[key] || loaded[key] == withInFlight[key], "round \(round): \(key)")
                    if loaded[key] != model[key] { inFlightApplied += 1 }
                } else {
                    #expect(loaded[key] == model[key], "round \(round): \(key) is not as acknowledged")
                }
            }
            #expect(loaded.values.allSatisfy { $0.state != .firing && $0.state != .reregisteredWhileFiring })
            model = loaded  // Carry on from what is on disk, in-flight operation included.
            checked += loaded.count
        }
        print(
            "store crash test: \(Self.kills) SIGKILLs after \(acknowledged) acknowledged operations (\(savedFiring) saves of firing registrations); \(checked) registrations checked after reopening; the in-flight operation had landed \(inFlightApplied) times"
        )
    }
}
