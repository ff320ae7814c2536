/// A Socket.IO packet that breaks the protocol. The connection that sent it should be closed.
package struct SocketIOProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of violation. New codes may be added.
    package struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, Hashable {
            case emptyPacket
            case unknownPacketType
            case invalidAttachmentCount
            case tooManyAttachments
            case invalidNamespace
            case invalidAckID
            case invalidJSON
            case invalidPayload
            case invalidPlaceholder
            case unexpectedBinary
            case unexpectedText
        }

        let base: Base

        init(_ base: Base) {
            self.base = base
        }

        /// A text message with no bytes.
        package static let emptyPacket = Code(.emptyPacket)
        /// The first character is not a packet type `0`…`6`.
        package static let unknownPacketType = Code(.unknownPacketType)
        /// A binary packet whose attachment count is not digits followed by `-`.
        package static let invalidAttachmentCount = Code(.invalidAttachmentCount)
        /// More attachments than the decoder's `maxAttachments`.
        package static let tooManyAttachments = Code(.tooManyAttachments)
        /// A namespace that is not valid UTF-8.
        package static let invalidNamespace = Code(.invalidNamespace)
        /// An acknowledgement id that is not digits, or too large.
        package static let invalidAckID = Code(.invalidAckID)
        /// The payload is not valid JSON; `underlying` says why.
        package static let invalidJSON = Code(.invalidJSON)
        /// The payload does not fit the packet type (e.g. an event that is not `[name, …]`).
        package static let invalidPayload = Code(.invalidPayload)
        /// A `{"_placeholder":true,"num":N}` with N out of range, not an integer, or used twice.
        package static let invalidPlaceholder = Code(.invalidPlaceholder)
        /// A binary message arrived when no binary packet was waiting for attachments.
        package static let unexpectedBinary = Code(.unexpectedBinary)
        /// A text packet arrived while a binary packet was still waiting for attachments.
        package static let unexpectedText = Code(.unexpectedText)

        /// The code's name, e.g. `invalidPayload`.
        package var description: String { self.base.rawValue }
    }

    /// The kind of violation.
    package var code: Code
    /// What was wrong, for logs.
    package var message: String
    /// The namespace of the offending packet, when it got that far.
    package var namespace: String?
    /// The type of the offending packet, when it got that far.
    package var packetType: SocketIOPacketType?
    /// The start of the offending input (at most 64 characters, invalid UTF-8 replaced).
    package var excerpt: String
    /// The JSON error behind `invalidJSON`.
    package var underlying: JSONParseError?

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of violation.
    ///   - message: What was wrong.
    ///   - namespace: The packet's namespace, if known.
    ///   - packetType: The packet's type, if known.
    ///   - excerpt: The start of the offending input, safe to log: the decoder passes ``LogSafe`` excerpts (64
    ///     input bytes, escaped, `…` when cut); longer text is cut to 400 characters.
    ///   - underlying: The JSON error, if any.
    package init(
        code: Code,
        message: String,
        namespace: String? = nil,
        packetType: SocketIOPacketType? = nil,
        excerpt: String = "",
        underlying: JSONParseError? = nil
    ) {
        self.code = code
        self.message = message
        self.namespace = namespace
        self.packetType = packetType
        self.excerpt = excerpt.count > 400 ? String(excerpt.prefix(400)) + "…" : excerpt
        self.underlying = underlying
    }

    /// One line for logs: code, message, packet type, namespace, input excerpt and JSON error.
    package var description: String {
        var text = "Socket.IO protocol error (\(self.code)): \(self.message)"
        if let packetType = self.packetType { text += "; packet type \(packetType)" }
        if let namespace = self.namespace { text += "; namespace \(namespace)" }
        if !self.excerpt.isEmpty { text += "; input \"\(self.excerpt)\"" }
        if let underlying = self.underlying { text += "; \(underlying)" }
        return text
    }
}
