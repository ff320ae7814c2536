/// An error from the Redis transport, with what was being done when it happened.
///
/// Compare errors by `code`; the message and context are for people reading logs.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidURL
            case invalidTLSConfiguration
            case connectionFailed
            case connectionClosed
            case authenticationFailed
            case selectFailed
            case commandFailed
            case protocolError
            case timeout
            case overloaded
            case shutdown
            case livenessTimeout
            case primaryNotFound
            case notPrimary
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The Redis URL could not be parsed.
        public static let invalidURL = Code(.invalidURL)
        /// The TLS settings cannot be used: a PEM file missing, unreadable or malformed, a key that does not
        /// match its certificate.
        public static let invalidTLSConfiguration = Code(.invalidTLSConfiguration)
        /// No TCP or unix-socket connection could be made, or its TLS handshake failed.
        public static let connectionFailed = Code(.connectionFailed)
        /// The connection closed while the command waited for its reply; the command may or may not have run.
        public static let connectionClosed = Code(.connectionClosed)
        /// Redis refused AUTH.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// Redis refused SELECT (for example a database index out of range).
        public static let selectFailed = Code(.selectFailed)
        /// Redis answered the command with an error reply.
        public static let commandFailed = Code(.commandFailed)
        /// Redis sent bytes that are not RESP, or a reply of an unexpected shape.
        public static let protocolError = Code(.protocolError)
        /// No reply came within the configured timeout.
        public static let timeout = Code(.timeout)
        /// Too many commands are already waiting; the caller should slow down.
        public static let overloaded = Code(.overloaded)
        /// The client was shut down.
        public static let shutdown = Code(.shutdown)
        /// The subscribed connection did not answer PING in time.
        public static let livenessTimeout = Code(.livenessTimeout)
        /// No sentinel gave the address of the primary (each one's reason is in the message).
        public static let primaryNotFound = Code(.primaryNotFound)
        /// The node a sentinel named is not (or no longer) the primary: a failover is under way.
        public static let notPrimary = Code(.notPrimary)

        /// A one-line rendering for logs.
        public var description: String { self.base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What happened, in words.
    public var message: String
    /// The Redis URL with its password masked, when known.
    public var redactedURL: String?
    /// The command being run (name only, never its arguments), when known.
    public var command: String?
    /// The channel involved, when known.
    public var channel: String?
    /// The lower-level error, when there was one.
    public var underlying: (any Error)?

    /// Creates an error.
    public init(
        code: Code,
        message: String,
        redactedURL: String? = nil,
        command: String? = nil,
        channel: String? = nil,
        underlying: (any Error)? = nil
    ) {
        self.code = code
        self.message = message
        self.redactedURL = redactedURL
        self.command = command
        self.channel = channel
        self.underlying = underlying
    }

    /// A one-line rendering for logs.
    public var description: String {
        var text = "RedisError(\(self.code)): \(self.message)"
        if let command = self.command { text += " [command \(command)]" }
        if let channel = self.channel { text += " [channel \(channel)]" }
        if let url = self.redactedURL { text += " [url \(url)]" }
        if let underlying = self.underlying { text += " [cause: \(underlying)]" }
        return text
    }
}
