import Foundation
public import SocketGatewayEngineIO
public import SocketGatewayRedis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a clustered server meets the other servers and the workers: a Redis URL and a channel.
public struct SocketServerRedisConfiguration: Sendable, Hashable {
    /// `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS) or `unix:///path/redis.sock`.
    public var url: String
    /// TLS settings for a `rediss://` URL (CA file, client certificate, server name), added to what the URL's
    /// `ssl_…` parameters say; `nil` (the default) leaves the URL's own. Set with a plain `redis://` URL, the
    /// server refuses to start rather than connect in clear.
    public var tls: RedisTLSConfiguration?
    /// The pub/sub channel, `socketio` (python-socketio's default) unless changed.
    public var channel: String
    /// How long a gateway emit waits for Redis to accept the publish before it returns `.queued`.
    public var publishTimeout: Duration
    /// How many of this server's messages are held while Redis is unreachable (sent in order on reconnect);
    /// 0 drops them (python-socketio's behaviour).
    public var outboxCapacity: Int
    /// A shared secret (at least 32 bytes) that signs every message this server publishes and that every message
    /// it applies must be signed with (HMAC-SHA256 with a timestamp, refused when more than 60 s off); `nil`
    /// (the default) neither signs nor checks, as python-socketio. With a secret, a process that can publish on
    /// Redis but does not know it cannot inject emits, room changes (`enter_room` into `user:alice`),
    /// disconnects or acks; python-socketio servers on the channel still read signed messages, but messages from
    /// python-socketio publishers are refused. Messages are not encrypted: Redis ACLs and TLS protect reading.
    public var signingSecret: String?
    /// How many acks for remote emits with a callback may be awaited at once on this server (default 1,000):
    /// each is one client's answer to an emit another server published with a callback. Beyond it, such emits
    /// are delivered without asking for an ack, and counted.
    public var maxPendingRemoteAcks: Int
    /// How many messages from Redis may wait for one event loop (default 16,384) before the server stops reading
    /// Redis until that loop has caught up to half of it; Redis holds what is published meanwhile, up to its
    /// `client-output-buffer-limit pubsub` (then it drops the connection and the server resubscribes).
    public var maxQueuedMessagesPerLoop: Int
    /// The same bound in encoded bytes of the queued events (default 32 MiB per loop).
    public var maxQueuedBytesPerLoop: Int
    /// Connect, reply, reconnect, liveness, remote-ack and signature-age timings (defaults in ``ClusterTimings``).
    public var timings: ClusterTimings
    /// The channel layout (`SOCKET_REDIS_MODE`): `.python` (the default, python-socketio's single channel) or
    /// `.rooms` (room channels: a server receives the emits to one room only while the room has members here;
    /// see ``RedisChannelMode``).
    public var mode: RedisChannelMode
    /// Room channels: how long a room's channel stays subscribed after the room lost its last member here
    /// (default 30 s; `SOCKET_REDIS_ROOM_UNSUBSCRIBE_DELAY` in seconds), so reconnecting users cause no
    /// SUBSCRIBE/UNSUBSCRIBE churn.
    public var roomUnsubscribeDelay: Duration
    /// Room channels: the longest a client's connect (its `user:<id>` room) and a server-side join wait for Redis
    /// to confirm the room's channel before they proceed anyway (default 2 s; logged; the subscription follows
    /// when Redis answers, and emits published meanwhile may be missed).
    public var roomSubscribeTimeout: Duration
    /// How long a subscription connection holds its next read while messages arrive closely spaced, so they are
    /// read and handled together (default 1 ms; `SOCKET_REDIS_READ_COALESCE` in milliseconds; `.zero` reads each
    /// message as it comes). A message after a quiet spell is read at once; under load a message waits at most
    /// this much longer.
    public var readCoalescing: Duration = RedisSubscriberConfiguration.defaultReadCoalescing
    /// The bounds on cluster-wide requests asked and answered at once, and on their size (``ClusterRequestLimits``;
    /// `SOCKET_REDIS_REQUESTS_MAX_PENDING`, `…_MAX_ANSWERING`, `…_MAX_BYTES`).
    public var requestLimits = ClusterRequestLimits()

