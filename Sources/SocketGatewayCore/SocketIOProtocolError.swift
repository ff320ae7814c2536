/// A Socket.IO packet that breaks the protocol. The connection that sent it should be closed.
public struct SocketIOProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of violation. New codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
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
        public static let emptyPacket = Code(.emptyPacket)
        /// The first character is not a packet type `0`…`6`.
        public static let unknownPacketType = Code(.unknownPacketType)
        /// A binary packet whose attachment count is not digits followed by `-`.
        public static let invalidAttachmentCount = Code(.invalidAttachmentCount)
        /// More attachments than the decoder's `maxAttachments`.
        public static let tooManyAttachments = Code(.tooManyAttachments)
        /// A namespace that is not valid UTF-8.
        public static let invalidNamespace = Code(.invalidNamespace)
        /// An acknowledgement id that is not digits, or too large.
        public static let invalidAckID = Code(.invalidAckID)
        /// The payload is not valid JSON; `underlying` says why.
        public static let invalidJSON = Code(.invalidJSON)
        /// The payload does not fit the packet type (e.g. an event that is not `[name, …]`).
        public static let invalidPayload = Code(.invalidPayload)
        /// A `{"_placeholder":true,"num":N}` with N out of range, not an integer, or used twice.
        public static let invalidPlaceholder = Code(.invalidPlaceholder)
        /// A binary message arrived when no binary packet was waiting for attachments.
        public static let unexpectedBinary = Code(.unexpectedBinary)
        /// A text packet arrived while a binary packet was still waiting for attachments.
        public static let unexpectedText = Code(.unexpectedText)

        /// The code's name, e.g. `invalidPayload`.
        public var description: String { self.base.rawValue }
    }

    /// The kind of violation.
    public var code: Code
    /// What was wrong, for logs.
    public var message: String
    /// The namespace of the offending packet, when it got that far.
    public var namespace: String?
    /// The type of the offending packet, when it got that far.
    public var packetType: SocketIOPacketType?
    /// The start of the offending input (at most 64 characters, invalid UTF-8 replaced).
    public var excerpt: String
    /// The JSON error behind `invalidJSON`.
    public var underlying: JSONParseError?

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of violation.
    ///   - message: What was wrong.
    ///   - namespace: The packet's namespace, if known.
    ///   - packetType: The packet's type, if known.
    ///   - excerpt: The start of the offending input, safe to log: the decoder passes ``LogSafe`` excerpts (64
    ///     input bytes, escaped, `…` when cut); longer text is cut to 400 characters.
    ///   - underlying: The JSON error, if any.
    public init(
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
    public var description: String {
        var text = "Socket.IO protocol error (\(self.code)): \(self.message)"
        if let packetType = self.packetType { text += "; packet type \(packetType)" }
        if let namespace = self.namespace { text += "; namespace \(namespace)" }
        if !self.excerpt.isEmpty { text += "; input \"\(self.excerpt)\"" }
        if let underlying = self.underlying { text += "; \(underlying)" }
        return text
    }
}
