/// Which cross-origin requests the long-polling transport allows.
public enum CORSPolicy: Sendable, Hashable {
    /// No CORS headers: browsers on other origins cannot use long-polling.
    case none
    /// `Access-Control-Allow-Origin: *` (no credentials).
    case any
    /// Only these origins (e.g. `https://app.example.com`): the matching `Origin` is echoed with
    /// `Access-Control-Allow-Credentials: true` and `Vary: Origin`.
    case origins([String])
}

extension CORSPolicy {
    /// Whether `origin` (an `Origin` header) is allowed: always for `.any`, never for `.none`, exact match for
    /// `.origins`. Used for long-polling's CORS headers and for WebSocket upgrades.
    func matches(origin: String) -> Bool {
        switch self {
        case .none: false
        case .any: true
        case .origins(let allowed): allowed.contains(origin)
        }
    }

    /// Whether a WebSocket upgrade with this `Origin` header (nil: none) is allowed. Only a list of origins
    /// restricts upgrades: a different origin is refused (403), a missing one is allowed, since non-browser
    /// clients (python-socketio) send none and a browser always does. `.none` and `.any` allow every upgrade.
    func allowsWebSocket(origin: String?) -> Bool {
        guard case .origins = self, let origin else { return true }
        return self.matches(origin: origin)
    }
}

