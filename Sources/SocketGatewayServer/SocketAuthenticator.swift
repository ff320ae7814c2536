public import NIOCore
public import NIOHTTP1
public import SocketGatewayCore

/// A client authenticated on connect.
public struct AuthenticatedUser: Sendable, Hashable {
    /// The user id; the client joins the room `user:<id>`.
    public var id: String
    /// Everything the authenticator knows (for a JWT, its claims).
    public var claims: JSONValue

    /// Creates a user.
    public init(id: String, claims: JSONValue = .object([])) {
        self.id = id
        self.claims = claims
    }
}

/// What a client sent when it connected to a namespace.
public struct SocketHandshake: Sendable {
    /// The CONNECT packet's payload (socket.io-client's `auth` option), if any.
    public var auth: JSONValue?
    /// The HTTP headers of the Engine.IO handshake request.
    public var headers: HTTPHeaders
    /// The query parameters of the Engine.IO handshake request.
    public var query: [String: String]
    /// The client's address: the peer's, or, from a trusted proxy (``SocketServerConfiguration/trustedProxies``),
    /// the client its `X-Forwarded-For` names (port 0).
    public var remoteAddress: SocketAddress?

    /// Creates a handshake description.
    public init(
        auth: JSONValue?,
        headers: HTTPHeaders = [:],
        query: [String: String] = [:],
        remoteAddress: SocketAddress? = nil
    ) {
        self.auth = auth
        self.headers = headers
        self.query = query
        self.remoteAddress = remoteAddress
    }
}

/// Decides whether a client may connect to a namespace.
public protocol SocketAuthenticator: Sendable {
    /// Returns the user, or nil to refuse with CONNECT_ERROR `{"message":"Unauthorized"}`.
    /// - Parameters:
    ///   - auth: The CONNECT packet's payload.
    ///   - handshake: The handshake request.
    func authenticate(auth: JSONValue?, handshake: SocketHandshake) async -> AuthenticatedUser?
}
