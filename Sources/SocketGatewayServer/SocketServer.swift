package import CoreMetrics
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import ServiceLifecycle
public import SocketGatewayEngineIO
import SocketGatewayRedis

/// A Socket.IO v5 server (Engine.IO v4: WebSocket, long-polling, upgrade) on its own event loops.
///
/// Register namespaces and handlers, then `run()` it in a `ServiceGroup` (or call `start()` and `shutdown()`).
///
/// Every task the server starts for its clients — a connection's handler loop, an authentication, the ack of a
/// remote emit, a fallback HTTP response — is a child of `run()` (through one task group), so a graceful shutdown
/// waits for them within ``SocketServerConfiguration/shutdownGracePeriod``, then cancels what is left; nothing
/// the server started runs after `run()` returned. Without `run()`, `start()` runs them in one task that
/// `shutdown()` waits for and cancels the same way.
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
    /// The tasks the server starts for its clients: run by `run()` (a child task), or by `startedRunner`.
    private let tasks: ServerTaskPool
    /// The one task that runs `tasks` when the server was started with `start()` rather than `run()`; `shutdown()`
    /// cancels it after the grace period and waits for it.
    private let startedRunner = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// Tells `waitUntilListening()` callers the port once bound (nil if the server stopped or failed first).
    private let listening = ListeningSignal()
    /// Why the configuration cannot be used (an invalid setting or Redis URL, no authentication); `start()` throws it.
    private let configurationError: SocketServerConfigurationError?
    /// Whether clients connect without authentication (`allowAnonymous`).
    private let isAnonymous: Bool
    /// The listener's certificate when ``SocketServerConfiguration/tls`` is set (and its files could be read).
    private let tls: EngineIOTLSContext?

    private enum LifecycleState {
        /// Not started yet.
        case idle
        /// Listening (or about to: `bind()` is in `listen()`).
        case started
        /// `listen()` threw: nothing listened, so there is nothing to stop but the event loops.
        case failedToStart
        /// `shutdown()` or `run()`'s graceful shutdown has begun.
        case shutDown
    }

    /// Creates a server; nothing listens until `start()` or `run()`, which throws when the configuration cannot
    /// be used (``SocketServerConfiguration/validate()``, an invalid Redis URL, no authentication).
    /// - Parameters:
    ///   - configuration: Address, paths, timeouts.
    ///   - authenticator: Decides who may connect; nil uses `configuration.jwt` / `configuration.tokenSecret` (JWTs)
    ///     when set, else accepts everyone if `configuration.allowAnonymous` — and refuses to start otherwise.
    ///     It runs as the first middleware (``SocketMiddleware/authenticate(with:)``), before those added with `use`.
    ///   - logger: Where the server logs.
    ///   - httpFallback: Answers HTTP requests outside the Socket.IO path (e.g. a page at `/`); nil answers 404.
    ///     `GET /healthz` is answered before it with ``clusterHealth`` as JSON.
    ///   - cluster: Your own link to the other servers (``ClusterAdapter``); nil uses `configuration.redis` when
    ///     set, else runs local-only. Setting both is a configuration error.
    public convenience init(
        configuration: SocketServerConfiguration,
        authenticator: (any SocketAuthenticator)? = nil,
        logger: Logger,
        httpFallback: (any HTTPFallbackResponder)? = nil,
        cluster: (any ClusterAdapter)? = nil
    ) {
        self.init(
            configuration: configuration,
            authenticator: authenticator,
            logger: logger,
            httpFallback: httpFallback,
            metricsFactory: MetricsSystem.factory,
            cluster: cluster
        )
    }

    /// Creates a server whose metrics go to `metricsFactory` (tests pass a `TestMetrics`).
    package init(
        configuration: SocketServerConfiguration,
        authenticator: (any SocketAuthenticator)?,
        logger: Logger,
        httpFallback: (any HTTPFallbackResponder)?,
        metricsFactory: any MetricsFactory,
        cluster customCluster: (any ClusterAdapter)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        self.eventLoopGroup = group
        let metrics = SocketServerMetrics(factory: metricsFactory)
        let registry = NamespaceRegistry(metrics: metrics)
        self.registry = registry
        let shards = RoomShards(
            eventLoopGroup: group,
            roomsGauge: metrics.rooms,
            recovery: configuration.connectionStateRecovery
        )
        let tasks = ServerTaskPool()
        self.tasks = tasks
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
                    variable: "redis",
                    message: "is set and a cluster adapter was passed: use one of them"
                )
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
                    configurationError = SocketServerConfigurationError(
                        variable: error.code == .invalidTLSConfiguration ? "redis.tls" : "redis.url",
                        message: error.description
                    )
                }
            }
        }
        var authenticator = authenticator
        if authenticator == nil, configuration.tokenSecret != nil || configuration.jwt != nil {
            var jwt = configuration.jwt ?? JWTAuthenticator.Configuration()
            if jwt.secret == nil { jwt.secret = configuration.tokenSecret }
            do {
                authenticator = try JWTAuthenticator(configuration: jwt, logger: logger)
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
        if let authenticator {
            // The authenticator is the first server middleware: the app's middlewares see its user.
            registry.use(.authenticate(with: authenticator))
        }
        var tls: EngineIOTLSContext?
        if let files = configuration.tls {
            do {
                tls = try EngineIOTLSContext(
                    certificateChainFile: files.certificateChainFile,
                    privateKeyFile: files.privateKeyFile,
                    handshakeTimeout: TimeAmount(files.handshakeTimeout)
                )
            } catch {
                configurationError =
                    configurationError ?? SocketServerConfigurationError(variable: "tls", message: error.message)
            }
        }
        self.tls = tls
        self.configurationError = configurationError
        self.gateway = SocketGateway(
            shards: shards,
            cluster: cluster,
            metrics: metrics,
            tasks: tasks,
            logger: logger,
            registry: registry
        )
        let application = SocketIOApplication(
            registry: registry,
            connectTimeout: configuration.connectTimeout,
            limits: SocketIOLimits(configuration),
            shards: shards,
            metrics: metrics,
            tasks: tasks,
            logger: logger
        )
        self.engine = EngineIOServer(
            host: configuration.host,
            port: configuration.port,
            eventLoopGroup: group,
            logger: logger,
            fallback: HealthCheckResponder(next: httpFallback) { [cluster] in cluster.health },
            tasks: tasks,
            tls: tls
        )
        self.engine.mount(path: configuration.path, configuration: configuration.engineIO, application: application)
    }

    /// Returns the namespace `name` (created if needed); `/` always exists.
    @discardableResult
    public func namespace(_ name: String) -> SocketNamespace {
        self.registry.namespace(name)
    }

    /// Adds a server middleware: run before a client's CONNECT to any namespace is accepted, after the
    /// authenticator and earlier server middlewares, before the namespace's own (socket.io's `io.use`).
    /// - Parameter middleware: Reads the request, may set its user and data, refuses by throwing
    ///   ``SocketConnectRefusal``.
    public func use(_ middleware: @escaping SocketMiddleware.Body) {
        self.registry.use(SocketMiddleware(middleware))
    }

    /// Adds a server middleware (see the closure form of `use`).
    public func use(_ middleware: SocketMiddleware) {
        self.registry.use(middleware)
    }

    /// Adds a dynamic namespace (socket.io's `io.of(function)`): a client may connect to any namespace name
    /// `accepts` (unless a namespace of that name is registered), and gets a child namespace of that name that
    /// runs the returned parent's middlewares and handlers. Children live while they have connections; the
    /// gateway emits to one by its name (``SocketGateway/emit(_:arguments:to:options:)``), to all of them with
    /// ``SocketGateway/emit(_:arguments:to:inChildrenOf:)``.
    /// - Parameters:
    ///   - name: The parent's name, for logs and metrics (its children's connections count under it).
    ///   - accepts: Whether a namespace name (starting with `/`) is one of the parent's children; called on the
    ///     event loop for each CONNECT to an unknown name, so keep it quick.
    /// - Returns: The parent: add handlers and middlewares to it.
    @discardableResult
    public func dynamicNamespace(
        _ name: String,
        accepting accepts: @escaping @Sendable (String) -> Bool
    ) -> SocketNamespace {
        self.registry.dynamicNamespace(label: name, accepts: accepts)
    }

    /// Adds a dynamic namespace whose children are the names `pattern` matches whole (socket.io's
    /// `io.of(/^\/dynamic-\d+$/)`), e.g. `server.dynamicNamespace("/dynamic-*", matching: #/\/dynamic-\d+/#)`.
    /// - Parameters:
    ///   - name: The parent's name, for logs and metrics.
    ///   - pattern: Matched against the whole namespace name, which starts with `/`.
    /// - Returns: The parent: add handlers and middlewares to it.
    @discardableResult
    public func dynamicNamespace(_ name: String, matching pattern: Regex<Substring>) -> SocketNamespace {
        let matcher = LockedRegex(pattern)
        return self.registry.dynamicNamespace(label: name) { matcher.wholeMatches($0) }
    }

    /// Mounts another Engine.IO endpoint on the same listener (e.g. the conformance suite's `/engine.io/` echo).
    /// Call before `start()`.
    package func mountEngineIO(path: String, configuration: EngineIOConfiguration, application: any EngineIOApplication)
    {
        self.engine.mount(path: path, configuration: configuration, application: application)
    }

    /// The Socket.IO endpoint for a framework to carry (its routes and WebSocket support; see
    /// SocketGatewayHummingbird): from then on the server binds no listener of its own, and `run()` runs only its
    /// sessions, tasks and cluster link. Call before `start()` or `run()`.
    package func mountedEndpoint() -> EngineIOMountedEndpoint {
        guard let endpoint = self.engine.mountedEndpoint(path: self.configuration.path) else {
            preconditionFailure("the Socket.IO endpoint is mounted in init")
        }
        return endpoint
    }

    /// An endpoint added with ``mountEngineIO(path:configuration:application:)``, for a framework to carry like
    /// ``mountedEndpoint()``; nil when none is mounted at `path`.
    package func mountedEngineIOEndpoint(path: String) -> EngineIOMountedEndpoint? {
        self.engine.mountedEndpoint(path: path)
    }

    /// Binds and returns once the server is listening.
    ///
    /// Without ``run()``: the server's tasks (handler loops, authentications, remote acks, fallback responses)
    /// run in one task that ``shutdown()`` waits for and cancels; prefer ``run()`` in a `ServiceGroup`, which owns
    /// them as child tasks.
    public func start() async throws {
        guard try await self.bind() else { return }
        let tasks = self.tasks
        self.startedRunner.withLockedValue { $0 = Task { await tasks.run() } }
    }

    /// Binds, once.
    /// - Returns: false when the server was already started or shut down (nothing done).
    private func bind() async throws -> Bool {
        let shouldStart = self.state.withLockedValue { state -> Bool in
            guard case .idle = state else { return false }
            state = .started
            return true
        }
        guard shouldStart else { return false }
        do {
            try await self.listen()
        } catch {
            self.state.withLockedValue { state in
                if case .started = state { state = .failedToStart }
            }
            self.listening.resolve(nil)
            throw error
        }
        self.listening.resolve(self.engine.localPort ?? self.configuration.port)
        return true
    }

    private func listen() async throws {
        if let error = self.configurationError { throw error }
        // Bind first: a server that cannot listen says only why (its caller reports the error), not how it would
        // have run.
        try await self.engine.start()
        if self.isAnonymous {
            self.logger.warning("clients are NOT authenticated (allowAnonymous): emits to users reach nobody")
        }
        if self.gateway.cluster is LocalOnlyClusterAdapter {
            self.logger.warning("\(self.gateway.cluster.modeDescription)")
        } else {
            self.logger.info("\(self.gateway.cluster.modeDescription)")
        }
        self.gateway.cluster.start(gateway: self.gateway)
        if let recovery = self.configuration.connectionStateRecovery {
            self.logger.info(
                "connection state recovery on (this server's clients only)",
                metadata: ["window": "\(recovery.maxDisconnectionDuration)"]
            )
        }
        guard self.engine.listens else {
            self.logger.info("socket.io server mounted", metadata: ["path": "\(self.configuration.path)"])
            return
        }
        self.logger.info(
            "socket.io server listening",
            metadata: [
                "host": "\(self.configuration.host)", "port": "\(self.engine.localPort ?? self.configuration.port)",
                "path": "\(self.configuration.path)",
            ]
        )
    }

    /// Waits until the server listens (through ``run()`` or ``start()``), for a caller that runs it in a
    /// `ServiceGroup` and must announce its port.
    /// - Returns: The port; nil when the server failed to start or was shut down first, or the task was cancelled.
    package func waitUntilListening() async -> Int? {
        await self.listening.wait()
    }

    /// Reads the TLS certificate chain and key files again (``SocketServerConfiguration/tls``): connections
    /// accepted from now on get the new certificate, open connections keep the one they started with. A file that
    /// cannot be used leaves the previous certificate in place; either way the outcome is logged.
    /// - Throws: ``SocketServerConfigurationError`` (`tls`) naming the file that cannot be used, or saying that the
    ///   server has no TLS configured.
    public func reloadTLS() throws(SocketServerConfigurationError) {
        guard let tls = self.tls else {
            throw SocketServerConfigurationError(variable: "tls", message: "is not set: there is nothing to reload")
        }
        do {
            try tls.reload()
        } catch {
            self.logger.error(
                "TLS reload failed; new connections keep getting the previous certificate",
                metadata: ["why": "\(error.message)"]
            )
            throw SocketServerConfigurationError(variable: "tls", message: error.message)
        }
        let leaf = tls.leafSummary
        self.logger.notice(
            "TLS certificate reloaded; new connections get it, open ones keep theirs",
            metadata: [
                "certificate": "\(tls.certificateChainFile)", "serial": "\(leaf.serial)",
                "not_valid_after": "\(leaf.notValidAfter)",
            ]
        )
    }

    /// How the link to the other servers is doing (also served as JSON at `GET /healthz`).
    public var clusterHealth: ClusterHealth { self.gateway.cluster.health }

    /// The port the server listens on (useful with port 0), once started.
    public var localPort: Int? { self.engine.localPort }

    /// Shuts down gracefully, in the order that ``SocketServerConfiguration/shutdownGracePeriod`` describes: stops
    /// accepting and closes every session, lets the server's tasks end within the grace period, cancels the rest,
    /// drains the cluster outbox, stops the event loops. Idempotent; returns once everything the server started
    /// has ended.
    public func shutdown() async throws {
        let runner = self.startedRunner.withLockedValue { $0 }
        guard let previous = await self.stopTasks(cancel: { runner?.cancel() }) else { return }
        await runner?.value
        try await self.finishShutdown(previous)
    }

    /// Steps 1–3 of the shutdown: stop accepting (listener and sessions closed, new tasks refused), wait for the
    /// tasks within the grace period, then call `cancel` if some are still running.
    /// - Returns: The state the server was in; nil when it was already shut down.
    private func stopTasks(cancel: () -> Void) async -> LifecycleState? {
        let previous = self.state.withLockedValue { state -> LifecycleState in
            let previous = state
            state = .shutDown
            return previous
        }
        if case .shutDown = previous { return nil }
        self.listening.resolve(nil)
        if case .started = previous {
            // Closing the sessions queues their onDisconnect handlers (behind the running ones) before `finish()`.
            try? await self.engine.shutdown()
        }
        self.tasks.finish()
        let gracePeriod = self.configuration.shutdownGracePeriod
        if !(await self.tasks.waitUntilDrained(timeout: gracePeriod)) {
            self.logger.warning(
                "cancelling the tasks still running after the shutdown grace period",
                metadata: ["tasks": "\(self.tasks.unfinishedJobs)", "grace_period": "\(gracePeriod)"]
            )
            cancel()
        }
        return previous
    }

    /// Steps 4–5 of the shutdown, once every task of the server has ended: drain the cluster outbox, stop the loops.
    private func finishShutdown(_ previous: LifecycleState) async throws {
        if case .started = previous {
            await self.gateway.cluster.shutdown()
        }
        try await self.eventLoopGroup.shutdownGracefully()
        // A server that never listened did not stop: the caller reports why it could not start.
        if case .started = previous {
            self.logger.info("socket.io server stopped")
        }
    }

    /// The bytes waiting for all clients together at the last outbound budget check (see
    /// ``SocketServerConfiguration/maxBufferedBytesTotal``).
    package var bufferedBytes: Int { self.engine.bufferedBytes }

    /// Starts, waits for graceful shutdown (or cancellation), then shuts down (see ``shutdown()``).
    ///
    /// Every task the server starts for its clients is a child of this call: it returns only once they have all
    /// ended. Cancelling it cancels them at once (no grace period).
    public func run() async throws {
        do {
            _ = try await self.bind()
        } catch {
            try? await self.shutdown()
            throw error
        }
        let previous = await withDiscardingTaskGroup(returning: LifecycleState?.self) { group in
            group.addTask { await self.tasks.run() }
            // Throws CancellationError when the task is cancelled: shut down either way.
            try? await gracefulShutdown()
            let runner = self.startedRunner.withLockedValue { $0 }
            return await self.stopTasks {
                group.cancelAll()
                runner?.cancel()
            }
        }
        // Every child has ended here (the group waited for them).
        await self.startedRunner.withLockedValue { $0 }?.value
        guard let previous else { return }
        try await self.finishShutdown(previous)
    }
}

/// A `Regex` (not `Sendable`) used from any thread: every match holds the lock.
private final class LockedRegex: @unchecked Sendable {
    private let lock = NIOLock()
    private let regex: Regex<Substring>

    init(_ regex: Regex<Substring>) {
        self.regex = regex
    }

    /// Whether the regex matches the whole of `text`.
    func wholeMatches(_ text: String) -> Bool {
        self.lock.withLock { (try? self.regex.wholeMatch(in: text)) != nil }
    }
}

/// A port announced once: callers of `wait()` get it when `resolve` is called (the first call wins).
private final class ListeningSignal: Sendable {
    private struct State {
        var port: Int??
        var waiters: [UInt64: CheckedContinuation<Int?, Never>] = [:]
        var nextID: UInt64 = 0
    }
    private let state = NIOLockedValueBox(State())

    func resolve(_ port: Int?) {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Int?, Never>] in
            guard state.port == nil else { return [] }
            state.port = .some(port)
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    func wait() async -> Int? {
        let id = self.state.withLockedValue { state -> UInt64 in
            defer { state.nextID &+= 1 }
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int?, Never>) in
                let now = self.state.withLockedValue { state -> Int?? in
                    if let port = state.port { return .some(port) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }
}
