/// A handler option given in Swift (tests, or a host written in Swift). Literals make test
/// options short: `["url": "http://…", "command": ["true"], "headers": ["A": "b"]]`.
public enum OptionValue: Equatable, Sendable {
    case string(String)
    case strings([String])
    /// A dictionary with string keys and values (a{ss}); entries in the order given.
    case dictionary([KeyValue])
    case int(Int64)
    case bool(Bool)
    case double(Double)
    case bytes([UInt8])

    public struct KeyValue: Equatable, Sendable {
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    /// The D-Bus type string, as the host reports it.
    public var typeString: String {
        switch self {
        case .string: return "s"
        case .strings: return "as"
        case .dictionary: return "a{ss}"
        case .int: return "x"
        case .bool: return "b"
        case .double: return "d"
        case .bytes: return "ay"
        }
    }

    /// Roughly GVariant text, as `gdbus` prints values.
    public var text: String {
        func quote(_ s: String) -> String {
            "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
        switch self {
        case .string(let s): return quote(s)
        case .strings(let items): return "[" + items.map(quote).joined(separator: ", ") + "]"
        case .dictionary(let entries):
            return "{" + entries.map { quote($0.key) + ": " + quote($0.value) }.joined(separator: ", ") + "}"
        case .int(let n): return String(n)
        case .bool(let b): return b ? "true" : "false"
        case .double(let d): return String(d)
        case .bytes(let bytes): return "[" + bytes.map { "byte 0x" + String($0, radix: 16) }.joined(separator: ", ") + "]"
        }
    }
}

extension OptionValue: ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: String...) { self = .strings(elements) }
    public init(dictionaryLiteral elements: (String, String)...) {
        self = .dictionary(elements.map { KeyValue($0.0, $0.1) })
    }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
}
