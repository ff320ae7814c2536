public import Foundation
public import Logging
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

/// Accepts clients whose `auth.token` is an HS256 JWT signed with the shared secret; the user id is its `sub`.
public struct JWTAuthenticator: SocketAuthenticator {
    private let secret: String
    private let leeway: Duration
    private let now: @Sendable () -> Date
    private let logger: Logger

    /// Creates an authenticator.
    /// - Parameters:
    ///   - secret: The HMAC secret tokens are signed with; must not be empty.
    ///   - leeway: Clock skew tolerated for `exp` and `nbf`.
    ///   - logger: Where refusals are logged (at debug level).
    ///   - now: The clock; tests pass a fixed time.
    /// - Throws: ``SocketServerConfigurationError`` for an empty secret: a token signed with an empty key proves
    ///   nothing. To run without authentication, say so with ``SocketServerConfiguration/allowAnonymous``.
    public init(
        secret: String,
        leeway: Duration = .zero,
        logger: Logger = Logger(label: "socket-gateway.jwt"),
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws(SocketServerConfigurationError) {
        guard !secret.isEmpty else {
            throw SocketServerConfigurationError(
                variable: "secret",
                message: "the JWT secret is empty; set one, or run without authentication with allowAnonymous"
            )
        }
        self.secret = secret
        self.leeway = leeway
        self.logger = logger
        self.now = now
    }

    /// Verifies `auth.token` and returns the user named by its `sub`.
    public func authenticate(auth: JSONValue?, handshake: SocketHandshake) async -> AuthenticatedUser? {
        do {
            return try self.verify(auth: auth)
        } catch {
            self.logger.debug("socket.io client refused", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Verifies `auth.token` and returns the user, or throws why not.
    /// - Throws: `JWTError`.
    public func verify(auth: JSONValue?) throws(JWTError) -> AuthenticatedUser {
        guard case .string(let token)? = auth?["token"] else {
            throw JWTError(code: .malformed, detail: "auth.token is missing or not a string")
        }
        let claims = try HS256JWT.verify(token, secret: self.secret, now: self.now(), leeway: self.leeway)
        switch claims["sub"] {
        case .string(let subject)? where !subject.isEmpty:
            return AuthenticatedUser(id: subject, claims: claims)
        case .int(let subject)?:
            return AuthenticatedUser(id: String(subject), claims: claims)
        default:
            throw JWTError(code: .missingSubject, detail: "claims have no sub")
        }
    }
}
