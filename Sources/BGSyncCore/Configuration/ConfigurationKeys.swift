// SPDX-License-Identifier: Apache-2.0
/// The table of `bgsyncd.conf` keys, in the manner of systemd-timesyncd's gperf table: each
/// "section.key" maps to a setter that parses the value, checks it and sets one field.
struct ConfigurationKey: Sendable {
    var section: String
    var name: String
    /// Sets the field from the value text; returns a message (and leaves the field) if the value
    /// is not acceptable. An empty value restores the built-in default.
    var apply: @Sendable (inout AgentConfiguration, String) -> String?

    var qualifiedName: String { section + "." + name }
}

enum ConfigurationKeys {
    static let all: [ConfigurationKey] = [
        ConfigurationKey(section: "sync", name: "max-attempts") { configuration, text in
            guard !text.isEmpty else {
                configuration.sync.maxAttempts = SyncSettings().maxAttempts
                return nil
            }
            let limit = configuration.sync.maxAttemptsLimit
            guard let value = ConfigurationValues.integer(text), value >= 1, value <= Int(limit) else {
                return "max-attempts must be a whole number from 1 to \(limit), \(ConfigurationValues.got(text))"
            }
            configuration.sync.maxAttempts = UInt32(value)
            return nil
        },
        seconds(
            "sync", "retry-initial-delay", \.sync.retryInitialDelay,
            rule: "a duration in seconds > 0, such as 300, 0.2 or 5min"
        ) { $0 > 0 },
        number("sync", "retry-factor", \.sync.retryFactor, rule: "a number ≥ 1") { $0 >= 1 },
        number("sync", "retry-jitter", \.sync.retryJitter, rule: "a fraction from 0 to 1 (0 turns jitter off)") {
            $0 >= 0 && $0 <= 1
        },
        seconds("sync", "event-timeout", \.sync.eventTimeout, rule: "a duration in seconds > 0, such as 180 or 3min") {
            $0 > 0
        },
        seconds(
            "sync", "min-periodic-interval", \.sync.minPeriodicInterval,
            rule: "a duration in seconds > 0, such as 900 or 15min"
        ) { $0 > 0 },
        seconds("sync", "event-stall-timeout", \.sync.eventStallTimeout, rule: "a duration in seconds > 0") {
            $0 > 0
        },
        seconds("sync", "event-ceiling", \.sync.eventCeiling, rule: "a duration in seconds > 0, such as 3600 or 1h") {
            $0 > 0
        },
        seconds("sync", "interrupt-grace-period", \.sync.interruptGracePeriod, rule: "a duration in seconds ≥ 0") {
            $0 >= 0
        },
        count("limits", "registrations-per-app", \.sync.registrationsPerApp),
        count("limits", "concurrent-events", \.sync.concurrentEvents),
        number("power", "battery-low-threshold", \.sync.batteryLowThreshold, rule: "a percentage from 0 to 100") {
            $0 >= 0 && $0 <= 100
        },
        ConfigurationKey(section: "paths", name: "state-dir") { configuration, text in
            guard !text.isEmpty else {
                configuration.stateDirectory = nil
                return nil
            }
            guard ConfigurationValues.isAbsolutePath(text) else {
                return
                    "state-dir must be an absolute path (starting with /; ~ and $VARIABLES are not expanded), \(ConfigurationValues.got(text))"
            }
            configuration.stateDirectory = text
            return nil
        },
        ConfigurationKey(section: "paths", name: "plugin-dirs") { configuration, text in
            let directories = ConfigurationValues.list(text)
            guard !directories.isEmpty else {
                configuration.pluginDirectories = nil
                return nil
            }
            if let relative = directories.first(where: { !ConfigurationValues.isAbsolutePath($0) }) {
                return
                    "plugin-dirs must be absolute paths separated by ';' (~ and $VARIABLES are not expanded); '\(relative)' is not absolute"
            }
            configuration.pluginDirectories = directories
            return nil
        },
    ]

