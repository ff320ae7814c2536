public import NIOCore
public import SocketGatewayEngineIO

/// Settings of a `SocketServer`.
public struct SocketServerConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The TCP port; 0 picks an ephemeral port (see `SocketServer.localPort`).
    public var port: Int
    /// The Engine.IO path Socket.IO clients use.
    public var path: String
    /// Time between Engine.IO pings.
    public var pingInterval: Duration
    /// Time a client has to answer a ping.
    public var pingTimeout: Duration
    /// The largest message accepted from a client, in bytes.
    public var maxPayload: Int
    /// Time a client has, after the Engine.IO handshake, to send its first Socket.IO CONNECT.
    public var connectTimeout: Duration
    /// Cross-origin policy for long-polling.
    public var cors: CORSPolicy
    /// The most bytes that may wait for one client before it is disconnected as too slow.
    public var maxBufferedBytesPerConnection: Int
    /// The number of event-loop threads.
    public var eventLoopThreads: Int
    /// The Redis channel shared with the other servers and workers; `nil` runs local-only.
    public var redis: SocketServerRedisConfiguration?
    /// The HS256 secret of client tokens; when set and `SocketServer` gets no authenticator, clients must send
    /// `auth: {token}` with a JWT whose `sub` is their user id. `nil`: clients are not authenticated.
    public var tokenSecret: String?
    /// Checks the events other hosts publish on the Redis channel before they are delivered here (clustered
    /// servers only); `nil` delivers them unchecked. E.g. `.strict(SheetSyncEvent.self)`.
    public var inboundValidation: InboundEventValidation?

    /// Creates a configuration; the defaults match the Socket.IO reference server.
    public init(
        host: String = "127.0.0.1",
        port: Int = 3000,
        path: String = "/socket.io/",
        pingInterval: Duration = .seconds(25),
        pingTimeout: Duration = .seconds(20),
        maxPayload: Int = 1_000_000,
        connectTimeout: Duration = .seconds(45),
        cors: CORSPolicy = .none,
        maxBufferedBytesPerConnection: Int = 4 << 20,
        eventLoopThreads: Int = System.coreCount,
        redis: SocketServerRedisConfiguration? = nil,
        tokenSecret: String? = nil,
        inboundValidation: InboundEventValidation? = nil
    ) {
        self.host = host
        self.port = port
        self.path = path
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
        self.connectTimeout = connectTimeout
        self.cors = cors
        self.maxBufferedBytesPerConnection = maxBufferedBytesPerConnection
        self.eventLoopThreads = eventLoopThreads
        self.redis = redis
        self.tokenSecret = tokenSecret
        self.inboundValidation = inboundValidation
    }

    /// The Engine.IO settings derived from these.
    var engineIO: EngineIOConfiguration {
        var configuration = EngineIOConfiguration(
            pingInterval: self.pingInterval,
            pingTimeout: self.pingTimeout,
            maxPayload: self.maxPayload,
            cors: self.cors,
            maxBufferedBytesPerSession: self.maxBufferedBytesPerConnection)
        self.applyHTTPHardening(to: &configuration)
        return configuration
    }

    // MARK: Hardening limits

    /// How long an HTTP connection may wait for a request (fresh, or kept alive after a response); default 60 s.
    /// See `EngineIOConfiguration.httpIdleTimeout`.
    public var httpIdleTimeout: Duration = .seconds(60)
    /// How long a request head may take; default 10 s, then 408 and close. See
    /// `EngineIOConfiguration.httpHeaderTimeout`.
    public var httpHeaderTimeout: Duration = .seconds(10)
    /// How long a request body may take after its head; default 30 s, then 408 and close. See
    /// `EngineIOConfiguration.httpBodyTimeout`.
    public var httpBodyTimeout: Duration = .seconds(30)
    /// The most Engine.IO sessions not yet connected to a namespace; default 10 000, then new handshakes get 503.
    /// See `EngineIOConfiguration.maxPendingSessions`.
    public var maxPendingSessions: Int = 10_000
    /// The most connections per client IP address; default `nil` (no limit; see
    /// `EngineIOConfiguration.maxConnectionsPerAddress` before using it behind a proxy).
    public var maxConnectionsPerAddress: Int?
    /// The most bytes of a request's target and headers; default 16 KiB, then 431 and close. See
    /// `EngineIOConfiguration.maxRequestHeaderBytes`.
    public var maxRequestHeaderBytes: Int = 16 << 10

    private func applyHTTPHardening(to configuration: inout EngineIOConfiguration) {
        configuration.httpIdleTimeout = self.httpIdleTimeout
        configuration.httpHeaderTimeout = self.httpHeaderTimeout
        configuration.httpBodyTimeout = self.httpBodyTimeout
        configuration.maxPendingSessions = self.maxPendingSessions
        configuration.maxConnectionsPerAddress = self.maxConnectionsPerAddress
        configuration.maxRequestHeaderBytes = self.maxRequestHeaderBytes
    }
}
