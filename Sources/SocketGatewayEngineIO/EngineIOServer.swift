package import Logging
import Metrics
import NIOConcurrencyHelpers
package import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import SocketGatewayCore

/// The NIO HTTP/1.1 + WebSocket server.
///
/// Routes requests by path prefix to mounted Engine.IO endpoints; other paths go to the optional
/// ``HTTPFallbackResponder`` or get 404. The event loop group belongs to the caller.
package final class EngineIOServer: Sendable {
    private struct State {
        var endpoints: [EngineIOEndpoint] = []
        var serverChannel: (any Channel)?
        var children: [ObjectIdentifier: any Channel] = [:]
        /// Open connections per client IP address, kept only when a per-address limit is configured.
        var connectionsPerAddress: [String: Int] = [:]
        /// The client address each connection from a trusted proxy is counted for (its latest request's
        /// `X-Forwarded-For`), kept only when a per-address limit is configured.
        var forwardedClients: [ObjectIdentifier: String] = [:]
        var started = false
        /// False when a framework carries the endpoints' bytes (``EngineIOServer/mountedEndpoint(path:)``).
        var listens = true
        var shuttingDown = false
        /// Checks the outbound memory budget every 500 ms while running.
        var budgetCheck: RepeatedTask?
        /// What the last check found waiting for all clients together.
        var bufferedBytes = 0

        /// Counts the open proxied connection `id` for `client` (moving it from the client it was counted for);
        /// false when `client` already holds `limit` connections. A closed connection is not counted.
        mutating func count(_ id: ObjectIdentifier, for client: String, limit: Int) -> Bool {
            guard self.children[id] != nil else { return false }
            let previous = self.forwardedClients[id]
            if previous == client { return true }
            guard self.connectionsPerAddress[client, default: 0] < limit else { return false }
            if let previous { self.release(previous) }
            self.connectionsPerAddress[client, default: 0] += 1
            self.forwardedClients[id] = client
            return true
        }

        /// One connection fewer for `address`.
        mutating func release(_ address: String) {
            let open = self.connectionsPerAddress[address, default: 1] - 1
            self.connectionsPerAddress[address] = open > 0 ? open : nil
        }
    }

    private let host: String
    private let port: Int
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let fallback: (any HTTPFallbackResponder)?
    /// When set, every connection speaks TLS (https:// polling and wss:// on the one listener) with the context's
    /// certificate at the time it is accepted.
    private let tls: EngineIOTLSContext?
    /// Where the fallback responses run: its owner runs it (`SocketServer.run()` does); until then they wait,
    /// after its `finish()` they are refused with 503.
    package let tasks: ServerTaskPool
    /// The HTTP limits of a listener with no endpoint mounted (a metrics or fallback-only listener): idle, header
    /// and body timeouts, header size, connections per address, trusted proxies. With endpoints, theirs apply.
    private let unmountedLimits: EngineIOConfiguration
    private let state = NIOLockedValueBox(State())

    /// Creates a server; nothing listens until ``start()``.
    /// - Parameters:
    ///   - host: the address to bind, e.g. `127.0.0.1`.
    ///   - port: the port; 0 picks a free one (see ``localPort``).
    ///   - eventLoopGroup: the loops to run on (owned by the caller).
    ///   - logger: where to log.
    ///   - fallback: answers requests for paths no endpoint is mounted at (default: 404); its responses are
    ///     produced in the server's task pool, which the server's owner runs (`SocketServer` does).
    package convenience init(
        host: String,
        port: Int,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        fallback: (any HTTPFallbackResponder)? = nil,
        tls: EngineIOTLSContext? = nil,
        unmountedLimits: EngineIOConfiguration = EngineIOConfiguration()
    ) {
        self.init(
            host: host,
            port: port,
            eventLoopGroup: eventLoopGroup,
            logger: logger,
            fallback: fallback,
            tasks: ServerTaskPool(),
            tls: tls,
            unmountedLimits: unmountedLimits
        )
    }

    /// Creates a server whose fallback responses run in `tasks` (run by the caller), speaking TLS when `tls` is set.
    package init(
        host: String,
        port: Int,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        fallback: (any HTTPFallbackResponder)?,
        tasks: ServerTaskPool,
        tls: EngineIOTLSContext? = nil,
        unmountedLimits: EngineIOConfiguration = EngineIOConfiguration()
    ) {
        self.tls = tls
        self.unmountedLimits = unmountedLimits
        self.host = host
        self.port = port
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.fallback = fallback
        self.tasks = tasks
    }

    /// Mounts an Engine.IO endpoint at `path` (e.g. `/engine.io/`). Call before ``start()``.
    package func mount(path: String, configuration: EngineIOConfiguration, application: any EngineIOApplication) {
        let endpoint = EngineIOEndpoint(
            path: path,
            configuration: configuration,
            application: application,
            logger: self.logger
        )
        self.state.withLockedValue { state in
            precondition(!state.started, "EngineIOServer.mount(path:) must be called before start()")
            state.endpoints.append(endpoint)
        }
    }

    /// The endpoint mounted at `path`, for a framework to carry its bytes (its routes and WebSocket support)
    /// instead of this server's listener: ``start()`` then binds nothing. Call before ``start()``.
    /// - Returns: nil when no endpoint is mounted at `path`.
    package func mountedEndpoint(path: String) -> EngineIOMountedEndpoint? {
        let endpoint = self.state.withLockedValue { state -> EngineIOEndpoint? in
            precondition(!state.started, "EngineIOServer.mountedEndpoint(path:) must be called before start()")
            state.listens = false
            let path = EngineIOEndpoint.normalized(path: path)
            return state.endpoints.first { $0.path == path }
        }
        return endpoint.map { EngineIOMountedEndpoint(endpoint: $0, eventLoopGroup: self.eventLoopGroup) }
    }

    /// Whether ``start()`` binds a listener (false once ``mountedEndpoint(path:)`` was asked for).
    package var listens: Bool {
        self.state.withLockedValue { $0.listens }
    }

    /// The bytes waiting for all clients together at the last budget check (every 500 ms while running; 0 when
    /// the budget is off).
    package var bufferedBytes: Int {
        self.state.withLockedValue { $0.bufferedBytes }
    }

    /// The bound port once started.
    package var localPort: Int? {
        self.state.withLockedValue { $0.serverChannel?.localAddress?.port }
    }

    /// Binds and returns once listening.
    /// - Throws: when the address cannot be bound.
    package func start() async throws {
        let (endpoints, listens) = self.state.withLockedValue { state in
            precondition(!state.started, "EngineIOServer.start() called twice")
            state.started = true
            return (state.endpoints, state.listens)
        }
        guard listens else {
            self.startBudgetCheck(endpoints: endpoints)
            self.logger.info("mounted, no listener of its own", metadata: ["paths": "\(endpoints.map(\.path))"])
            return
        }
        let fallback = self.fallback
        let tasks = self.tasks
        let logger = self.logger
        let tls = self.tls
        let maxFrameSize = max(endpoints.map(\.configuration.maxPayload).max() ?? 1 << 20, 1 << 14)
        let state = self.state
        let limits = endpoints.isEmpty ? [self.unmountedLimits] : endpoints.map(\.configuration)
        let connectionPolicy = HTTPConnectionPolicy(configurations: limits, logger: logger)
        let maxConnectionsPerAddress = limits.compactMap(\.maxConnectionsPerAddress).min()
        let trustedProxies = TrustedProxies(ranges: limits.flatMap(\.trustedProxies.ranges))

        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: maxFrameSize,
            // EngineIOWebSocketHandler answers WebSocket protocol errors itself (one handler less per connection).
            automaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                let target = RequestTarget(uri: head.uri)
                guard let endpoint = endpoints.first(where: { $0.matches(target.path) }),
                    endpoint.validateWebSocketRequest(query: target.query, headers: head.headers) == nil
                else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                let deflate = endpoint.deflateAgreement(for: head.headers)
                if let sid = target.query["sid"] {
                    return endpoint.attachUpgrade(sid: sid, channel: channel, deflate: deflate)
                }
                return channel.eventLoop.makeSucceededFuture(EngineIOEndpoint.upgradeResponseHeaders(deflate: deflate))
            },
            upgradePipelineHandler: { channel, head in
                let target = RequestTarget(uri: head.uri)
                guard let endpoint = endpoints.first(where: { $0.matches(target.path) }) else {
                    return channel.close()
                }
                let request = EngineIOHandshakeRequest(
                    uri: head.uri,
                    path: target.path,
                    query: target.query,
                    headers: head.headers,
                    remoteAddress: endpoint.configuration.trustedProxies.clientAddress(
                        peer: channel.remoteAddress,
                        headers: head.headers
                    )
                )
                let joining: EngineIOSession?
                let connection: ChannelWebSocketConnection
                if target.query["sid"] != nil {
                    guard let reserved = endpoint.takeReservedUpgrade(channel: channel) else { return channel.close() }
                    (joining, connection) = reserved
                } else {
                    joining = nil
                    // The same agreement as the 101 announced (`shouldUpgrade` computed it from the same head).
                    connection = ChannelWebSocketConnection(
                        channel: channel,
                        endpoint: endpoint,
                        deflate: endpoint.deflateAgreement(for: head.headers)
                    )
                }
                let limit = max(endpoint.configuration.maxBufferedBytesPerSession, 2)
                return channel.setOption(
                    ChannelOptions.writeBufferWaterMark,
                    value: .init(low: limit / 2, high: limit)
                ).flatMapThrowing {
                    let sync = channel.pipeline.syncOperations
                    // Next to the head, or with TLS next to the TLS handler, so the frames are still encrypted.
                    let tlsHandler = try? sync.handler(type: NIOSSLServerHandler.self)
                    try sync.addHandler(
                        WebSocketRawFrameWriter(connection: connection),
                        position: tlsHandler.map { .after($0) } ?? .first
                    )
                    // No NIOWebSocketFrameAggregator: the handler's WebSocketMessageAssembler joins fragments after
                    // checking each one (the aggregator drops what those checks need, and costs a handler).
                    try sync.addHandler(
                        EngineIOWebSocketHandler(
                            endpoint: endpoint,
                            connection: connection,
                            joining: joining,
                            request: request
                        )
                    )
                }
            }
        )

        let bootstrap = ServerBootstrap(group: self.eventLoopGroup)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            // Every channel keeps its last receive buffer for reuse; start it small so an idle WebSocket holds
            // 512 bytes rather than 2 KiB (it still grows to 64 KiB while reads fill it).
            .childChannelOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536)
            )
            .childChannelInitializer { channel in
                let id = ObjectIdentifier(channel)
                // A connection from a trusted proxy is counted for the client its requests name, once one arrives.
                let proxied = channel.remoteAddress.map(trustedProxies.contains) ?? false
                let address = maxConnectionsPerAddress == nil || proxied ? nil : channel.remoteAddress?.ipAddress
                let accepted = state.withLockedValue { state -> Bool? in
                    guard !state.shuttingDown else { return false }
                    if let address, let limit = maxConnectionsPerAddress {
                        let open = state.connectionsPerAddress[address, default: 0]
                        guard open < limit else { return nil }
                        state.connectionsPerAddress[address] = open + 1
                    }
                    state.children[id] = channel
                    return true
                }
                guard accepted == true else {
                    if accepted == nil, let address, let limit = maxConnectionsPerAddress {
                        connectionPolicy.connectionRefused(address: address, limit: limit)
                    }
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in
                    state.withLockedValue { state in
                        state.children.removeValue(forKey: id)
                        if let address = address ?? state.forwardedClients.removeValue(forKey: id) {
                            state.release(address)
                        }
                    }
                }
                do {
                    if let tls {
                        // A client that does not speak TLS fails the handshake: EngineIOHTTPHandler logs the error
                        // at debug and closes this connection only.
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.sslContext))
                        try channel.pipeline.syncOperations.addHandler(
                            TLSHandshakeTimeoutHandler(timeout: tls.handshakeTimeout, policy: connectionPolicy)
                        )
                    }
                    let httpHandler = EngineIOHTTPHandler(
                        endpoints: endpoints,
                        fallback: fallback,
                        tasks: tasks,
                        policy: connectionPolicy,
                        logger: logger
                    )
                    let boundHandler = NIOLoopBound(httpHandler, eventLoop: channel.eventLoop)
                    let validator = EngineIOWebSocketRequestValidator(endpoints: endpoints, policy: connectionPolicy)
                    let boundValidator = NIOLoopBound(validator, eventLoop: channel.eventLoop)
                    var boundLimiter: NIOLoopBound<ForwardedClientLimitHandler>?
                    if proxied, let limit = maxConnectionsPerAddress {
                        let limiter = ForwardedClientLimitHandler(trustedProxies: trustedProxies) { client in
                            let counted = state.withLockedValue { $0.count(id, for: client, limit: limit) }
                            if !counted { connectionPolicy.connectionRefused(address: client, limit: limit) }
                            return counted
                        }
                        boundLimiter = NIOLoopBound(limiter, eventLoop: channel.eventLoop)
                    }
                    let sync = channel.pipeline.syncOperations
                    let upgradeCompleted: @Sendable (ChannelHandlerContext) -> Void = { [boundLimiter] context in
                        context.pipeline.syncOperations.removeHandler(boundHandler.value, promise: nil)
                        context.pipeline.syncOperations.removeHandler(boundValidator.value, promise: nil)
                        if let limiter = boundLimiter?.value {
                            context.pipeline.syncOperations.removeHandler(limiter, promise: nil)
                        }
                    }
                    try sync.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: upgradeCompleted),
                        withErrorHandling: true
                    )
                    let upgradeHandler = try sync.handler(type: HTTPServerUpgradeHandler.self)
                    // NIO's upgrade handler only looks at a connection's first request and then leaves the
                    // pipeline. Clients that reuse a keep-alive polling connection for the upgrade (aiohttp, so
                    // python-engineio) need a fresh one before each later upgrade request: the validator builds it
                    // from the same HTTP handlers.
                    let encoder = try sync.handler(type: HTTPResponseEncoder.self)
                    var extraHTTPHandlers: [any RemovableChannelHandler] = [
                        try sync.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
                    ]
                    if let pipelining = try? sync.handler(type: HTTPServerPipelineHandler.self) {
                        extraHTTPHandlers.append(pipelining)
                    }
                    if let headersValidator = try? sync.handler(type: NIOHTTPResponseHeadersValidator.self) {
                        extraHTTPHandlers.append(headersValidator)
                    }
                    extraHTTPHandlers.append(try sync.handler(type: HTTPServerProtocolErrorHandler.self))
                    validator.makeUpgradeHandler = {
                        HTTPServerUpgradeHandler(
                            upgraders: [upgrader],
                            httpEncoder: encoder,
                            extraHTTPHandlers: extraHTTPHandlers,
                            upgradeCompletionHandler: upgradeCompleted
                        )
                    }
                    try sync.addHandler(validator, position: .before(upgradeHandler))
                    if let limiter = boundLimiter?.value {
                        try sync.addHandler(limiter, position: .before(validator))
                    }
                    try sync.addHandler(httpHandler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }

        let channel = try await bootstrap.bind(host: self.host, port: self.port).get()
        self.state.withLockedValue { $0.serverChannel = channel }
        self.startBudgetCheck(endpoints: endpoints)
        self.logger.info(
            "listening",
            metadata: [
                "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                "paths": "\(endpoints.map(\.path))",
                "tls": "\(tls != nil)",
            ]
        )
    }

    /// Checks the outbound memory budget every 500 ms while running, when one is configured.
    private func startBudgetCheck(endpoints: [EngineIOEndpoint]) {
        let logger = self.logger
        let state = self.state
        if let maxBytes = endpoints.compactMap(\.configuration.maxBufferedBytesTotal).min() {
            let budget = EngineIOOutboundBudget(maxBytes: maxBytes)
            let loop = self.eventLoopGroup.next()
            let warning = RateLimitedWarning()
            let gauge = Gauge(label: "socketgateway_engineio_buffered_bytes")
            let shedCounter = Counter(label: "socketgateway_engineio_budget_sheds_total")
            let check = loop.scheduleRepeatedAsyncTask(initialDelay: .milliseconds(500), delay: .milliseconds(500)) {
                _ in
                Self.enforce(
                    budget,
                    endpoints: endpoints,
                    eventLoop: loop,
                    logger: logger,
                    warning: warning,
                    gauge: gauge,
                    shedCounter: shedCounter
                ).map { total in state.withLockedValue { $0.bufferedBytes = total } }
            }
            self.state.withLockedValue { $0.budgetCheck = check }
        }
    }

    /// Closes every session (reason ``EngineIOCloseReason/forcedServerShutdown``), stops listening and closes
    /// the remaining connections.
    package func shutdown() async throws {
        let (serverChannel, endpoints, budgetCheck) = self.state.withLockedValue { state in
            state.shuttingDown = true
            defer { state.budgetCheck = nil }
            return (state.serverChannel, state.endpoints, state.budgetCheck)
        }
        budgetCheck?.cancel()
        try? await serverChannel?.close()
        for endpoint in endpoints {
            for session in endpoint.allSessions {
                // Run the close on the session's loop and wait for it, so the application has been told.
                try? await session.eventLoop.submit { session.close(reason: .forcedServerShutdown) }.get()
            }
        }
        let children = self.state.withLockedValue { Array($0.children.values) }
        for child in children {
            try? await child.close()
        }
        self.state.withLockedValue { $0.serverChannel = nil }
    }
}
