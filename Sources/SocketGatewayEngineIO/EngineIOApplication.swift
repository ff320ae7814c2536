package import NIOCore
package import NIOHTTP1

/// Implemented by whatever runs on top of Engine.IO (the Socket.IO layer; the conformance echo endpoint).
///
/// Every call happens on `session.eventLoop`, in the order the events happened for that session.
package protocol EngineIOApplication: AnyObject, Sendable {
    /// A session completed its handshake; the open packet has been queued.
    func sessionOpened(_ session: EngineIOSession)
    /// The client sent a message (text after the `4`, or binary bytes).
    func session(_ session: EngineIOSession, didReceive message: EngineIOMessage)
    /// The session is closed; nothing more can be sent on it.
    func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason)

    /// Whether the application says itself when a session is established, by calling
    /// ``EngineIOSession/markEstablished()`` (the Socket.IO layer does, once a namespace accepted the client).
    /// When false (the default), a session is established by its first message. Until then it counts against
    /// ``EngineIOConfiguration/maxPendingSessions``.
    var marksSessionsEstablished: Bool { get }
}

extension EngineIOApplication {
    /// False: a session is established by its first message.
    package var marksSessionsEstablished: Bool { false }
}

/// One Engine.IO message received from a client.
package enum EngineIOMessage: Sendable, Hashable {
    /// A text message: the payload after the `4`.
    case text(ByteBuffer)
    /// A binary message: the bytes as sent.
    case binary(ByteBuffer)
}

/// Why a session ended.
package struct EngineIOCloseReason: Sendable, Hashable, CustomStringConvertible {
    private enum Base: String, Hashable, Sendable {
        case transportClose = "transport close"
        case pingTimeout = "ping timeout"
        case parseError = "parse error"
        case serverClose = "server close"
        case clientClose = "client close"
        case transportError = "transport error"
        case slowClient = "slow client"
        case payloadTooLarge = "payload too large"
        case forcedServerShutdown = "forced server shutdown"
    }

    private let base: Base
    private init(_ base: Base) { self.base = base }

    /// The connection of the transport was closed (the client went away).
    package static let transportClose = Self(.transportClose)
    /// No pong arrived within pingTimeout after a ping.
    package static let pingTimeout = Self(.pingTimeout)
    /// The client sent a packet or payload that could not be decoded.
    package static let parseError = Self(.parseError)
    /// The server (the application) closed the session.
    package static let serverClose = Self(.serverClose)
    /// The client sent a close packet.
    package static let clientClose = Self(.clientClose)
    /// The transport misbehaved (e.g. two concurrent long-polling GETs, an aborted GET).
    package static let transportError = Self(.transportError)
    /// The client did not read fast enough: more than maxBufferedBytesPerSession were waiting for it.
    package static let slowClient = Self(.slowClient)
    /// The client sent more than maxPayload bytes at once.
    package static let payloadTooLarge = Self(.payloadTooLarge)
    /// The server is shutting down.
    package static let forcedServerShutdown = Self(.forcedServerShutdown)

    /// A short label, e.g. `"ping timeout"` (also used as the metrics dimension).
    package var description: String { self.base.rawValue }
}

/// The HTTP request that created a session (the first polling GET, or the WebSocket upgrade request).
package struct EngineIOHandshakeRequest: Sendable {
    /// The request URI, e.g. `/socket.io/?EIO=4&transport=polling`.
    package var uri: String
    /// The path part of the URI.
    package var path: String
    /// Query parameters, percent-decoded (the last value wins for repeated names).
    package var query: [String: String]
    /// The request headers.
    package var headers: HTTPHeaders
    /// The client's address, when known.
    package var remoteAddress: SocketAddress?

    /// Creates a request description.
    package init(
        uri: String,
        path: String,
        query: [String: String],
        headers: HTTPHeaders,
        remoteAddress: SocketAddress?
    ) {
        self.uri = uri
        self.path = path
        self.query = query
        // NIO's decoder hands over its header array with room for 16 headers (≈ 550 bytes); the session keeps the
        // request for its whole life, so keep an array of exactly the headers received.
        self.headers = HTTPHeaders(headers.map { ($0.name, $0.value) })
        self.remoteAddress = remoteAddress
    }
}

/// The two Engine.IO transports.
package enum EngineIOTransportKind: String, Sendable, Hashable, CaseIterable {
    /// HTTP long-polling (GET to receive, POST to send).
    case polling
    /// One WebSocket connection.
    case websocket
}
