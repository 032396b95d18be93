// SPDX-License-Identifier: Apache-2.0
/// A registration's options that the handler cannot use. Retrying cannot help, so handlers
/// turn it into `.failure(error.message)`.
public struct OptionError: Error, Equatable, Sendable {
    public enum Code: String, Sendable {
        case missing = "missing-option"
        case wrongType = "wrong-option-type"
        case invalid = "invalid-option"
    }

    public var code: Code
    public var option: String
    public var message: String

    public init(_ code: Code, option: String, _ message: String) {
        self.code = code
        self.option = option
        self.message = message
    }
}

extension HandlerOptions {
    /// A string option that must be present and non-empty.
    public func requireString(_ name: String) throws(OptionError) -> String {
        guard let actual = type(name) else {
            throw OptionError(
                .missing, option: name, "option '\(name)' is missing: pass it as a string in Register's options")
        }
        guard let value = string(name) else {
            throw OptionError(.wrongType, option: name, "option '\(name)' must be a string (s), not \(actual)")
        }
        guard !value.isEmpty else {
            throw OptionError(.invalid, option: name, "option '\(name)' is empty")
        }
        return value
    }

    /// A string option holding an absolute path (the worker's working directory is no
    /// business of the app's).
    public func requirePath(_ name: String) throws(OptionError) -> String {
        let path = try requireString(name)
        guard path.hasPrefix("/") else {
            throw OptionError(.invalid, option: name, "option '\(name)' must be an absolute path, not '\(path)'")
        }
        return path
    }

    /// A string option with a default when absent; present with another type is an error.
    public func optionalString(_ name: String) throws(OptionError) -> String? {
        guard let actual = type(name) else { return nil }
        guard let value = string(name) else {
            throw OptionError(.wrongType, option: name, "option '\(name)' must be a string (s), not \(actual)")
        }
        return value
    }

    /// A string-dictionary option (a{ss}), empty when absent.
    public func optionalStringPairs(_ name: String) throws(OptionError) -> [(key: String, value: String)] {
        guard let actual = type(name) else { return [] }
        guard let pairs = stringPairs(name) else {
            throw OptionError(
                .wrongType, option: name, "option '\(name)' must be a dictionary of strings (a{ss}), not \(actual)")
        }
        return pairs
    }
}
