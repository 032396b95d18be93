// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import BGSyncCore

@Suite struct RegistrationTableTests {
    private func registration(_ tag: String) -> Registration {
        Registration(
            key: RegistrationKey(appID: "org.example.Chat", tag: tag, kind: .oneOff), handler: "upload", options: [:],
            network: .any, maxAttempts: 3, sequence: 1)
    }

    @Test func removingMovesTheLastValueIntoTheGapAndKeepsEveryKeyFindable() {
        var table = RegistrationTable()
        for tag in ["a", "b", "c", "d"] { table[registration(tag).key] = registration(tag) }
        #expect(table.removeValue(forKey: registration("b").key)?.key.tag == "b")
        #expect(table.count == 3)
        for tag in ["a", "c", "d"] { #expect(table[registration(tag).key]?.key.tag == tag) }
        #expect(table[registration("b").key] == nil)
        table[registration("d").key] = nil  // now the last one
        table[registration("a").key] = nil
        #expect(table.values.map(\.key.tag) == ["c"])
        #expect(table.removeValue(forKey: registration("x").key) == nil)
    }

    @Test func updatingReplacesInPlace() {
        var table = RegistrationTable()
        table[registration("a").key] = registration("a")
        var changed = registration("a")
        changed.attempts = 2
        #expect(table.updateValue(changed, forKey: changed.key)?.attempts == 0)
        #expect(table.count == 1 && table[changed.key]?.attempts == 2)
        let touched = table.updateEach { value in
            value.attempts += 1
            return true
        }
        #expect(touched == [changed.key] && table[changed.key]?.attempts == 3)
    }
}