    static let sections: [String] = all.reduce(into: []) { sections, key in
        if !sections.contains(key.section) { sections.append(key.section) }
    }

    private static let byName: [String: ConfigurationKey] = Dictionary(
        uniqueKeysWithValues: all.map { ($0.qualifiedName, $0) })

    static func entry(section: String, name: String) -> ConfigurationKey? { byName[section + "." + name] }

    // MARK: - Messages

    static func unknownSectionMessage(_ name: String) -> String {
        let known = sections.map { "[\($0)]" }.joined(separator: ", ")
        if let suggestion = Suggestion.closest(to: name, among: sections) {
            return "unknown section [\(name)], its keys are ignored; did you mean [\(suggestion)]?"
        }
        return "unknown section [\(name)], its keys are ignored; the sections are \(known)"
    }

    static func unknownKeyMessage(_ key: String, section: String) -> String {
        let here = all.filter { $0.section == section }.map(\.name)
        if let suggestion = Suggestion.closest(to: key, among: here) {
            return "unknown key '\(key)' in [\(section)]; did you mean '\(suggestion)'?"
        }
        if let elsewhere = all.first(where: { $0.name == key }) {
            return "unknown key '\(key)' in [\(section)]; it belongs in [\(elsewhere.section)]"
        }
        return "unknown key '\(key)' in [\(section)]; the keys there are \(here.joined(separator: ", "))"
    }

    static func outsideSectionMessage(_ key: String) -> String {
        if let entry = all.first(where: { $0.name == key }) {
            return "'\(key)' comes before any section header; put it under [\(entry.section)]"
        }
        return "'\(key)' comes before any section header; keys go under [sync], [limits], [power] or [paths]"
    }

    // MARK: - Setter builders

    private static func number(
        _ section: String, _ name: String, _ field: WritableKeyPath<AgentConfiguration, Double> & Sendable,
        rule: String, valid: @escaping @Sendable (Double) -> Bool
    ) -> ConfigurationKey {
        real(section, name, field, parse: ConfigurationValues.number, rule: rule, valid: valid)
    }

    private static func seconds(
        _ section: String, _ name: String, _ field: WritableKeyPath<AgentConfiguration, Double> & Sendable,
        rule: String, valid: @escaping @Sendable (Double) -> Bool
    ) -> ConfigurationKey {
        real(section, name, field, parse: ConfigurationValues.seconds, rule: rule, valid: valid)
    }

    /// A number read by `parse`; an empty value puts the default back.
    private static func real(
        _ section: String, _ name: String, _ field: WritableKeyPath<AgentConfiguration, Double> & Sendable,
        parse: @escaping @Sendable (String) -> Double?, rule: String, valid: @escaping @Sendable (Double) -> Bool
    ) -> ConfigurationKey {
        ConfigurationKey(section: section, name: name) { configuration, text in
            guard !text.isEmpty else {
                configuration[keyPath: field] = AgentConfiguration()[keyPath: field]
                return nil
            }
            guard let value = parse(text), valid(value) else {
                return "\(name) must be \(rule), \(ConfigurationValues.got(text))"
            }
            configuration[keyPath: field] = value
            return nil
        }
    }

    /// A positive whole number.
    private static func count(
        _ section: String, _ name: String, _ field: WritableKeyPath<AgentConfiguration, Int> & Sendable
    ) -> ConfigurationKey {
        ConfigurationKey(section: section, name: name) { configuration, text in
            guard !text.isEmpty else {
                configuration[keyPath: field] = AgentConfiguration()[keyPath: field]
                return nil
            }
            guard let value = ConfigurationValues.integer(text), value >= 1 else {
                return "\(name) must be a whole number ≥ 1, \(ConfigurationValues.got(text))"
            }
            configuration[keyPath: field] = value
            return nil
        }
    }
}
