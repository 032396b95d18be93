// SPDX-License-Identifier: Apache-2.0
import BGSyncValue

/// The parts of a D-Bus match rule used to route received signals to their handler.
/// The bus does the real filtering; this only tells which subscription a signal belongs to.
struct MatchRule {
    private(set) var fields: [String: String] = [:]

    var sender: String? { fields["sender"] }

    init(_ rule: String) throws(DBusError) {
        var chars = Array(rule)[...]
        while !chars.isEmpty {
            guard let equals = chars.firstIndex(of: "=") else {
                throw .invalidArgs("match rule '\(rule)': expected key='value'")
            }
            let key = String(chars[chars.startIndex..<equals]).trimmingSpaces
            chars = chars[(equals + 1)...]
            var value = ""
            // Values are quoted with ' and may contain \' escapes; unquoted values run to a comma.
            var quoted = false
            while let c = chars.first {
                chars = chars.dropFirst()
                if c == "'" {
                    quoted.toggle()
                    continue
                }
                if c == "\\", !quoted, chars.first == "'" {
                    value.append("'")
                    chars = chars.dropFirst()
                    continue
                }
                if c == ",", !quoted { break }
                value.append(c)
            }
            guard !quoted else { throw .invalidArgs("match rule '\(rule)': unterminated quote") }
            guard !key.isEmpty else { throw .invalidArgs("match rule '\(rule)': empty key") }
            fields[key] = value
        }
    }

    func matchesHeader(sender: String, path: String, interface: String, member: String, owners: [String: String])
        -> Bool
    {
        if let type = fields["type"], type != "signal" { return false }
        if let wanted = fields["sender"] {
            let owner = wanted.hasPrefix(":") || wanted == "org.freedesktop.DBus" ? wanted : owners[wanted]
            guard owner == sender else { return false }
        }
        if let wanted = fields["interface"], wanted != interface { return false }
        if let wanted = fields["member"], wanted != member { return false }
        if let wanted = fields["path"], wanted != path { return false }
        if let namespace = fields["path_namespace"],
            !(namespace == "/" || path == namespace || path.hasPrefix(namespace + "/"))
        {
            return false
        }
        return true
    }

    func matchesArguments(_ arguments: [Value]) -> Bool {
        for (key, wanted) in fields where key.hasPrefix("arg") {
            guard let index = Int(key.dropFirst(3)) else { continue }  // argNpath, arg0namespace: bus-side only
            guard index < arguments.count, case .string(let value) = arguments[index], value == wanted else {
                return false
            }
        }
        return true
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
