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
public struct EngineIOConfiguration: Sendable {
    /// Time between the server's pings.
    public var pingInterval: Duration
    /// Time the client has to answer a ping before the session is closed.
    public var pingTimeout: Duration
    /// The largest message (WebSocket frame) or polling POST body accepted, in bytes.
    public var maxPayload: Int
    /// Time a client has to complete an upgrade (`2probe` … `5`) before the probing WebSocket is closed.
    public var upgradeTimeout: Duration
    /// Transports clients may use.
    public var transports: Set<EngineIOTransportKind>
    /// Whether polling sessions may upgrade to WebSocket.
    public var allowUpgrades: Bool
    /// Cross-origin policy for long-polling requests. A list of origins also restricts WebSocket upgrades: one with
    /// another `Origin` header is refused with 403 (one without an `Origin`, from a non-browser client, is allowed).
    public var cors: CORSPolicy
    /// The most bytes that may wait for one client (polling buffer, or WebSocket bytes not yet taken by the
    /// socket) before the session is closed with ``EngineIOCloseReason/slowClient``.
    public var maxBufferedBytesPerSession: Int
    /// The most packets one long-polling GET response carries; further packets wait for the next GET.
    /// python-engineio's client refuses a payload of more than 16 packets (and its server refuses such POST
    /// bodies), so the default is 16.
    public var maxPacketsPerPollingResponse: Int

    // MARK: Hardening limits

    /// How long a WebSocket connection may take to write the server's close frame (its own, or the answer to the
    /// client's) before the TCP connection is reset anyway. Default 5 s. A peer that does not read at all (the
    /// write buffer is over `maxBufferedBytesPerSession`) is reset at once. Each reset is counted in
    /// `socketgateway_engineio_websocket_forced_closes_total` and logged at warning level (rate-limited).
    public var webSocketCloseTimeout: Duration = .seconds(5)

    /// Creates a configuration; every parameter but `maxPacketsPerPollingResponse` (python-engineio's limit)
    /// has the Engine.IO reference server's default.
    public init(
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
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var engineIOMilliseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
