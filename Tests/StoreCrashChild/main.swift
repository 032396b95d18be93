// SPDX-License-Identifier: Apache-2.0
// store-crash-child: the process BGSyncStoreTests kills with SIGKILL mid-write.
//
//   store-crash-child run DIRECTORY ROUND    saves, updates and deletes registrations until killed
//   store-crash-child bench DIRECTORY COUNT full|normal    prints the mean time of one save
//
// `run` announces each operation on stdout before doing it ("save JSON" or "delete JSON") and
// prints "acked" once the store call has returned, i.e. once the operation is acknowledged.
import BGSyncCore
import BGSyncStore
import BGSyncValue
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("store-crash-child: \(message)\n".utf8))
    exit(2)
}

/// Writes straight to fd 1 so that a line is out of the process before the next operation.
func emit(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 {
            if errno == EINTR { continue }
            exit(3)  // The test went away.
        }
        offset += written
    }
}

/// Unix seconds in quarter steps, so that every date survives Double round trips exactly.
func someDate<G: RandomNumberGenerator>(_ random: inout G) -> Date {
    Date(timeIntervalSince1970: Double(Int.random(in: 1_700_000_000...1_900_000_000, using: &random)) + 0.25)
}

func someOptions<G: RandomNumberGenerator>(_ random: inout G, index: Int) -> [String: Value] {
    var options: [String: Value] = ["url": .string("https://example.org/outbox/\(index)")]
    if Bool.random(using: &random) {
        options["headers"] = .dictionary(
            keySignature: "s", valueSignature: "v",
            [
                .init(key: .string("Authorization"), value: .variant(.string("Bearer \(index)"))),
                .init(
                    key: .string("X-Count"), value: .variant(.uint64(UInt64.random(in: 0...UInt64.max, using: &random)))
                ),
            ])
        options["parts"] = .array(elementSignature: "(sd)", [.structure([.string("a"), .double(0.5)])])
        options["empty"] = .array(elementSignature: "s", [])
    }
    return options
}

func someRegistration<G: RandomNumberGenerator>(_ random: inout G, round: Int, index: Int, sequence: Int64)
    -> Registration
{
    let kind: RegistrationKind = Int.random(in: 0..<4, using: &random) == 0 ? .periodic : .oneOff
    let state = RegistrationState.allCases.randomElement(using: &random)!
    return Registration(
        key: RegistrationKey(appID: "org.example.App\(index % 3)", tag: "r\(round)-\(index)", kind: kind),
        handler: ["upload", "exec", "notify"].randomElement(using: &random)!,
        options: someOptions(&random, index: index),
        network: NetworkRequirement.allCases.randomElement(using: &random)!,
        maxAttempts: UInt32.random(in: 1...10, using: &random),
        attempts: UInt32.random(in: 0...5, using: &random),
        state: state,
        nextAttempt: state == .waiting ? someDate(&random) : nil,
        lastError: Bool.random(using: &random) ? "" : "HTTP 503 from example.org (try \(index))",
        minInterval: kind == .periodic ? Double(Int.random(in: 900...86_400, using: &random)) : nil,
        intervalStart: kind == .periodic ? someDate(&random) : nil,
        sequence: sequence)
}

func run(directory: String, round: Int) -> Never {
    let store: SQLiteRegistrationStore
    do { store = try SQLiteRegistrationStore(directory: directory) } catch { fail("\(error)") }
    var random = SystemRandomNumberGenerator()
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var mine: [Registration] = []  // What this round saved and has not deleted.
    var sequence = Int64(round) * 1_000_000
    for index in 0..<100_000 {
        let dice = Int.random(in: 0..<20, using: &random)
        do {
            if dice < 3, !mine.isEmpty {
                let victim = mine.remove(at: Int.random(in: 0..<mine.count, using: &random))
                emit("delete " + String(decoding: try encoder.encode(victim.key), as: UTF8.self))
                try store.delete(victim.key)
            } else {
                var registration: Registration
                if dice < 8, !mine.isEmpty {
                    // Update one in place, as the scheduler does: firing, failed, waiting...
                    let slot = Int.random(in: 0..<mine.count, using: &random)
                    registration = mine[slot]
                    registration.state = RegistrationState.allCases.randomElement(using: &random)!
                    registration.attempts += 1
                    registration.nextAttempt = registration.state == .waiting ? someDate(&random) : nil
                    registration.lastError = "timeout (update \(index))"
                    mine[slot] = registration
                } else {
                    sequence += 1
                    registration = someRegistration(&random, round: round, index: index, sequence: sequence)
                    mine.append(registration)
                }
                emit("save " + String(decoding: try encoder.encode(registration), as: UTF8.self))
                try store.save(registration)
            }
        } catch {
            fail("\(error)")
        }
        emit("acked")
    }
    exit(0)
}

func bench(directory: String, count: Int, synchronous: SQLiteRegistrationStore.Synchronous) -> Never {
    do {
        let store = try SQLiteRegistrationStore(directory: directory, synchronous: synchronous)
        var random = SystemRandomNumberGenerator()
        let registrations = (0..<count).map { someRegistration(&random, round: 0, index: $0, sequence: Int64($0)) }
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for registration in registrations { try store.save(registration) }
        }
        let micros = Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
        print(
            "synchronous=\(synchronous.rawValue): \(count) saves in \(Int(micros / 1000)) ms, \(Int(micros / Double(count))) µs per save"
        )
        store.close()
    } catch {
        fail("\(error)")
    }
    exit(0)
}

let arguments = CommandLine.arguments
switch (arguments.count, arguments.count > 1 ? arguments[1] : "") {
case (4, "run"):
    guard let round = Int(arguments[3]) else { fail("ROUND must be a number") }
    run(directory: arguments[2], round: round)
case (5, "bench"):
    guard let count = Int(arguments[3]), count > 0 else { fail("COUNT must be a positive number") }
    guard let mode = SQLiteRegistrationStore.Synchronous(rawValue: arguments[4].uppercased()) else {
        fail("say full or normal")
    }
    bench(directory: arguments[2], count: count, synchronous: mode)
default:
    fail("usage: store-crash-child run DIRECTORY ROUND | bench DIRECTORY COUNT full|normal")
}
