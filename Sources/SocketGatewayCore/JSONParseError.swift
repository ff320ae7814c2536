/// Why a JSON text could not be parsed, and where.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure. New codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, Hashable {
            case unexpectedEndOfInput
            case unexpectedCharacter
            case invalidNumber
            case invalidEscape
            case invalidUnicodeEscape
            case controlCharacterInString
            case invalidUTF8
            case depthLimitExceeded
            case trailingData
        }

        let base: Base

        init(_ base: Base) {
            self.base = base
        }

        /// The text ended where more was expected (a truncated document).
        public static let unexpectedEndOfInput = Code(.unexpectedEndOfInput)
        /// A byte that cannot start or continue what was expected here.
        public static let unexpectedCharacter = Code(.unexpectedCharacter)
        /// A malformed number: leading zero, missing digits after `.`, `e` or `-`.
        public static let invalidNumber = Code(.invalidNumber)
        /// A backslash followed by something other than `" \ / b f n r t u`.
        public static let invalidEscape = Code(.invalidEscape)
        /// `\u` not followed by four hexadecimal digits.
        public static let invalidUnicodeEscape = Code(.invalidUnicodeEscape)
        /// A raw control character (below U+0020) inside a string.
        public static let controlCharacterInString = Code(.controlCharacterInString)
        /// Bytes inside a string that are not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// Arrays and objects nested deeper than the parser's `maxDepth`.
        public static let depthLimitExceeded = Code(.depthLimitExceeded)
        /// Something other than whitespace after the complete value.
        public static let trailingData = Code(.trailingData)

        /// The code's name, e.g. `unexpectedEndOfInput`.
        public var description: String { self.base.rawValue }
    }

    /// The kind of failure.
    public var code: Code
    /// The byte offset in the input where the problem was found.
    public var offset: Int
    /// What was expected and what was found, for logs.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - offset: The byte offset in the input.
    ///   - message: What was expected and what was found.
    public init(code: Code, offset: Int, message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    /// One line for logs: code, byte offset and message.
    public var description: String {
        "invalid JSON (\(self.code)) at byte \(self.offset): \(self.message)"
    }
}
