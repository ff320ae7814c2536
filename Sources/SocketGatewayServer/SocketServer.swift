package import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayRedis
public import ServiceLifecycle
public import SocketGatewayEngineIO
public import Logging

/// A Socket.IO v5 server (Engine.IO v4: WebSocket, long-polling, upgrade) on its own event loops.
///
/// Register namespaces and handlers, then `run()` it in a `ServiceGroup` (or call `start()` and `shutdown()`).
public final class SocketServer: Service, Sendable {
    /// The settings.
    public let configuration: SocketServerConfiguration
    /// The emit API for this server's clients.
    public let gateway: SocketGateway

    private let eventLoopGroup: MultiThreadedEventLoopGroup
    private let engine: EngineIOServer
    private let registry: NamespaceRegistry
    private let logger: Logger
    private let state = NIOLockedValueBox(LifecycleState.idle)
    /// Why the configuration cannot be used (an invalid setting or Redis URL, no authentication); `start()` throws it.
    private let configurationError: SocketServerConfigurationError?
    /// Whether clients connect without authentication (`allowAnonymous`).
    private let isAnonymous: Bool

    private enum LifecycleState {
        case idle, started, shutDown
    }

    /// Creates a server; nothing listens until `start()` or `run()`, which throws when the configuration cannot
    /// be used (``SocketServerConfiguration/validate()``, an invalid Redis URL, no authentication).
    /// - Parameters:
    ///   - configuration: Address, paths, timeouts.
    ///   - authenticator: Decides who may connect; nil uses `configuration.tokenSecret` (HS256 JWT) when set,
    ///     else accepts everyone if `configuration.allowAnonymous` — and refuses to start otherwise.
    ///   - logger: Where the server logs.
    ///   - httpFallback: Answers HTTP requests outside the Socket.IO path (e.g. a page at `/`); nil answers 404.
    ///     `GET /healthz` is answered before it with ``clusterHealth`` as JSON.
    ///   - cluster: Your own link to the other servers (``ClusterAdapter``); nil uses `configuration.redis` when
    ///     set, else runs local-only. Setting both is a configuration error.
    public convenience init(
        configuration: SocketServerConfiguration, authenticator: (any SocketAuthenticator)? = nil, logger: Logger,
        httpFallback: (any HTTPFallbackResponder)? = nil, cluster: (any ClusterAdapter)? = nil
    ) {
        self.init(
            configuration: configuration, authenticator: authenticator, logger: logger, httpFallback: httpFallback,
            metricsFactory: MetricsSystem.factory, cluster: cluster)
    }

    /// Creates a server whose metrics go to `metricsFactory` (tests pass a `TestMetrics`).
    package init(
        configuration: SocketServerConfiguration, authenticator: (any SocketAuthenticator)?, logger: Logger,
        httpFallback: (any HTTPFallbackResponder)?, metricsFactory: any MetricsFactory,
        cluster customCluster: (any ClusterAdapter)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        self.eventLoopGroup = group
        let metrics = SocketServerMetrics(factory: metricsFactory)
        let registry = NamespaceRegistry(metrics: metrics)
        self.registry = registry
        let shards = RoomShards(eventLoopGroup: group)
        var cluster: any ClusterAdapter = customCluster ?? LocalOnlyClusterAdapter()
        var configurationError: SocketServerConfigurationError?
        do {
            try configuration.validate()
        } catch {
            configurationError = error
        }
        if configuration.redis != nil, customCluster != nil {
            configurationError =
                configurationError
                ?? SocketServerConfigurationError(
                    variable: "redis", message: "is set and a cluster adapter was passed: use one of them")
        } else if let redis = configuration.redis {
            var signingKey: PubSubSigningKey?
            if let secret = redis.signingSecret {
                do {
                    signingKey = try PubSubSigningKey(secret: secret, maximumAge: redis.timings.signedMessageMaxAge)
                } catch {
                    configurationError = SocketServerConfigurationError(
                        variable: "redis.signingSecret",
                        message: error.description
                    )
                }
            }
            if configurationError == nil {
                do {
                    cluster = try RedisClusterAdapter(
                        configuration: redis,
                        inboundValidation: configuration.inboundValidation,
                        signingKey: signingKey,
                        logger: logger
                    )
                } catch {
                    configurationError = SocketServerConfigurationError(variable: "redis.url", message: error.description)
                }
            }
        }
        var authenticator = authenticator
        if authenticator == nil, let secret = configuration.tokenSecret {
            do {
                authenticator = try JWTAuthenticator(secret: secret, logger: logger)
            } catch {
                configurationError = configurationError ?? error
            }
        }
        if authenticator == nil, !configuration.allowAnonymous {
            configurationError =
                configurationError
                ?? SocketServerConfigurationError(
                    variable: "tokenSecret",
                    message: "no authentication: pass an authenticator, set tokenSecret, "
                        + "or set allowAnonymous to accept unauthenticated clients"
                )
        }
        self.isAnonymous = authenticator == nil
        self.configurationError = configurationError
        self.gateway = SocketGateway(shards: shards, cluster: cluster, metrics: metrics, logger: logger)
        let application = SocketIOApplication(
            registry: registry,
            authenticator: authenticator,
            connectTimeout: configuration.connectTimeout,
            limits: SocketIOLimits(configuration),
            shards: shards,
            metrics: metrics,
            logger: logger)
        self.engine = EngineIOServer(
            host: configuration.host, port: configuration.port, eventLoopGroup: group, logger: logger,
            fallback: HealthCheckResponder(next: httpFallback) { [cluster] in cluster.health })
        self.engine.mount(path: configuration.path, configuration: configuration.engineIO, application: application)
    }

