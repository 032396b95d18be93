// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

/// A message of the worker protocol: one kind byte, then its fields in `WireWriter`'s form.
public protocol WireMessage: Sendable {
    /// The payload's first byte (an ASCII letter, to be readable in a hex dump).
    static var kind: UInt8 { get }
    init(from reader: inout WireReader) throws(WireError)
    func encode(to writer: inout WireWriter)
}

/// The binary form of the worker protocol: fixed-width integers little-endian (both ends are
/// the same machine, the same build), strings and arrays as a 32-bit count then the items.
/// No Foundation: the worker links this, not JSON (see Package.swift for what that saved).
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() { bytes.reserveCapacity(256) }

    public mutating func u8(_ value: UInt8) { bytes.append(value) }
    public mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }
    public mutating func u16(_ value: UInt16) { littleEndian(value) }
    public mutating func u32(_ value: UInt32) { littleEndian(value) }
    public mutating func u64(_ value: UInt64) { littleEndian(value) }
    public mutating func double(_ value: Double) { littleEndian(value.bitPattern) }

    public mutating func count(_ value: Int) { u32(UInt32(truncatingIfNeeded: value)) }

    public mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            count(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func optionalDouble(_ value: Double?) {
        bool(value != nil)
        if let value { double(value) }
    }

    public mutating func optionalString(_ value: String?) {
        bool(value != nil)
        if let value { string(value) }
    }

    private mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Room for the frame header, filled in by `finishFrame`.
    mutating func reserveHeader() { bytes.append(contentsOf: [0, 0, 0, 0]) }

    mutating func finishFrame() throws(WireError) -> [UInt8] {
        let length = bytes.count - WireProtocol.headerBytes
        guard length <= WireProtocol.maxFrameBytes else {
            throw WireError(
                "A message of \(length) bytes is larger than the \(WireProtocol.maxFrameBytes)-byte frame limit.")
        }
        let value = UInt32(length)
        bytes[0] = UInt8(value >> 24)
        bytes[1] = UInt8((value >> 16) & 0xFF)
        bytes[2] = UInt8((value >> 8) & 0xFF)
        bytes[3] = UInt8(value & 0xFF)
        return bytes
    }
}

/// Reads `WireWriter`'s form, checking every length against the bytes left before it is used,
/// so a short or hostile payload is an error, never a crash or a huge allocation.
public struct WireReader: Sendable {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset == bytes.count }
    public var remaining: Int { bytes.count - offset }

    public mutating func u8() throws(WireError) -> UInt8 {
        guard offset < bytes.count else { throw WireError("the message ends early") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func bool() throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let other: throw WireError("\(other) is not a boolean")
        }
    }

    public mutating func u16() throws(WireError) -> UInt16 { try littleEndian() }
    public mutating func u32() throws(WireError) -> UInt32 { try littleEndian() }
    public mutating func u64() throws(WireError) -> UInt64 { try littleEndian() }
    public mutating func double() throws(WireError) -> Double { Double(bitPattern: try u64()) }

    /// A count of items at least `minimumItemBytes` long each: more than the bytes left could
    /// hold is an error before anything is allocated for them.
    public mutating func count(minimumItemBytes: Int = 1) throws(WireError) -> Int {
        let value = Int(try u32())
        guard value <= remaining / max(1, minimumItemBytes) else {
            throw WireError("a count of \(value) is more than the message holds")
        }
        return value
    }

    /// A string of at most `maxBytes` bytes of UTF-8 (invalid sequences replaced).
    public mutating func string(maxBytes: Int = .max) throws(WireError) -> String {
        let length = try count()
        guard length <= maxBytes else { throw WireError("a text of \(length) bytes, over its \(maxBytes)-byte limit") }
        defer { offset += length }
        return String(decoding: bytes[offset..<(offset + length)], as: UTF8.self)
    }

    public mutating func byteArray() throws(WireError) -> [UInt8] {
        let length = try count()
        defer { offset += length }
        return Array(bytes[offset..<(offset + length)])
    }

    public mutating func optionalDouble() throws(WireError) -> Double? { try bool() ? try double() : nil }
    public mutating func optionalString() throws(WireError) -> String? { try bool() ? try string() : nil }

    private mutating func littleEndian<T: FixedWidthInteger>() throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw WireError("the message ends early") }
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { target in
            bytes.withUnsafeBytes { source in
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + size)]))
            }
        }
        offset += size
        return T(littleEndian: value)
    }
}

