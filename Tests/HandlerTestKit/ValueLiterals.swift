// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

// Short option literals for handler tests: `["url": "http://…", "command": ["true"],
// "headers": ["A": "b"], "count": 7]` (s, as, a{ss} in the order given, x, b, d).
extension Value: ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral,
    ExpressibleByUnicodeScalarLiteral, ExpressibleByExtendedGraphemeClusterLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: String...) { self = .stringArray(elements) }
    public init(dictionaryLiteral elements: (String, String)...) {
        self = .dictionary(
            keySignature: "s", valueSignature: "s",
            elements.map { DictEntry(key: .string($0.0), value: .string($0.1)) })
    }
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
}