    /// Creates a Redis setting.
    public init(
        url: String,
        channel: String = "socketio",
        publishTimeout: Duration = .seconds(2),
        outboxCapacity: Int = 1000,
        signingSecret: String? = nil,
        maxPendingRemoteAcks: Int = 1000,
        maxQueuedMessagesPerLoop: Int = 16_384,
        maxQueuedBytesPerLoop: Int = 32 << 20,
        timings: ClusterTimings = ClusterTimings(),
        mode: RedisChannelMode = .python,
        roomUnsubscribeDelay: Duration = .seconds(30),
        roomSubscribeTimeout: Duration = .seconds(2),
        tls: RedisTLSConfiguration? = nil
    ) {
        self.url = url
        self.tls = tls
        self.channel = channel
        self.publishTimeout = publishTimeout
        self.outboxCapacity = outboxCapacity
        self.signingSecret = signingSecret
        self.maxPendingRemoteAcks = maxPendingRemoteAcks
        self.maxQueuedMessagesPerLoop = maxQueuedMessagesPerLoop
        self.maxQueuedBytesPerLoop = maxQueuedBytesPerLoop
        self.timings = timings
        self.mode = mode
        self.roomUnsubscribeDelay = roomUnsubscribeDelay
        self.roomSubscribeTimeout = roomSubscribeTimeout
    }
}

/// A setting (from code, flags or the environment) that cannot be used.
public struct SocketServerConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The variable (or flag) at fault.
    public var variable: String
    /// What is wrong with it.
    public var message: String

    /// Creates an error.
    public init(variable: String, message: String) {
        self.variable = variable
        self.message = message
    }

    /// `VARIABLE: message`.
    public var description: String { "\(self.variable): \(self.message)" }
}

