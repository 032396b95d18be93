// SPDX-License-Identifier: Apache-2.0
/// The parsers for what identifies a sandbox: Flatpak's `.flatpak-info`, and the names snapd
/// gives a snap's processes (the security tag in its AppArmor label and in its cgroup scope).
/// Pure; the reading of /proc and the bus is in CallerCredentials.
///
/// snapd's forms (snap/naming/validate.go and securitytag.go, sandbox/cgroup/scanning.go):
/// - instance name `NAME` or `NAME_KEY`: NAME 1–40 of `[a-z0-9-]` with a letter, no leading,
///   trailing or doubled '-'; KEY 1–10 of `[a-z0-9]`;
/// - security tag `snap.INSTANCE.APP`, `snap.INSTANCE.hook.HOOK`,
///   `snap.INSTANCE+COMPONENT.hook.HOOK`, `snap.INSTANCE.workload.…`;
/// - AppArmor label: a security tag then ` (enforce)` or ` (complain)`; stacked labels join
///   profiles with `//&`;
/// - cgroup: `snap.INSTANCE.APP-UUID.scope` (older `snap.INSTANCE.APP.UUID.scope`),
///   `snap.INSTANCE.hook.HOOK-UUID.scope`, `snap.INSTANCE.APP.service`.
enum SandboxIdentity {
    /// What a name says about a snap: nothing (not a snap's), the snap instance it belongs to,
    /// or that it looks like a snap's and cannot be read, which must be refused, never trusted.
    enum Snap: Equatable {
        case none
        case instance(String)
        case unrecognised(String)
    }

