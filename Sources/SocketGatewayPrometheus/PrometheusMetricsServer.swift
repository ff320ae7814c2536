public import Logging
import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
public import Prometheus
public import ServiceLifecycle
import SocketGatewayEngineIO
public import SocketGatewayServer

/// A listener of its own that answers `GET <path>` (default `/metrics`) with `registry` in the Prometheus text
/// format, and 404 to everything else; for keeping metrics off the Socket.IO port (e.g. a port only the scraper
/// reaches). The HTTP limits of a Socket.IO listener apply (idle, header and body timeouts, header size,
/// connections per address): those of the `httpLimits` configuration given, `serve` gives its own.
///
/// A swift-service-lifecycle `Service`: put it in the `ServiceGroup` beside the `SocketServer`.
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
/// let metrics = PrometheusMetricsServer(host: "127.0.0.1", port: 9090, registry: registry, logger: logger)
/// // ServiceGroup(services: [server, metrics], ...)
/// ```
public final class PrometheusMetricsServer: Service, Sendable {
    private let engine: EngineIOServer
    private let host: String
    private let port: Int
    private let listening = NIOLockedValueBox<(port: Int?, waiters: [CheckedContinuation<Int?, Never>])?>(
        (nil, [])
    )

    /// Creates the server; nothing listens until ``run()``.
    /// - Parameters:
    ///   - host: The address to bind, e.g. `127.0.0.1`.
    ///   - port: The port; 0 picks a free one (``localPort``).
    ///   - path: The path answered.
    ///   - registry: The registry served (the one the `PrometheusMetricsFactory` writes to).
    ///   - eventLoopGroup: The loops it runs on (not shut down by this server).
    ///   - httpLimits: The configuration whose HTTP limits apply (`httpIdleTimeout`, `httpHeaderTimeout`,
    ///     `httpBodyTimeout`, `maxRequestHeaderBytes`, `maxConnectionsPerAddress`, `trustedProxies`); pass the
    ///     Socket.IO server's so both listeners close slow or oversized requests alike. Default: their defaults.
    ///   - logger: Where to log.
    public init(
        host: String,
        port: Int,
        path: String = "/metrics",
        registry: PrometheusCollectorRegistry,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        httpLimits: SocketServerConfiguration? = nil,
        logger: Logger
    ) {
        self.host = host
        self.port = port
        self.engine = EngineIOServer(
            host: host,
            port: port,
            eventLoopGroup: eventLoopGroup,
            logger: logger,
            fallback: PrometheusMetricsResponder(registry: registry, path: path),
            unmountedLimits: httpLimits?.engineIO ?? EngineIOConfiguration()
        )
    }

    /// The bound port while running.
    public var localPort: Int? { self.engine.localPort }

    /// Waits until the server listens.
    /// - Returns: The port; nil when it failed to bind or stopped first.
    public func waitUntilListening() async -> Int? {
        await withCheckedContinuation { continuation in
            let resolved = self.listening.withLockedValue { state -> Int?? in
                guard var pending = state else { return .some(nil) }
                if let port = pending.port { return .some(port) }
                pending.waiters.append(continuation)
                state = pending
                return .none
            }
            if let port = resolved { continuation.resume(returning: port) }
        }
    }

    /// Listens until graceful shutdown (or cancellation), then stops listening and closes its connections.
    /// - Throws: ``PrometheusMetricsListenError`` when the address cannot be bound.
    public func run() async throws {
        do {
            try await self.engine.start()
        } catch {
            self.resolve(nil)
            throw PrometheusMetricsListenError(host: self.host, port: self.port, underlying: error)
        }
        self.resolve(self.engine.localPort)
        await withDiscardingTaskGroup { group in
            group.addTask { await self.engine.tasks.run() }
            try? await gracefulShutdown()
            try? await self.engine.shutdown()
            self.engine.tasks.finish()
            if !(await self.engine.tasks.waitUntilDrained(timeout: .seconds(5))) { group.cancelAll() }
        }
        self.resolve(nil)
    }

    /// Tells the callers of ``waitUntilListening()`` the port (nil: not listening); the first call wins, later
    /// ones only mark the server as stopped.
    private func resolve(_ port: Int?) {
        let waiters = self.listening.withLockedValue { state -> [CheckedContinuation<Int?, Never>] in
            guard let pending = state else { return [] }
            if port != nil, pending.port == nil {
                state = (port, [])
            } else {
                state = nil
            }
            return pending.waiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }
}

/// ``PrometheusMetricsServer`` could not listen on `host`:`port`.
public struct PrometheusMetricsListenError: Error, CustomStringConvertible {
    /// The address it tried.
    public var host: String
    /// The port it tried.
    public var port: Int
    /// Why (an `IOError` from bind, or an address that does not resolve).
    public var underlying: any Error

    /// `cannot serve metrics on host:port: underlying`.
    public var description: String { "cannot serve metrics on \(self.host):\(self.port): \(self.underlying)" }
}
