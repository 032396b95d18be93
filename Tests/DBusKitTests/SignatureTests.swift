// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import Testing

@testable import DBusKit

/// BGSyncValue's pure signature rules are libdbus's: checked on every short signature over the
/// type alphabet and on nesting at and past the limits.
@Suite struct SignatureTests {
    static let alphabet = Array("ybnqiuxtdsogvha(){}")

    static func all(upTo length: Int) -> [String] {
        var level = [""]
        var result = [""]
        for _ in 0..<length {
            level = level.flatMap { prefix in alphabet.map { prefix + String($0) } }
            result += level
        }
        return result
    }

    @Test func pureRulesAgreeWithLibdbus() {
        var signatures = Self.all(upTo: 4)
        for n in 30...34 {
            signatures.append(String(repeating: "a", count: n) + "i")
            signatures.append(String(repeating: "(", count: n) + "i" + String(repeating: ")", count: n))
        }
        var checked = 0
        for signature in signatures {
            checked += 1
            #expect(TypeSignature.isValid(signature) == DBusSignature.isValid(signature), "\(signature)")
            #expect(
                TypeSignature.isSingleCompleteType(signature) == DBusSignature.isSingleCompleteType(signature),
                "\(signature)")
        }
        #expect(checked > 100_000)
    }

    /// Where libdbus's signature check is laxer than the specification (it counts only arrays
    /// nested without a basic type between them), the pure rule keeps the specification's
    /// limit: 32 nested arrays.
    @Test func arraysNestedThroughDictionariesStopAt32() {
        let deepest = String(repeating: "a{sa", count: 16) + "v" + String(repeating: "}", count: 16)  // 32 arrays
        let deeper = String(repeating: "a{sa", count: 17) + "v" + String(repeating: "}", count: 17)  // 34 arrays
        #expect(TypeSignature.isSingleCompleteType(deepest))
        #expect(!TypeSignature.isSingleCompleteType(deeper) && DBusSignature.isSingleCompleteType(deeper))
    }

    @Test(arguments: ["/", "/a", "/a/b_1", "", "a", "/a/", "//", "/a//b", "/a-b", "/é"])
    func objectPathsAgreeWithLibdbus(path: String) {
        #expect(TypeSignature.isValidObjectPath(path) == MessageCoding.isValidObjectPath(path))
    }
}
