// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import CBGSyncPlugin

/// A registration's handler options with typed reads. Every read returns nil when the option
/// is absent or of another type, so a handler can tell "missing" from "wrong" with `type`.
///
/// One backing, one set of rules: the options are `Value`s, and every typed read is the
/// BGSyncValue accessor the worker's host table answers the C accessors with (a variant is
/// looked through; `int` takes any integer that fits; `double` also converts integers; …).
/// Inside a worker the values come from the host once per event, each as its type and GVariant
/// text (`option_type`, `option_text`), which read back exactly; tests give them directly.
public struct HandlerOptions {
    private let values: [String: Value]

    public init(_ values: [String: Value] = [:]) {
        self.values = values
    }

    /// Reads every option from the host (valid only during `handle`). An option the host
    /// prints in a form that does not read back is left out (it would be a host bug).
    init(host: UnsafePointer<bgsync_host>, event: OpaquePointer?) {
        var values: [String: Value] = [:]
        let table = host.pointee
        if let count = table.option_count, let name = table.option_name, let type = table.option_type,
            let text = table.option_text
        {
            for index in 0..<count(event) {
                guard let cName = name(event, index), let cType = type(event, cName), let cText = text(event, cName),
                    let value = try? Value.parse(gvariantText: String(cString: cText), as: String(cString: cType))
                else { continue }
                values[String(cString: cName)] = value
            }
        }
        self.values = values
    }

    private func value(_ name: String) -> Value? { values[name]?.unwrappingVariants }

    /// The option names, in byte order.
    public var names: [String] {
        values.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// The option's D-Bus type string ("s", "as", "a{ss}", …), or nil if absent.
    public func type(_ name: String) -> String? { value(name)?.signature }

    /// A string option (s, o or g).
    public func string(_ name: String) -> String? { value(name)?.stringValue }

    /// A string-array option (as).
    public func strings(_ name: String) -> [String]? { value(name)?.stringsValue }

    /// A dictionary option of strings (a{ss}, or a{sv} whose values are strings), as ordered
    /// pairs (a later duplicate key is kept in order; `stringDictionary` keeps the last). An
    /// entry whose value is not a string is left out.
    public func stringPairs(_ name: String) -> [(key: String, value: String)]? {
        value(name)?.stringPairsValue?.compactMap { pair in pair.value.map { (pair.key, $0) } }
    }

    /// A dictionary option of strings (a{ss}, or a{sv} whose values are strings).
    public func stringDictionary(_ name: String) -> [String: String]? {
        stringPairs(name).map { Dictionary($0, uniquingKeysWith: { _, last in last }) }
    }

    /// Any integer option that fits in Int64.
    public func int(_ name: String) -> Int64? { value(name)?.int64Value }

    /// A boolean option (b).
    public func bool(_ name: String) -> Bool? { value(name)?.boolValue }

    /// A double option (d), or any integer option converted.
    public func double(_ name: String) -> Double? { value(name)?.numberValue }

    /// A byte-array option (ay).
    public func bytes(_ name: String) -> [UInt8]? { value(name)?.bytesValue }

    /// Any option printed as GVariant text, for messages and logs.
    public func text(_ name: String) -> String? { value(name)?.gvariantText }
}