extension SocketServerConfiguration {
    /// The environment variables ``init(environment:)`` reads.
    public enum EnvironmentKey {
        /// The listen address (default `127.0.0.1`).
        public static let host = "HOST"
        /// The listen port (default 3000).
        public static let port = "PORT"
        /// The Engine.IO path (default `/socket.io/`).
        public static let path = "SOCKET_PATH"
        /// The Redis URL; unset or empty runs local-only.
        public static let redisURL = "REDIS_URL"
        /// The pub/sub channel (default `socketio`).
        public static let redisChannel = "SOCKET_REDIS_CHANNEL"
        /// The secret that signs and checks pub/sub messages (unset: not signed, python-socketio's format).
        public static let redisSigningSecret = "SOCKET_REDIS_SIGNING_SECRET"
        /// The channel layout: `python` (default) or `rooms` (``RedisChannelMode``).
        public static let redisMode = "SOCKET_REDIS_MODE"
        /// Room channels: seconds a room's channel stays subscribed after its last local member left (default 30).
        public static let redisRoomUnsubscribeDelay = "SOCKET_REDIS_ROOM_UNSUBSCRIBE_DELAY"
        /// Milliseconds a subscription connection holds its next read while messages arrive closely spaced
        /// (default 1; 0 reads each message as it comes).
        public static let redisReadCoalesce = "SOCKET_REDIS_READ_COALESCE"
        /// The most cluster-wide requests of this server waiting at once (default 64).
        public static let redisRequestsMaxPending = "SOCKET_REDIS_REQUESTS_MAX_PENDING"
        /// The most other servers' cluster-wide requests answered at once (default 64).
        public static let redisRequestsMaxAnswering = "SOCKET_REDIS_REQUESTS_MAX_ANSWERING"
        /// The largest cluster-wide request or answer in bytes (default 1048576, at least 1024).
        public static let redisRequestsMaxBytes = "SOCKET_REDIS_REQUESTS_MAX_BYTES"
        /// A PEM file of the CA certificates that sign the Redis server's certificate (`rediss://`, a private CA);
        /// also `SOCKET_REDIS_TLS_CERT`, `…_KEY`, `…_SERVER_NAME` (``RedisTLSConfiguration/EnvironmentKey``).
        public static let redisTLSCA = RedisTLSConfiguration.EnvironmentKey.caFile
        /// The HMAC secret of client tokens (HS256/384/512).
        public static let tokenSecret = "SOCKET_TOKEN_SECRET"
        /// A PEM file: the public key or certificate client tokens are signed for (RSA, EC, Ed25519).
        public static let jwtPublicKey = "SOCKET_JWT_PUBLIC_KEY"
        /// A JSON Web Key Set: an `https://` URL or a file path; tokens name their key with `kid`.
        public static let jwtKeySet = "SOCKET_JWT_JWKS"
        /// Seconds between key set fetches (default 300); an unknown `kid` fetches sooner, at most every 30 s.
        public static let jwtKeySetRefresh = "SOCKET_JWT_JWKS_REFRESH"
        /// Comma-separated accepted algorithms (default all: HS256/384/512, RS256/384/512, ES256/384/512, EdDSA).
        public static let jwtAlgorithms = "SOCKET_JWT_ALGORITHMS"
        /// Comma-separated accepted audiences: the token's `aud` must name one (default: not checked).
        public static let jwtAudience = "SOCKET_JWT_AUDIENCE"
        /// The accepted issuer: the token's `iss` must equal it (default: not checked).
        public static let jwtIssuer = "SOCKET_JWT_ISSUER"
        /// Seconds of clock skew tolerated for `exp` and `nbf` (default 0).
        public static let jwtLeeway = "SOCKET_JWT_LEEWAY"
        /// The claim naming the user (default `sub`).
        public static let jwtUserClaim = "SOCKET_JWT_USER_CLAIM"
        /// `true` (default) refuses tokens without `exp`; `false` accepts them.
        public static let jwtRequireExpiration = "SOCKET_JWT_REQUIRE_EXP"
        /// Comma-separated allowed origins for long-polling; `*` allows any.
        public static let corsOrigins = "SOCKET_CORS_ORIGINS"
        /// Comma-separated IP addresses or CIDR ranges of the reverse proxies whose `X-Forwarded-For` is believed
        /// (default none; ``SocketServerConfiguration/trustedProxies``).
        public static let trustedProxies = "SOCKET_TRUSTED_PROXIES"
        /// The most connections one client address may hold open (default: no limit;
        /// ``SocketServerConfiguration/maxConnectionsPerAddress``).
        public static let maxConnectionsPerAddress = "SOCKET_MAX_CONNECTIONS_PER_ADDRESS"
        /// TLS for the listener: the certificate chain PEM file (with ``tlsKey``).
        public static let tlsCertificate = SocketServerTLSConfiguration.EnvironmentKey.certificateChainFile
        /// TLS for the listener: the private key PEM file (with ``tlsCertificate``).
        public static let tlsKey = SocketServerTLSConfiguration.EnvironmentKey.privateKeyFile
        /// Connection state recovery's window in seconds (``ConnectionStateRecoveryConfiguration``); unset or 0: off.
        public static let recoveryWindow = "SOCKET_RECOVERY_WINDOW"
        /// Whether a recovered session skips the middlewares: `on` or `off` (default off; needs
        /// ``recoveryWindow``; ``ConnectionStateRecoveryConfiguration/skipMiddlewares``).
        public static let recoverySkipMiddlewares = "SOCKET_RECOVERY_SKIP_MIDDLEWARES"
        /// WebSocket per-message compression: `on` or `off` (default off; ``SocketWebSocketCompression``).
        public static let webSocketCompression = "SOCKET_WS_COMPRESSION"
        /// The smallest message, in bytes, that is compressed when compression is on (default 1024).
        public static let webSocketCompressionThreshold = "SOCKET_WS_COMPRESSION_THRESHOLD"
        /// Compression of long-polling responses: `on` or `off` (default off; ``SocketHTTPCompression``).
        public static let httpCompression = "SOCKET_HTTP_COMPRESSION"
        /// The smallest polling payload, in bytes, that is compressed when it is on (default 1024).
        public static let httpCompressionThreshold = "SOCKET_HTTP_COMPRESSION_THRESHOLD"
    }

