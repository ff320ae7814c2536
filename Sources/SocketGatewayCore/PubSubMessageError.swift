/// Why a pub/sub message could not be read. The receiver logs it and skips the message.
package struct PubSubMessageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem this is. New codes may be added.
    package struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case notJSON
            case notAnObject
            case missingMethod
            case unknownMethod
            case missingField
            case wrongType
            case invalidBinary
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The bytes are not JSON.
        package static let notJSON = Code(.notJSON)
        /// The JSON is not an object.
        package static let notAnObject = Code(.notAnObject)
        /// The object has no string `method`.
        package static let missingMethod = Code(.missingMethod)
        /// `method` is not one python-socketio sends.
        package static let unknownMethod = Code(.unknownMethod)
        /// A field this method needs is missing.
        package static let missingField = Code(.missingField)
        /// A field has the wrong JSON type.
        package static let wrongType = Code(.wrongType)
        /// A binary emit's attachments are not base64, or its placeholders do not match them.
        package static let invalidBinary = Code(.invalidBinary)

        /// A one-line rendering for logs.
        package var description: String { self.base.rawValue }
    }

    /// What kind of problem this is.
    package var code: Code
    /// What is wrong, in words.
    package var message: String
    /// The message's `method`, when it was read.
    package var method: String?
    /// The field at fault, when there is one.
    package var field: String?
    /// The start of the offending bytes (at most 200 characters), for logs.
    package var excerpt: String

    /// Creates an error.
    package init(code: Code, message: String, method: String? = nil, field: String? = nil, excerpt: String) {
        self.code = code
        self.message = message
        self.method = method
        self.field = field
        self.excerpt = excerpt
    }

    /// A one-line rendering for logs.
    package var description: String {
        var text = "PubSubMessageError(\(self.code)): \(self.message)"
        if let method = self.method { text += " [method \(method)]" }
        if let field = self.field { text += " [field \(field)]" }
        text += " [message \(self.excerpt)]"
        return text
    }
}