// Values: one type byte (the D-Bus type code; `Y` for the compact `ay`), then the content.
// Containers carry their element signatures, so an empty array keeps its type.
extension WireWriter {
    public mutating func value(_ value: Value) {
        u8(Self.typeCode(value))
        switch value {
        case .byte(let v): u8(v)
        case .bool(let v): bool(v)
        case .int16(let v): u16(UInt16(bitPattern: v))
        case .uint16(let v): u16(v)
        case .int32(let v): u32(UInt32(bitPattern: v))
        case .uint32(let v): u32(v)
        case .int64(let v): u64(UInt64(bitPattern: v))
        case .uint64(let v): u64(v)
        case .double(let v): double(v)
        case .string(let v), .objectPath(let v), .signature(let v): string(v)
        case .bytes(let v):
            count(v.count)
            bytes.append(contentsOf: v)
        case .array(let element, let items):
            string(element)
            count(items.count)
            for item in items { self.value(item) }
        case .dictionary(let key, let valueSignature, let entries):
            string(key)
            string(valueSignature)
            count(entries.count)
            for entry in entries {
                self.value(entry.key)
                self.value(entry.value)
            }
        case .structure(let fields):
            count(fields.count)
            for field in fields { self.value(field) }
        case .variant(let inner):
            self.value(inner)
        }
    }

    static func typeCode(_ value: Value) -> UInt8 {
        switch value {
        case .byte: UInt8(ascii: "y")
        case .bool: UInt8(ascii: "b")
        case .int16: UInt8(ascii: "n")
        case .uint16: UInt8(ascii: "q")
        case .int32: UInt8(ascii: "i")
        case .uint32: UInt8(ascii: "u")
        case .int64: UInt8(ascii: "x")
        case .uint64: UInt8(ascii: "t")
        case .double: UInt8(ascii: "d")
        case .string: UInt8(ascii: "s")
        case .objectPath: UInt8(ascii: "o")
        case .signature: UInt8(ascii: "g")
        case .bytes: UInt8(ascii: "Y")
        case .array: UInt8(ascii: "a")
        case .dictionary: UInt8(ascii: "e")
        case .structure: UInt8(ascii: "r")
        case .variant: UInt8(ascii: "v")
        }
    }

    public mutating func options(_ options: [String: Value]) {
        count(options.count)
        for (name, value) in options {
            string(name)
            self.value(value)
        }
    }
}

extension WireReader {
    /// D-Bus's own limit on nesting (32 arrays and 32 structures); a deeper value is a broken peer.
    public static let maxValueDepth = 64

    public mutating func value(depth: Int = 0) throws(WireError) -> Value {
        guard depth <= Self.maxValueDepth else {
            throw WireError("a value nested more than \(Self.maxValueDepth) deep")
        }
        let code = try u8()
        switch code {
        case UInt8(ascii: "y"): return .byte(try u8())
        case UInt8(ascii: "b"): return .bool(try bool())
        case UInt8(ascii: "n"): return .int16(Int16(bitPattern: try u16()))
        case UInt8(ascii: "q"): return .uint16(try u16())
        case UInt8(ascii: "i"): return .int32(Int32(bitPattern: try u32()))
        case UInt8(ascii: "u"): return .uint32(try u32())
        case UInt8(ascii: "x"): return .int64(Int64(bitPattern: try u64()))
        case UInt8(ascii: "t"): return .uint64(try u64())
        case UInt8(ascii: "d"): return .double(try double())
        case UInt8(ascii: "s"): return .string(try string())
        case UInt8(ascii: "o"): return .objectPath(try string())
        case UInt8(ascii: "g"): return .signature(try string())
        case UInt8(ascii: "Y"): return .bytes(try byteArray())
        case UInt8(ascii: "a"):
            let element = try string()
            let count = try count(minimumItemBytes: 2)
            var items: [Value] = []
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try value(depth: depth + 1)) }
            return .array(elementSignature: element, items)
        case UInt8(ascii: "e"):
            let key = try string()
            let valueSignature = try string()
            let count = try count(minimumItemBytes: 4)
            var entries: [Value.DictEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let entryKey = try value(depth: depth + 1)
                entries.append(Value.DictEntry(key: entryKey, value: try value(depth: depth + 1)))
            }
            return .dictionary(keySignature: key, valueSignature: valueSignature, entries)
        case UInt8(ascii: "r"):
            let count = try count(minimumItemBytes: 2)
            var fields: [Value] = []
            fields.reserveCapacity(count)
            for _ in 0..<count { fields.append(try value(depth: depth + 1)) }
            return .structure(fields)
        case UInt8(ascii: "v"):
            return .variant(try value(depth: depth + 1))
        default:
            throw WireError("\(code) is not a value type")
        }
    }

    public mutating func options() throws(WireError) -> [String: Value] {
        let count = try count(minimumItemBytes: 6)
        var options: [String: Value] = [:]
        options.reserveCapacity(count)
        for _ in 0..<count {
            let name = try string()
            options[name] = try value()
        }
        return options
    }
}
