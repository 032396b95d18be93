import CBGSyncPlugin

/// A registration's handler options with typed reads. Every read returns nil when the option
/// is absent or of another type, so a handler can tell "missing" from "wrong" with `type`.
///
/// Backed by the C host's accessors inside a worker (valid only during `handle`), or by a
/// plain Swift dictionary in tests.
public struct HandlerOptions {
    private enum Backing {
        case host(UnsafePointer<bgsync_host>, OpaquePointer?)
        case values([String: OptionValue])
    }

    private let backing: Backing

    public init(_ values: [String: OptionValue] = [:]) {
        backing = .values(values)
    }

    init(host: UnsafePointer<bgsync_host>, event: OpaquePointer?) {
        backing = .host(host, event)
    }

    /// The option names, in byte order.
    public var names: [String] {
        switch backing {
        case .values(let values):
            return values.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        case .host(let host, let event):
            guard let count = host.pointee.option_count, let name = host.pointee.option_name else { return [] }
            return (0..<count(event)).compactMap { name(event, $0).map { String(cString: $0) } }
        }
    }

    /// The option's D-Bus type string ("s", "as", "a{ss}", …), or nil if absent.
    public func type(_ name: String) -> String? {
        switch backing {
        case .values(let values): return values[name]?.typeString
        case .host(let host, let event): return host.pointee.option_type?(event, name).map { String(cString: $0) }
        }
    }

    /// A string option (s, o or g).
    public func string(_ name: String) -> String? {
        switch backing {
        case .values(let values):
            if case .string(let s) = values[name] { return s }
            return nil
        case .host(let host, let event):
            return host.pointee.option_string?(event, name).map { String(cString: $0) }
        }
    }

    /// A string-array option (as).
    public func strings(_ name: String) -> [String]? {
        switch backing {
        case .values(let values):
            if case .strings(let items) = values[name] { return items }
            return nil
        case .host(let host, let event):
            guard type(name) == "as", let length = host.pointee.option_strv_length,
                let item = host.pointee.option_strv_item
            else { return nil }
            return (0..<length(event, name)).map { index in item(event, name, index).map { String(cString: $0) } ?? "" }
        }
    }

    /// A dictionary option of strings (a{ss}, or a{sv} whose values are strings), as ordered
    /// pairs (a later duplicate key is kept in order; `stringDictionary` keeps the last).
    public func stringPairs(_ name: String) -> [(key: String, value: String)]? {
        switch backing {
        case .values(let values):
            if case .dictionary(let entries) = values[name] { return entries.map { ($0.key, $0.value) } }
            return nil
        case .host(let host, let event):
            guard let type = type(name), type == "a{ss}" || type == "a{sv}",
                let length = host.pointee.option_dict_length, let key = host.pointee.option_dict_key,
                let value = host.pointee.option_dict_value
            else { return nil }
            return (0..<length(event, name)).compactMap { index in
                guard let k = key(event, name, index), let v = value(event, name, index) else { return nil }
                return (String(cString: k), String(cString: v))
            }
        }
    }

    /// A dictionary option of strings (a{ss}, or a{sv} whose values are strings).
    public func stringDictionary(_ name: String) -> [String: String]? {
        stringPairs(name).map { Dictionary($0, uniquingKeysWith: { _, last in last }) }
    }

    /// Any integer option that fits in Int64.
    public func int(_ name: String) -> Int64? {
        switch backing {
        case .values(let values):
            if case .int(let n) = values[name] { return n }
            return nil
        case .host(let host, let event):
            var value: Int64 = 0
            return host.pointee.option_int?(event, name, &value) == true ? value : nil
        }
    }

    /// A boolean option (b).
    public func bool(_ name: String) -> Bool? {
        switch backing {
        case .values(let values):
            if case .bool(let b) = values[name] { return b }
            return nil
        case .host(let host, let event):
            var value = false
            return host.pointee.option_bool?(event, name, &value) == true ? value : nil
        }
    }

    /// A double option (d), or any integer option converted.
    public func double(_ name: String) -> Double? {
        switch backing {
        case .values(let values):
            switch values[name] {
            case .double(let d): return d
            case .int(let n): return Double(n)
            default: return nil
            }
        case .host(let host, let event):
            var value = 0.0
            return host.pointee.option_double?(event, name, &value) == true ? value : nil
        }
    }

    /// A byte-array option (ay).
    public func bytes(_ name: String) -> [UInt8]? {
        switch backing {
        case .values(let values):
            if case .bytes(let b) = values[name] { return b }
            return nil
        case .host(let host, let event):
            var length = 0
            guard let pointer = host.pointee.option_bytes?(event, name, &length) else { return nil }
            return Array(UnsafeRawBufferPointer(start: pointer, count: length))
        }
    }

    /// Any option printed as GVariant text, for messages and logs.
    public func text(_ name: String) -> String? {
        switch backing {
        case .values(let values): return values[name]?.text
        case .host(let host, let event): return host.pointee.option_text?(event, name).map { String(cString: $0) }
        }
    }
}
