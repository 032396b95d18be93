// SPDX-License-Identifier: Apache-2.0
/// What `bgsyncd.conf` can set. Files are applied in order on top of the built-in defaults, so
/// a later file (say ~/.config over /etc) overrides an earlier one key by key.
public struct AgentConfiguration: Sendable, Equatable {
    public var sync = SyncSettings()
    /// Where registrations.sqlite3 lives; nil: the agent uses $XDG_STATE_HOME/bgsync.
    public var stateDirectory: String?
    /// Where handler plugins are looked for; nil: the agent's defaults.
    public var pluginDirectories: [String]?

    public init() {}
}

/// One thing wrong in a configuration file, pointing at its line.
public struct ConfigurationDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// 1-based.
    public var line: Int
    public var message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\(file):\(line): \(message)" }
}

extension AgentConfiguration {
    /// Every known key as "section.key", in the order of the documentation.
    public static var knownKeys: [String] { ConfigurationKeys.all.map(\.qualifiedName) }

    /// Applies the text of one file on top of `self`. Never fails: unknown sections and keys, bad
    /// values and malformed lines come back as diagnostics (with the file and line), and leave
    /// the setting as it was. An empty value (`key=`) puts a key back to its built-in default.
    public mutating func apply(fileContents: String, path: String) -> [ConfigurationDiagnostic] {
        var diagnostics: [ConfigurationDiagnostic] = []
        func report(_ line: Int, _ message: String) {
            diagnostics.append(ConfigurationDiagnostic(file: path, line: line, message: message))
        }
        // nil before the first header; "" after an unknown header (its keys were reported there).
        var section: String?
        for line in KeyFileLine.parse(fileContents) {
            switch line.content {
            case .section(let name):
                if ConfigurationKeys.sections.contains(name) {
                    section = name
                } else {
                    section = ""
                    report(line.number, ConfigurationKeys.unknownSectionMessage(name))
                }
            case .assignment(let key, let value):
                guard let current = section else {
                    report(line.number, ConfigurationKeys.outsideSectionMessage(key))
                    continue
                }
                guard !current.isEmpty else { continue }
                guard let entry = ConfigurationKeys.entry(section: current, name: key) else {
                    report(line.number, ConfigurationKeys.unknownKeyMessage(key, section: current))
                    continue
                }
                if let problem = entry.apply(&self, value) {
                    report(line.number, problem)
                }
            case .malformed(let text):
                report(line.number, KeyFileLine.malformedMessage(text))
            }
        }
        return diagnostics
    }
}
