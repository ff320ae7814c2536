import SocketGatewayCore
public import SocketGatewayServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where `/metrics` is served: on the Socket.IO listener at a path, on a listener of its own, or not at all.
/// `socket-gateway serve` reads it from the environment (``init(environment:server:)``).
public struct PrometheusMetricsConfiguration: Sendable, Hashable {
    /// Where the metrics are served.
    public enum Exposure: Sendable, Hashable {
        /// Nowhere: no Prometheus registry is bootstrapped.
        case off
        /// On the Socket.IO listener, at `path` (beside `/healthz`).
        case socketListener(path: String)
        /// On a listener of its own, at `path` (everything else there is 404).
        case ownListener(host: String, port: Int, path: String)
    }

    /// The environment variables ``init(environment:server:)`` reads.
    public enum EnvironmentKey {
        /// `on` (default) or `off`.
        public static let metrics = "SOCKET_METRICS"
        /// The path (default `/metrics`).
        public static let path = "SOCKET_METRICS_PATH"
        /// A port of its own; unset serves the metrics on the Socket.IO listener.
        public static let port = "SOCKET_METRICS_PORT"
        /// The address of that port (default: the server's `HOST`); only with ``port``.
        public static let host = "SOCKET_METRICS_HOST"
    }

    /// The default path, `/metrics`.
    public static let defaultPath = "/metrics"

    /// Where the metrics are served.
    public var exposure: Exposure

    /// Creates a configuration.
    public init(exposure: Exposure = .socketListener(path: Self.defaultPath)) {
        self.exposure = exposure
    }

    /// Reads the configuration from ``EnvironmentKey``'s variables; nothing set serves `/metrics` on the Socket.IO
    /// listener.
    /// - Parameters:
    ///   - environment: The variables; nil reads the process environment.
    ///   - server: The server's final configuration: the metrics path must not hide its Engine.IO path or
    ///     `/healthz`, and a port of its own must differ from the server's.
    /// - Throws: ``SocketServerConfigurationError`` naming the variable, the value and what is allowed.
    public init(
        environment: [String: String]?,
        server: SocketServerConfiguration
    ) throws(SocketServerConfigurationError) {
        func read(_ name: String) -> String? {
            let value = environment.map { $0[name] } ?? getenv(name).map { String(cString: $0) }
            guard let value else { return nil }
            let trimmed = String(value.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
            return trimmed.isEmpty ? nil : trimmed
        }
        var enabled = true
        if let text = read(EnvironmentKey.metrics) {
            switch text.lowercased() {
            case "on", "true", "1", "yes": enabled = true
            case "off", "false", "0", "no": enabled = false
            default:
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.metrics,
                    message: "must be on or off, got '\(LogSafe.text(text))'"
                )
            }
        }
        let pathText = read(EnvironmentKey.path)
        let portText = read(EnvironmentKey.port)
        let hostText = read(EnvironmentKey.host)
        guard enabled else {
            if let name = [
                (EnvironmentKey.path, pathText), (EnvironmentKey.port, portText), (EnvironmentKey.host, hostText),
            ].first(where: { $0.1 != nil })?.0 {
                throw SocketServerConfigurationError(
                    variable: name,
                    message: "is set but \(EnvironmentKey.metrics)=off turns metrics off; unset one of the two"
                )
            }
            self.init(exposure: .off)
            return
        }
        let path = pathText ?? Self.defaultPath
        if let problem = Self.pathProblem(path) {
            throw SocketServerConfigurationError(
                variable: EnvironmentKey.path,
                message: "\(problem), got '\(LogSafe.text(path))'"
            )
        }
        guard let portText else {
            if hostText != nil {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.host,
                    message: "needs \(EnvironmentKey.port): without a port of their own the metrics are served on "
                        + "the Socket.IO listener"
                )
            }
            let engineIOPath = server.path.hasSuffix("/") ? String(server.path.dropLast()) : server.path
            if path == "/healthz" || path == engineIOPath || path.hasPrefix(engineIOPath + "/") {
                throw SocketServerConfigurationError(
                    variable: EnvironmentKey.path,
                    message: "'\(path)' is taken on the Socket.IO listener (\(server.path), /healthz); choose "
                        + "another path, e.g. \(Self.defaultPath)"
                )
            }
            self.init(exposure: .socketListener(path: path))
            return
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw SocketServerConfigurationError(
                variable: EnvironmentKey.port,
                message: "must be 0...65535 (0 picks a free port), got '\(LogSafe.text(portText))'"
            )
        }
        if port != 0, port == server.port {
            throw SocketServerConfigurationError(
                variable: EnvironmentKey.port,
                message: "is \(port), the Socket.IO port too; choose another port, or unset it to serve "
                    + "\(path) on the Socket.IO listener"
            )
        }
        self.init(exposure: .ownListener(host: hostText ?? server.host, port: port, path: path))
    }

    /// Why `path` cannot be the metrics path, or nil.
    static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "must start with '/'" }
        guard path.utf8.count <= 256 else { return "must be at most 256 bytes" }
        guard path != "/" else { return "must not be '/' alone" }
        let forbidden = path.unicodeScalars.first {
            $0.value < 0x21 || $0.value == 0x7F || $0 == "?" || $0 == "#" || $0 == "%" || $0.value > 0x7E
        }
        if forbidden != nil { return "must be printable ASCII without spaces, '?', '#' or '%'" }
        return nil
    }
}