    /// The app id in a `.flatpak-info` key file: `name=` in the `[Application]` group. Returns
    /// nil when there is no such key (a runtime's sandbox has `[Runtime]` instead).
    static func flatpakAppID(fromInfo text: String) -> String? {
        var group = ""
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                group = String(line.dropFirst().dropLast())
                continue
            }
            guard group == "Application", let equals = line.firstIndex(of: "=") else { continue }
            guard line[..<equals].trimmingWhitespace() == "name" else { continue }
            let value = line[line.index(after: equals)...].trimmingWhitespace()
            return value.isEmpty ? nil : String(value)
        }
        return nil
    }

    /// The snap of a process from `/proc/PID/cgroup`: any path element `snap.….scope` or
    /// `snap.….service` must be a snap's scope or service, or the whole answer is unrecognised.
    static func snap(fromCgroup text: String) -> Snap {
        var found = Snap.none
        for line in text.split(separator: "\n") {
            // hierarchy-ID:controllers:path; the path may itself contain ':'.
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            for element in fields[2].split(separator: "/") where element.hasPrefix("snap.") {
                guard element.hasSuffix(".scope") || element.hasSuffix(".service") else { continue }
                let unit = element.hasSuffix(".scope") ? element.dropLast(6) : element.dropLast(8)
                let this = snap(fromTag: unit, unit: true, whole: element)
                switch (found, this) {
                case (_, .unrecognised): return this
                case (.instance(let a), .instance(let b)) where a != b:
                    return .unrecognised("\(element) (a second snap, \(b), after \(a))")
                case (.none, _): found = this
                default: break
                }
            }
        }
        return found
    }

    /// The snap of a process from its AppArmor label, as the bus gives it (`LinuxSecurityLabel`,
    /// NUL-terminated) or /proc/PID/attr/current shows it: `snap.chat_x.chat (enforce)`.
    static func snap(fromAppArmorLabel label: String) -> Snap {
        var text = Substring(label)
        while text.last == "\0" || text.last == "\n" { text = text.dropLast() }
        if text.hasSuffix(")"), let space = text.lastIndex(of: " ") { text = text[..<space] }
        var found = Snap.none
        for name in stackedProfiles(text) {
            if name.hasPrefix("snap-update-ns.") || name.hasPrefix("snap-confine") {
                return .unrecognised(String(name))  // snapd's own helpers never call us
            }
            guard name.hasPrefix("snap.") else { continue }
            let this = snap(fromTag: name, unit: false, whole: name)
            if case .unrecognised = this { return this }
            if case .instance(let a) = found, this != found { return .unrecognised("\(name) (after \(a))") }
            found = this
        }
        return found
    }

    /// `a//&b` → `a`, `b`: the profiles of a stacked label.
    private static func stackedProfiles(_ label: Substring) -> [Substring] {
        var profiles: [Substring] = []
        var rest = label
        while let range = rest.firstRange(of: "//&") {
            profiles.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        profiles.append(rest)
        return profiles
    }

    /// A security tag (`unit`: a systemd unit name, where the app may carry `-UUID` or `.UUID`).
    private static func snap(fromTag tag: Substring, unit: Bool, whole: Substring) -> Snap {
        let parts = tag.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "snap" else { return .unrecognised(String(whole)) }
        let instance = parts[1].split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)
        guard isInstanceName(instance[0]), instance.count == 1 || isSnapName(instance[1]) else {
            return .unrecognised(String(whole))
        }
        let rest = parts[2...]
        let valid: Bool
        switch rest.first {
        case "hook"?:
            valid =
                rest.count >= 2 && isHookName(unit ? beforeUUID(rest[rest.startIndex + 1]) : rest.last!)
                && (rest.count == 2 || unit)
        case "workload"?:
            valid = rest.count >= 2 && !rest.last!.isEmpty
        default:
            // APP, APP-UUID, or APP.UUID in a unit name.
            guard let app = rest.first else { return .unrecognised(String(whole)) }
            valid = isAppName(unit ? beforeUUID(app) : app) && (rest.count == 1 || unit) && instance.count == 1
        }
        return valid ? .instance(String(instance[0])) : .unrecognised(String(whole))
    }

    /// `APP-1d2c…` → `APP`: snapd appends a UUID to a scope's app or hook name after a '-'.
    /// Names may contain '-' themselves, so only a final part of hex digits and '-' is cut.
    private static func beforeUUID(_ name: Substring) -> Substring {
        var text = name
        while let dash = text.lastIndex(of: "-") {
            let tail = text[text.index(after: dash)...]
            guard !tail.isEmpty, tail.utf8.allSatisfy({ isHex($0) }) else { break }
            text = text[..<dash]
        }
        return text
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte)
    }

    static func isInstanceName(_ name: Substring) -> Bool {
        let parts = name.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count <= 2, isSnapName(parts[0]) else { return false }
        guard parts.count == 2 else { return true }
        let key = parts[1]
        return (1...10).contains(key.utf8.count) && key.utf8.allSatisfy { isLower($0) || isDigit($0) }
    }

    /// Snap names: 1–40 of lowercase letters, digits and '-', at least one letter, no '-' at
    /// either end or twice in a row.
    static func isSnapName(_ name: Substring) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...40).contains(bytes.count), bytes.contains(where: isLower),
            bytes.allSatisfy({ isLower($0) || isDigit($0) || $0 == 0x2d }),
            bytes.first != 0x2d, bytes.last != 0x2d, !name.contains("--")
        else { return false }
        return true
    }

    /// App names: letters, digits and single inner '-'.
    private static func isAppName(_ name: Substring) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.first != 0x2d && bytes.last != 0x2d && !name.contains("--")
            && bytes.allSatisfy { isLower($0) || isDigit($0) || (0x41...0x5a).contains($0) || $0 == 0x2d }
    }

    /// Hook names: a lowercase letter, then lowercase letters, digits and single inner '-'.
    private static func isHookName(_ name: Substring) -> Bool {
        guard let first = name.utf8.first, isLower(first) else { return false }
        return isAppName(name) && !name.utf8.contains(where: { (0x41...0x5a).contains($0) })
    }

    private static func isLower(_ byte: UInt8) -> Bool { (0x61...0x7a).contains(byte) }
    private static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" || first == "\r" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" || last == "\r" { text = text.dropLast() }
        return text
    }
}