/// Settings of one mounted Engine.IO endpoint.
package struct EngineIOConfiguration: Sendable {
    /// Time between the server's pings.
    package var pingInterval: Duration
    /// Time the client has to answer a ping before the session is closed.
    package var pingTimeout: Duration
    /// The largest message (WebSocket frame) or polling POST body accepted, in bytes.
    package var maxPayload: Int
    /// Time a client has to complete an upgrade (`2probe` … `5`) before the probing WebSocket is closed.
    package var upgradeTimeout: Duration
    /// Transports clients may use.
    package var transports: Set<EngineIOTransportKind>
    /// Whether polling sessions may upgrade to WebSocket.
    package var allowUpgrades: Bool
    /// Cross-origin policy for long-polling requests. A list of origins also restricts WebSocket upgrades: one with
    /// another `Origin` header is refused with 403 (one without an `Origin`, from a non-browser client, is allowed).
    package var cors: CORSPolicy
    /// The most bytes that may wait for one client (polling buffer, or WebSocket bytes not yet taken by the
    /// socket) before the session is closed with ``EngineIOCloseReason/slowClient``.
    package var maxBufferedBytesPerSession: Int
    /// The most packets one long-polling GET response carries; further packets wait for the next GET.
    /// python-engineio's client refuses a payload of more than 16 packets (and its server refuses such POST
    /// bodies), so the default is 16.
    package var maxPacketsPerPollingResponse: Int

    // MARK: Hardening limits

    /// How long a WebSocket connection may take to write the server's close frame (its own, or the answer to the
    /// client's) before the TCP connection is reset anyway. Default 5 s. A peer that does not read at all (the
    /// write buffer is over `maxBufferedBytesPerSession`) is reset at once. Each reset is counted in
    /// `socketgateway_engineio_websocket_forced_closes_total` and logged at warning level (rate-limited).
    package var webSocketCloseTimeout: Duration = .seconds(5)

    /// Creates a configuration; every parameter but `maxPacketsPerPollingResponse` (python-engineio's limit)
    /// has the Engine.IO reference server's default.
    package init(
        pingInterval: Duration = .seconds(25),
        pingTimeout: Duration = .seconds(20),
        maxPayload: Int = 1_000_000,
        upgradeTimeout: Duration = .seconds(10),
        transports: Set<EngineIOTransportKind> = [.polling, .websocket],
        allowUpgrades: Bool = true,
        cors: CORSPolicy = .none,
        maxBufferedBytesPerSession: Int = 4 << 20,
        maxPacketsPerPollingResponse: Int = 16
    ) {
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
        self.upgradeTimeout = upgradeTimeout
        self.transports = transports
        self.allowUpgrades = allowUpgrades
        self.cors = cors
        self.maxBufferedBytesPerSession = maxBufferedBytesPerSession
        self.maxPacketsPerPollingResponse = max(maxPacketsPerPollingResponse, 1)
    }

    // MARK: Hardening limits

    /// How long an HTTP connection may stay open without sending a request: a fresh connection before its first
    /// byte, or a kept-alive one after a response. Default 60 s: longer than the default pingInterval (25 s), so
    /// the connection a polling client POSTs its pongs on is not closed between two pongs. When it runs out the
    /// connection is closed without a response. Connections are timed before routing, so the server uses the
    /// largest value among its mounted endpoints. Not applied after a WebSocket upgrade (the heartbeat covers it).
    package var httpIdleTimeout: Duration = .seconds(60)
    /// How long a request head (request line and headers) may take from its first byte to its last. Default
    /// 10 s (slowloris defence; Node's `headersTimeout` is 60 s). When it runs out the server answers
    /// `408 Request Timeout` and closes the connection. The largest value among the mounted endpoints applies.
    package var httpHeaderTimeout: Duration = .seconds(10)
    /// How long a request body may take, counted from the end of its head, so a body trickled byte by byte
    /// cannot hold the connection. Default 30 s (a 1 MB maxPayload body at 33 KB/s or more). When it runs out the
    /// server answers `408 Request Timeout` and closes the connection (a POST for a session is abandoned; the
    /// session lives on). The largest value among the mounted endpoints applies. A request being answered (a
    /// long-polling GET held for up to pingInterval) has no HTTP time limit of its own.
    package var httpBodyTimeout: Duration = .seconds(30)
    /// The most sessions of this endpoint that may be open but not yet established: handshaken, and not yet
    /// connected to a Socket.IO namespace (or, for an application that does not say, not yet sent a message).
    /// Default 10 000. Beyond it a new handshake (polling or WebSocket) is refused with `503` and the Engine.IO
    /// error `{"code":4,"message":"Too many sessions waiting to connect"}`, counted
    /// (`socketgateway_engineio_handshakes_refused_total`) and logged at warning, rate-limited; established
    /// sessions are unaffected. Each waiting session holds its handshake request (headers, query, address) until
    /// the Socket.IO connect timeout ends it.
    package var maxPendingSessions: Int = 10_000
    /// The most bytes that may wait for all clients of the server together (polling buffers, WebSocket bytes not
    /// yet taken by the sockets), checked every 500 ms. Default: a quarter of the machine's memory, between
    /// 64 MiB and 4 GiB. Above it the sessions holding the most are closed first (``EngineIOCloseReason/slowClient``,
    /// counted in `socketgateway_engineio_budget_sheds_total`, logged at warning, rate-limited) until the total is
    /// under 90 % of it; clients that keep up are not touched. `nil` turns the check off. The server uses the
    /// smallest value among its mounted endpoints.
    package var maxBufferedBytesTotal: Int? = EngineIOOutboundBudget.machineDefault
    /// The most TCP connections one client IP address may hold open at once; `nil` (the default) for no limit.
    /// A connection beyond it is closed as soon as it is accepted, counted
    /// (`socketgateway_http_connections_refused_total`) and logged at warning, rate-limited. Leave it off behind a
    /// reverse proxy or load balancer that does not preserve client addresses (every client then shares the
    /// proxy's address), and set it generously where many users share one address (NAT, offices, mobile
    /// carriers); a polling client uses two or three connections, a WebSocket client one. Connections are counted
    /// before routing, so the server uses the smallest value among its mounted endpoints.
    package var maxConnectionsPerAddress: Int?
    /// The reverse proxies whose `X-Forwarded-For` is believed (default ``TrustedProxies/none``): a request from one
    /// of them is attributed to the client the header names, for ``maxConnectionsPerAddress`` (a proxied connection
    /// counts for the client of its latest request; beyond the limit that request is answered `503` and the
    /// connection closed) and for the address the application and the logs see. The server uses the ranges of all
    /// its mounted endpoints together.
    package var trustedProxies: TrustedProxies = .none
    /// The most bytes a request's target and headers may take. Default 16 KiB (Node's default). A larger request
    /// is answered `431 Request Header Fields Too Large` and its connection closed, counted
    /// (`socketgateway_http_requests_refused_total`) and logged at warning, rate-limited. It also bounds what a
    /// session keeps of its handshake request while it waits to connect (see ``maxPendingSessions``). The server
    /// uses the largest value among its mounted endpoints.
    package var maxRequestHeaderBytes: Int = 16 << 10
    /// How long a session closed by its client over polling (with no GET parked) is remembered, so the GET the
    /// client still had in flight ends with a noop instead of `400 Session ID unknown`. Default 2 s.
    package var closedSessionLingerTime: Duration = .seconds(2)
    /// WebSocket per-message compression (permessage-deflate) for clients that offer it; nil (the default, as in
    /// socket.io 4) keeps every connection uncompressed.
    package var webSocketCompression: WebSocketCompressionConfiguration?
    /// Compression of long-polling responses (engine.io's `httpCompression`) for requests whose `Accept-Encoding`
    /// allows it; nil (the default) sends every response as it is.
    package var httpCompression: HTTPCompressionConfiguration?
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var engineIOMilliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