    /// Reads a configuration from environment variables (see ``EnvironmentKey``); unset variables keep the
    /// defaults of ``init(host:port:path:pingInterval:pingTimeout:maxPayload:connectTimeout:cors:maxBufferedBytesPerConnection:eventLoopThreads:redis:tokenSecret:)``.
    /// - Parameter environment: The variables; `nil` reads the process environment (`SocketServerConfiguration()`
    ///   alone does not read it).
    /// - Throws: ``SocketServerConfigurationError`` for a port that is not 0…65535 or a path not starting with `/`.
    public init(environment: [String: String]?) throws(SocketServerConfigurationError) {
        func read(_ name: String) -> String? {
            let value: String?
            if let environment {
                value = environment[name]
            } else {
                value = getenv(name).map { String(cString: $0) }
            }
            guard let trimmed = value.map(Self.trimmed), !trimmed.isEmpty else { return nil }
            return trimmed
        }
        self.init(host: "127.0.0.1")
        if let host = read(EnvironmentKey.host) { self.host = host }
        if let text = read(EnvironmentKey.port) {
            guard let port = Int(text), (0...65535).contains(port) else {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.port,
                    message: "must be 0...65535, got '\(text)'"
                )
            }
            self.port = port
        }
        if let path = read(EnvironmentKey.path) {
            guard path.hasPrefix("/") else {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.path,
                    message: "must start with '/', got '\(path)'"
                )
            }
            self.path = path.hasSuffix("/") ? path : path + "/"
        }
        if let url = read(EnvironmentKey.redisURL) {
            self.redis = SocketServerRedisConfiguration(
                url: url,
                channel: read(EnvironmentKey.redisChannel) ?? "socketio",
                signingSecret: read(EnvironmentKey.redisSigningSecret)
            )
            if let text = read(EnvironmentKey.redisMode) {
                do {
                    self.redis?.mode = try RedisChannelMode(parsing: text)
                } catch {
                    throw SocketServerConfigurationError(variable: EnvironmentKey.redisMode, message: error.message)
                }
            }
            if let text = read(EnvironmentKey.redisRoomUnsubscribeDelay) {
                guard let seconds = Double(text), seconds >= 0, seconds <= 86_400 else {
                    throw SocketServerConfigurationError(
                        variable: EnvironmentKey.redisRoomUnsubscribeDelay,
                        message: "must be a number of seconds, 0...86400, got '\(text)'"
                    )
                }
                self.redis?.roomUnsubscribeDelay = .milliseconds(Int64(seconds * 1000))
            }
            if let text = read(EnvironmentKey.redisReadCoalesce) {
                guard let milliseconds = Double(text), milliseconds >= 0, milliseconds <= 100 else {
                    throw SocketServerConfigurationError(
                        variable: EnvironmentKey.redisReadCoalesce,
                        message: "must be a number of milliseconds, 0...100, got '\(text)'"
                    )
                }
                self.redis?.readCoalescing = .microseconds(Int64((milliseconds * 1000).rounded()))
            }
            for (key, range, path) in [
                (EnvironmentKey.redisRequestsMaxPending, 1...100_000, \ClusterRequestLimits.maxPending),
                (EnvironmentKey.redisRequestsMaxAnswering, 1...100_000, \ClusterRequestLimits.maxAnswering),
                (
                    EnvironmentKey.redisRequestsMaxBytes, ClusterRequestLimits.minimumMessageBytes...(512 << 20),
                    \ClusterRequestLimits.maxMessageBytes
                ),
            ] {
                guard let text = read(key) else { continue }
                guard let value = Int(text), range.contains(value) else {
                    throw SocketServerConfigurationError(
                        variable: key,
                        message: "must be a whole number, \(range.lowerBound)...\(range.upperBound), got '\(text)'"
                    )
                }
                self.redis?.requestLimits[keyPath: path] = value
            }
            self.redis?.tls = RedisTLSConfiguration(environment: environment)
        }
        self.tokenSecret = read(EnvironmentKey.tokenSecret)
        if let text = read(EnvironmentKey.trustedProxies) {
            let entries = text.split(separator: ",").map { Self.trimmed(String($0)) }.filter { !$0.isEmpty }
            do {
                _ = try TrustedProxies(parsing: entries)
            } catch {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.trustedProxies,
                    message: error.description
                )
            }
            self.trustedProxies = entries
        }
        if let text = read(EnvironmentKey.maxConnectionsPerAddress) {
            guard let limit = Int(text), limit >= 1 else {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.maxConnectionsPerAddress,
                    message: "must be a whole number of at least 1, got '\(text)'"
                )
            }
            self.maxConnectionsPerAddress = limit
        }
        // Checked even without the files here: `serve --tls-cert/--tls-key` applies it.
        let handshakeTimeout = try read(SocketServerTLSConfiguration.EnvironmentKey.handshakeTimeout).map {
            text throws(SocketServerConfigurationError) in
            try SocketServerTLSConfiguration.handshakeTimeout(parsing: text)
        }
        switch (read(EnvironmentKey.tlsCertificate), read(EnvironmentKey.tlsKey)) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            self.tls = SocketServerTLSConfiguration(
                certificateChainFile: certificate,
                privateKeyFile: key,
                handshakeTimeout: handshakeTimeout ?? .seconds(10)
            )
        case (_?, nil):
            throw SocketServerConfigurationError(
                variable: EnvironmentKey.tlsKey,
                message: "must be set with \(EnvironmentKey.tlsCertificate): the certificate needs its private key"
            )
        case (nil, _?):
            throw SocketServerConfigurationError(
                variable: EnvironmentKey.tlsCertificate,
                message: "must be set with \(EnvironmentKey.tlsKey): the private key needs its certificate chain"
            )
        }
        self.jwt = try Self.jwtConfiguration(read)
        if let origins = read(EnvironmentKey.corsOrigins) {
            self.cors = Self.corsPolicy(origins.split(separator: ",").map { Self.trimmed(String($0)) })
        }
        self.webSocketCompression = try Self.webSocketCompression(read)
        self.httpCompression = try Self.httpCompression(read)
        if let text = read(EnvironmentKey.recoveryWindow) {
            guard let seconds = Double(text), seconds >= 0, seconds <= 86_400 else {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.recoveryWindow,
                    message: "must be a number of seconds, 0...86400 (0: off), got '\(text)'"
                )
            }
            if seconds > 0 {
                self.connectionStateRecovery = ConnectionStateRecoveryConfiguration(
                    maxDisconnectionDuration: .milliseconds(Int64((seconds * 1000).rounded()))
                )
            }
        }
        if let skip = try Self.onOff(EnvironmentKey.recoverySkipMiddlewares, read) {
            if skip, self.connectionStateRecovery == nil {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.recoverySkipMiddlewares,
                    message: "is on but \(EnvironmentKey.recoveryWindow) is not set (recovery is off)"
                )
            }
            self.connectionStateRecovery?.skipMiddlewares = skip
        }
    }

    /// The JWT settings the `SOCKET_JWT_…` variables give, or nil when none is set.
    private static func jwtConfiguration(
        _ read: (String) -> String?
    ) throws(SocketServerConfigurationError) -> JWTAuthenticator.Configuration? {
        typealias Key = EnvironmentKey
        let names = [
            Key.jwtPublicKey, Key.jwtKeySet, Key.jwtKeySetRefresh, Key.jwtAlgorithms, Key.jwtAudience, Key.jwtIssuer,
            Key.jwtLeeway, Key.jwtUserClaim, Key.jwtRequireExpiration,
        ]
        guard names.contains(where: { read($0) != nil }) else { return nil }
        func list(_ text: String) -> [String] {
            text.split(separator: ",").map { Self.trimmed(String($0)) }.filter { !$0.isEmpty }
        }
        func seconds(_ name: String, _ range: ClosedRange<Double>) throws(SocketServerConfigurationError) -> Duration? {
            guard let text = read(name) else { return nil }
            guard let value = Double(text), range.contains(value) else {
                throw SocketServerConfigurationError(
                    variable: name,
                    message:
                        "must be a number of seconds, \(Int(range.lowerBound))...\(Int(range.upperBound)), got '\(text)'"
                )
            }
            return .milliseconds(Int64((value * 1000).rounded()))
        }
        var jwt = JWTAuthenticator.Configuration()
        if let path = read(Key.jwtPublicKey) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw SocketServerConfigurationError(variable: Key.jwtPublicKey, message: "cannot read '\(path)'")
            }
            jwt.publicKeyPEM = String(decoding: data, as: UTF8.self)
        }
        if let text = read(Key.jwtKeySet) {
            let lowercased = text.lowercased()
            if lowercased.hasPrefix("https://") || lowercased.hasPrefix("http://") {
                jwt.keySet = .url(text)
            } else {
                guard FileManager.default.isReadableFile(atPath: text) else {
                    throw SocketServerConfigurationError(
                        variable: Key.jwtKeySet,
                        message: "cannot read '\(text)' (give an https:// URL or a readable file)"
                    )
                }
                jwt.keySet = .file(text)
            }
        }
        if let refresh = try seconds(Key.jwtKeySetRefresh, 1...86_400) {
            jwt.keySetRefreshInterval = refresh
            jwt.keySetMinimumFetchInterval = min(jwt.keySetMinimumFetchInterval, refresh)
        }
        if let text = read(Key.jwtAlgorithms) {
            var algorithms = Set<JWTAuthenticator.Algorithm>()
            for name in list(text) {
                guard let algorithm = JWTAuthenticator.Algorithm(name: name) else {
                    throw SocketServerConfigurationError(
                        variable: Key.jwtAlgorithms,
                        message: "unknown algorithm '\(name)'; known: "
                            + JWTAuthenticator.Algorithm.all.map(\.name).joined(separator: ", ")
                    )
                }
                algorithms.insert(algorithm)
            }
            guard !algorithms.isEmpty else {
                throw SocketServerConfigurationError(variable: Key.jwtAlgorithms, message: "names no algorithm")
            }
            jwt.algorithms = algorithms
        }
        if let text = read(Key.jwtAudience) { jwt.audiences = list(text) }
        jwt.issuer = read(Key.jwtIssuer)
        if let leeway = try seconds(Key.jwtLeeway, 0...3600) { jwt.leeway = leeway }
        if let claim = read(Key.jwtUserClaim) { jwt.userClaim = claim }
        if let text = read(Key.jwtRequireExpiration) {
            switch text.lowercased() {
            case "true", "1", "yes": jwt.requireExpiration = true
            case "false", "0", "no": jwt.requireExpiration = false
            default:
                throw SocketServerConfigurationError(
                    variable: Key.jwtRequireExpiration,
                    message: "must be true or false, got '\(text)'"
                )
            }
        }
        return jwt
    }

    /// Reads `SOCKET_WS_COMPRESSION` (`on`/`off`, also `true`/`false`, `1`/`0`) and
    /// `SOCKET_WS_COMPRESSION_THRESHOLD` (bytes); a threshold with compression off is refused, not ignored.
    static func webSocketCompression(
        _ read: (String) -> String?
    ) throws(SocketServerConfigurationError) -> SocketWebSocketCompression? {
        let setting = try Self.switchWithThreshold(
            EnvironmentKey.webSocketCompression,
            EnvironmentKey.webSocketCompressionThreshold,
            read
        )
        guard setting.on else { return nil }
        return setting.threshold.map { SocketWebSocketCompression(threshold: $0) } ?? SocketWebSocketCompression()
    }

    /// Reads `SOCKET_HTTP_COMPRESSION` (`on`/`off`) and `SOCKET_HTTP_COMPRESSION_THRESHOLD` (bytes); a threshold
    /// with compression off is refused, not ignored.
    static func httpCompression(
        _ read: (String) -> String?
    ) throws(SocketServerConfigurationError) -> SocketHTTPCompression? {
        let setting = try Self.switchWithThreshold(
            EnvironmentKey.httpCompression,
            EnvironmentKey.httpCompressionThreshold,
            read
        )
        guard setting.on else { return nil }
        return setting.threshold.map { SocketHTTPCompression(threshold: $0) } ?? SocketHTTPCompression()
    }

    /// The switch `switchName` (``onOff(_:_:)``, off when unset) and the byte count `thresholdName` (nil when
    /// unset); a threshold with the switch off is refused, not ignored.
    private static func switchWithThreshold(
        _ switchName: String,
        _ thresholdName: String,
        _ read: (String) -> String?
    ) throws(SocketServerConfigurationError) -> (on: Bool, threshold: Int?) {
        let on = try Self.onOff(switchName, read) ?? false
        guard let text = read(thresholdName) else { return (on, nil) }
        guard let threshold = Int(text), threshold >= 0 else {
            throw SocketServerConfigurationError(
                variable: thresholdName,
                message: "must be a whole number of bytes, 0 or more, got '\(text)'"
            )
        }
        guard on else {
            throw SocketServerConfigurationError(
                variable: thresholdName,
                message: "is set but \(switchName) is not 'on'"
            )
        }
        return (on, threshold)
    }

    /// The switch `name` (`on`/`off`, also `true`/`false`, `1`/`0`), or nil when unset.
    private static func onOff(
        _ name: String,
        _ read: (String) -> String?
    ) throws(SocketServerConfigurationError) -> Bool? {
        guard let text = read(name) else { return nil }
        switch text.lowercased() {
        case "off", "false", "0": return false
        case "on", "true", "1": return true
        default: throw SocketServerConfigurationError(variable: name, message: "must be 'on' or 'off', got '\(text)'")
        }
    }

    /// The CORS policy for a list of origins: none for an empty list, any when it holds `*`.
    public static func corsPolicy(_ origins: [String]) -> CORSPolicy {
        let origins = origins.filter { !$0.isEmpty }
        if origins.isEmpty { return .none }
        if origins.contains("*") { return .any }
        return .origins(origins)
    }

    private static func trimmed(_ text: String) -> String {
        var text = Substring(text)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
