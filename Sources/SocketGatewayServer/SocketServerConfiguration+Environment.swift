public import SocketGatewayEngineIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a clustered server meets the other servers and the workers: a Redis URL and a channel.
public struct SocketServerRedisConfiguration: Sendable, Hashable {
    /// `redis://[user:password@]host[:port][/db]` or `unix:///path/redis.sock`.
    public var url: String
    /// The pub/sub channel, `socketio` (python-socketio's default) unless changed.
    public var channel: String
    /// How long a gateway emit waits for Redis to accept the publish before it returns `.queued`.
    public var publishTimeout: Duration
    /// How many of this server's messages are held while Redis is unreachable (sent in order on reconnect);
    /// 0 drops them (python-socketio's behaviour).
    public var outboxCapacity: Int

    /// Creates a Redis setting.
    public init(
        url: String,
        channel: String = "socketio",
        publishTimeout: Duration = .seconds(2),
        outboxCapacity: Int = 1000
    ) {
        self.url = url
        self.channel = channel
        self.publishTimeout = publishTimeout
        self.outboxCapacity = outboxCapacity
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
        /// The HS256 secret of client tokens.
        public static let tokenSecret = "SOCKET_TOKEN_SECRET"
        /// Comma-separated allowed origins for long-polling; `*` allows any.
        public static let corsOrigins = "SOCKET_CORS_ORIGINS"
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
                channel: read(EnvironmentKey.redisChannel) ?? "socketio"
            )
        }
        self.tokenSecret = read(EnvironmentKey.tokenSecret)
        if let origins = read(EnvironmentKey.corsOrigins) {
            self.cors = Self.corsPolicy(origins.split(separator: ",").map { Self.trimmed(String($0)) })
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
