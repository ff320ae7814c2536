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
    /// `auth: {token}` with a JWT whose `sub` is their user id. It must not be empty (``validate()`` throws). With
    /// no secret and no authenticator the server refuses to start unless ``allowAnonymous`` is set.
    public var tokenSecret: String?
    /// Verification of client JWTs beyond a bare secret: a PEM public key, a JSON Web Key Set (file or URL),
    /// algorithms, `aud`, `iss`, leeway, the user claim (see ``JWTAuthenticator/Configuration``). When set and
    /// `SocketServer` gets no authenticator, clients are verified with it; ``tokenSecret``, when also set, is its
    /// HMAC secret. `nil` (the default): ``tokenSecret`` alone, HS256/384/512 with the user in `sub`.
    public var jwt: JWTAuthenticator.Configuration?
    /// Checks the events other hosts publish on the Redis channel before they are delivered here (clustered
    /// servers only); `nil` delivers them unchecked. E.g. `.strict(SheetSyncEvent.self)`.
    public var inboundValidation: InboundEventValidation?
    /// TLS for the listener (https:// polling and wss://); `nil` (the default) serves plain HTTP, e.g. behind a
    /// proxy that terminates TLS.
    public var tls: SocketServerTLSConfiguration?

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

    // MARK: Hardening limits

    /// Events of one connection that may wait for its handlers while a handler runs (a connection's handlers run
    /// one at a time). Default 128. The event beyond it closes the client's Engine.IO session (disconnect reason
    /// ``SocketDisconnectReason/eventQueueFull``), the events still waiting are dropped, not handled, and it is
    /// counted in `socketgateway_client_limit_exceeded_total{limit="event queue full"}`.
    public var maxQueuedEventsPerConnection: Int = 128
    /// Bytes (as received, attachments included) of one connection's events that may wait for its handlers.
    /// Default 4 MiB. One event is always accepted when none waits, so a single event up to `maxPayload` fits.
    /// Exceeding it is handled like ``maxQueuedEventsPerConnection``.
    public var maxQueuedEventBytesPerConnection: Int = 4 << 20
    /// Acks a client may have asked for, per connection, that no handler answered yet. Default 256. The event
    /// asking for one more closes the client's session (``SocketDisconnectReason/tooManyPendingAcks``, counted,
    /// logged). An event no handler is registered for never records its ack id; an ack id asked for again while
    /// still unanswered is a protocol error (`SocketIOSessionError.Code.duplicateAckID`).
    public var maxPendingAcksPerConnection: Int = 256
    /// The most events per second one connection may send, with a burst; `nil` (the default): no limit. The event
    /// over the limit closes the client's session (``SocketDisconnectReason/eventRateExceeded``, counted, logged):
    /// dropping events silently instead would leave the client waiting for acks and out of step with the server.
    public var eventRateLimit: SocketEventRateLimit?
    /// Refused CONNECTs (bad token, unknown namespace) one Engine.IO session may get. Default 5. The refusal that
    /// reaches it is sent, then the session is closed (counted in `socketgateway_client_limit_exceeded_total`,
    /// logged), so a client cannot retry authentication forever on one session.
    public var maxRefusedConnectsPerSession: Int = 5
    /// Accepts clients without authentication when `SocketServer` gets no authenticator and ``tokenSecret`` is nil.
    /// Default false: such a server refuses to start (``SocketServer/start()`` throws), so a missing or empty secret
    /// cannot turn authentication off silently. The server logs a warning at start when it is used.
    public var allowAnonymous: Bool = false
    /// The most bytes that may wait for all clients together (see
    /// `EngineIOConfiguration.maxBufferedBytesTotal`): default a quarter of the machine's memory, between 64 MiB
    /// and 4 GiB. Above it the clients holding the most are disconnected first (as slow clients) until the total is
    /// under 90 % of it; clients that keep up are not touched. `nil` turns the check off.
    public var maxBufferedBytesTotal: Int? = EngineIOConfiguration().maxBufferedBytesTotal
    /// How long a graceful shutdown lets the tasks the server started finish; default 10 s.
    ///
    /// Graceful shutdown (``SocketServer/run()`` when its `ServiceGroup` shuts down gracefully, or
    /// ``SocketServer/shutdown()``) goes in this order:
    /// 1. stop accepting: the listener closes, every session is closed (clients are told) and their onDisconnect
    ///    handlers are queued behind the handlers still running; new work (a handler loop, an authentication, a
    ///    remote ack, a fallback response) is refused from now on — logged, never dropped silently;
    /// 2. the running handlers, authentications, remote acks and fallback responses get up to this long to end;
    /// 3. what is still running then is cancelled (`Task.isCancelled`, `CancellationError` from `Task.sleep`,
    ///    `emitWithAck`) and awaited: a handler that ignores cancellation holds the shutdown until it returns;
    /// 4. the cluster publisher's outbox is drained (at most `redis.publishTimeout`), so what the handlers emitted
    ///    during 1–3 still reaches the other servers;
    /// 5. the event loops stop. Nothing the server started runs after `run()` / `shutdown()` returned.
    ///
    /// Cancelling the task of ``SocketServer/run()`` skips the wait of step 2. `.zero` cancels at once. Must not
    /// be negative (``validate()`` throws).
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// Connection state recovery (socket.io's `connectionStateRecovery`): a client that lost its connection gets
    /// its session back (same sid, rooms, missed events) when it reconnects within the window. `nil` (the
    /// default): off. See ``ConnectionStateRecoveryConfiguration``.
    public var connectionStateRecovery: ConnectionStateRecoveryConfiguration?

    /// Checks for settings that cannot be used: an empty ``tokenSecret``, a limit below 1, an event rate limit that
    /// is not positive, a negative ``shutdownGracePeriod``, a cluster timing that is not positive (``ClusterTimings``),
    /// a cluster request limit out of range (``ClusterRequestLimits``).
    /// `SocketServer` calls it; ``SocketServer/start()`` throws what it finds.
    /// - Throws: ``SocketServerConfigurationError`` naming the setting.
    public func validate() throws(SocketServerConfigurationError) {
        if let secret = self.tokenSecret, secret.isEmpty {
            throw SocketServerConfigurationError(
                variable: "tokenSecret",
                message: "is empty; set a secret, or set it to nil and allowAnonymous to run without authentication"
            )
        }
        for (name, value) in [
            ("maxQueuedEventsPerConnection", self.maxQueuedEventsPerConnection),
            ("maxQueuedEventBytesPerConnection", self.maxQueuedEventBytesPerConnection),
            ("maxPendingAcksPerConnection", self.maxPendingAcksPerConnection),
            ("maxRefusedConnectsPerSession", self.maxRefusedConnectsPerSession),
        ] where value < 1 {
            throw SocketServerConfigurationError(variable: name, message: "must be at least 1, got \(value)")
        }
        if self.shutdownGracePeriod < .zero {
            throw SocketServerConfigurationError(
                variable: "shutdownGracePeriod",
                message: "must not be negative, got \(self.shutdownGracePeriod)"
            )
        }
        if let rate = self.eventRateLimit,
            !(rate.eventsPerSecond > 0 && rate.eventsPerSecond.isFinite) || rate.burst < 1
        {
            throw SocketServerConfigurationError(
                variable: "eventRateLimit",
                message: "needs eventsPerSecond > 0 and burst >= 1, got \(rate)"
            )
        }
        try self.connectionStateRecovery?.validate()
        if let tls = self.tls, tls.handshakeTimeout <= .zero {
            throw SocketServerConfigurationError(
                variable: "tls.handshakeTimeout",
                message: "must be positive, got \(tls.handshakeTimeout)"
            )
        }
        if let problem = self.redis?.timings.problem() {
            throw SocketServerConfigurationError(variable: "redis.timings.\(problem.name)", message: problem.message)
        }
        if let problem = self.redis?.requestLimits.problem() {
            throw SocketServerConfigurationError(
                variable: "redis.requestLimits.\(problem.name)",
                message: problem.message
            )
        }
        do {
            _ = try TrustedProxies(parsing: self.trustedProxies)
        } catch {
            throw SocketServerConfigurationError(variable: "trustedProxies", message: error.description)
        }
        if let threshold = self.webSocketCompression?.threshold, threshold < 0 {
            throw SocketServerConfigurationError(
                variable: "webSocketCompression.threshold",
                message: "must be 0 or more bytes, got \(threshold)"
            )
        }
        if let threshold = self.httpCompression?.threshold, threshold < 0 {
            throw SocketServerConfigurationError(
                variable: "httpCompression.threshold",
                message: "must be 0 or more bytes, got \(threshold)"
            )
        }
        if let limit = self.maxConnectionsPerAddress, limit < 1 {
            throw SocketServerConfigurationError(
                variable: "maxConnectionsPerAddress",
                message: "must be at least 1 (or nil for no limit), got \(limit)"
            )
        }
    }

    /// The Engine.IO settings derived from these.
    package var engineIO: EngineIOConfiguration {
        var configuration = EngineIOConfiguration(
            pingInterval: self.pingInterval,
            pingTimeout: self.pingTimeout,
            maxPayload: self.maxPayload,
            cors: self.cors,
            maxBufferedBytesPerSession: self.maxBufferedBytesPerConnection
        )
        configuration.maxBufferedBytesTotal = self.maxBufferedBytesTotal
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
    /// The reverse proxies whose `X-Forwarded-For` header is believed, as IP addresses or CIDR ranges
    /// (`["127.0.0.1", "10.0.0.0/8"]`); default none. A request from one of them is attributed to the client the
    /// header names (the right-most address that is not a trusted proxy): that address is what
    /// ``maxConnectionsPerAddress`` counts, what ``SocketHandshake/remoteAddress`` holds and what the
    /// logs show. A request from anywhere else is attributed to the address it came from, whatever its header says.
    /// `validate()` refuses an entry that is not an address or range.
    public var trustedProxies: [String] = []
    /// The most bytes of a request's target and headers; default 16 KiB, then 431 and close. See
    /// `EngineIOConfiguration.maxRequestHeaderBytes`.
    public var maxRequestHeaderBytes: Int = 16 << 10
    /// WebSocket per-message compression (permessage-deflate); default `nil`: off, as in socket.io 4. See
    /// ``SocketWebSocketCompression``. `validate()` refuses a negative threshold.
    public var webSocketCompression: SocketWebSocketCompression?
    /// Compression of long-polling responses (gzip/deflate); default `nil`: off. See ``SocketHTTPCompression``.
    /// `validate()` refuses a negative threshold.
    public var httpCompression: SocketHTTPCompression?

    private func applyHTTPHardening(to configuration: inout EngineIOConfiguration) {
        configuration.httpIdleTimeout = self.httpIdleTimeout
        configuration.httpHeaderTimeout = self.httpHeaderTimeout
        configuration.httpBodyTimeout = self.httpBodyTimeout
        configuration.maxPendingSessions = self.maxPendingSessions
        configuration.maxConnectionsPerAddress = self.maxConnectionsPerAddress
        // validate() refuses entries that do not parse before the server uses this.
        configuration.trustedProxies = (try? TrustedProxies(parsing: self.trustedProxies)) ?? .none
        configuration.maxRequestHeaderBytes = self.maxRequestHeaderBytes
        configuration.webSocketCompression = self.webSocketCompression?.engineIO
        configuration.httpCompression = self.httpCompression?.engineIO
    }
}

/// A per-connection event rate limit: a token bucket of `burst` events refilled at `eventsPerSecond`.
public struct SocketEventRateLimit: Sendable, Hashable, CustomStringConvertible {
    /// The sustained rate, in events per second (more than 0).
    public var eventsPerSecond: Double
    /// Events accepted at once after a quiet period (at least 1).
    public var burst: Int

    /// Creates a limit.
    /// - Parameters:
    ///   - eventsPerSecond: The sustained rate (more than 0).
    ///   - burst: Events accepted at once after a quiet period (at least 1).
    public init(eventsPerSecond: Double, burst: Int) {
        self.eventsPerSecond = eventsPerSecond
        self.burst = burst
    }

    /// `N events/s, burst M`.
    public var description: String { "\(self.eventsPerSecond) events/s, burst \(self.burst)" }
}
