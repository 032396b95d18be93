// SPDX-License-Identifier: Apache-2.0
/// Why text or bytes do not make a value.
public struct ValueError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The text is not GVariant text (a stray character, an unterminated string).
        case syntax
        /// The text is well formed but not of the type asked for, or of no type D-Bus carries.
        case type
        /// A number does not fit its type; a string is not a valid object path or signature.
        case range
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