    /// Returns the namespace `name` (created if needed); `/` always exists.
    @discardableResult
    public func namespace(_ name: String) -> SocketNamespace {
        self.registry.namespace(name)
    }

    /// Mounts another Engine.IO endpoint on the same listener (e.g. the conformance suite's `/engine.io/` echo).
    /// Call before `start()`.
    package func mountEngineIO(path: String, configuration: EngineIOConfiguration, application: any EngineIOApplication) {
        self.engine.mount(path: path, configuration: configuration, application: application)
    }

    /// Binds and returns once the server is listening.
    public func start() async throws {
        let shouldStart = self.state.withLockedValue { state -> Bool in
            guard case .idle = state else { return false }
            state = .started
            return true
        }
        guard shouldStart else { return }
        if let error = self.configurationError { throw error }
        if self.isAnonymous {
            self.logger.warning("clients are NOT authenticated (allowAnonymous): emits to users reach nobody")
        }
        if self.gateway.cluster is LocalOnlyClusterAdapter {
            self.logger.warning("\(self.gateway.cluster.modeDescription)")
        } else {
            self.logger.info("\(self.gateway.cluster.modeDescription)")
        }
        try await self.engine.start()
        self.gateway.cluster.start(gateway: self.gateway)
        self.logger.info(
            "socket.io server listening",
            metadata: [
                "host": "\(self.configuration.host)", "port": "\(self.engine.localPort ?? self.configuration.port)",
                "path": "\(self.configuration.path)",
            ])
    }

    /// How the link to the other servers is doing (also served as JSON at `GET /healthz`).
    public var clusterHealth: ClusterHealth { self.gateway.cluster.health }

    /// The port the server listens on (useful with port 0), once started.
    public var localPort: Int? { self.engine.localPort }

    /// Closes every session, stops listening and stops the event loops. Idempotent.
    public func shutdown() async throws {
        let previous = self.state.withLockedValue { state -> LifecycleState in
            let previous = state
            state = .shutDown
            return previous
        }
        switch previous {
        case .shutDown:
            return
        case .started:
            await self.gateway.cluster.shutdown()
            try await self.engine.shutdown()
        case .idle:
            break
        }
        try await self.eventLoopGroup.shutdownGracefully()
        self.logger.info("socket.io server stopped")
    }

    /// The bytes waiting for all clients together at the last outbound budget check (see
    /// ``SocketServerConfiguration/maxBufferedBytesTotal``).
    package var bufferedBytes: Int { self.engine.bufferedBytes }

    /// Starts, waits for graceful shutdown (or cancellation), then shuts down.
    public func run() async throws {
        do {
            try await self.start()
        } catch {
            try? await self.shutdown()
            throw error
        }
        // Throws CancellationError when the task is cancelled: shut down either way.
        try? await gracefulShutdown()
        try await self.shutdown()
    }
}
