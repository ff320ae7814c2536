public import Logging
public import NIOCore
import NIOConcurrencyHelpers
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The NIO HTTP/1.1 + WebSocket server.
///
/// Routes requests by path prefix to mounted Engine.IO endpoints; other paths go to the optional
/// ``HTTPFallbackResponder`` or get 404. The event loop group belongs to the caller.
public final class EngineIOServer: Sendable {
    private struct State {
        var endpoints: [EngineIOEndpoint] = []
        var serverChannel: (any Channel)?
        var children: [ObjectIdentifier: any Channel] = [:]
        var started = false
        var shuttingDown = false
    }

    private let host: String
    private let port: Int
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let fallback: (any HTTPFallbackResponder)?
    private let state = NIOLockedValueBox(State())

    /// Creates a server; nothing listens until ``start()``.
    /// - Parameters:
    ///   - host: the address to bind, e.g. `127.0.0.1`.
    ///   - port: the port; 0 picks a free one (see ``localPort``).
    ///   - eventLoopGroup: the loops to run on (owned by the caller).
    ///   - logger: where to log.
    ///   - fallback: answers requests for paths no endpoint is mounted at (default: 404).
    public init(
        host: String,
        port: Int,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        fallback: (any HTTPFallbackResponder)? = nil
    ) {
        self.host = host
        self.port = port
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.fallback = fallback
    }

    /// Mounts an Engine.IO endpoint at `path` (e.g. `/engine.io/`). Call before ``start()``.
    public func mount(path: String, configuration: EngineIOConfiguration, application: any EngineIOApplication) {
        let endpoint = EngineIOEndpoint(path: path, configuration: configuration, application: application, logger: self.logger)
        self.state.withLockedValue { state in
            precondition(!state.started, "EngineIOServer.mount(path:) must be called before start()")
            state.endpoints.append(endpoint)
        }
    }

    /// The bound port once started.
    public var localPort: Int? {
        self.state.withLockedValue { $0.serverChannel?.localAddress?.port }
    }

    /// Binds and returns once listening.
    /// - Throws: when the address cannot be bound.
    public func start() async throws {
        let endpoints = self.state.withLockedValue { state in
            precondition(!state.started, "EngineIOServer.start() called twice")
            state.started = true
            return state.endpoints
        }
        let fallback = self.fallback
        let logger = self.logger
        let maxFrameSize = max(endpoints.map(\.configuration.maxPayload).max() ?? 1 << 20, 1 << 14)
        let state = self.state

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
                if let sid = target.query["sid"] {
                    return endpoint.attachUpgrade(sid: sid, channel: channel)
                }
                return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
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
                    remoteAddress: channel.remoteAddress
                )
                let joining: EngineIOSession?
                let connection: EngineIOWebSocketConnection
                if target.query["sid"] != nil {
                    guard let reserved = endpoint.takeReservedUpgrade(channel: channel) else { return channel.close() }
                    (joining, connection) = reserved
                } else {
                    joining = nil
                    connection = EngineIOWebSocketConnection(channel: channel, endpoint: endpoint)
                }
                let limit = max(endpoint.configuration.maxBufferedBytesPerSession, 2)
                return channel.setOption(
                    ChannelOptions.writeBufferWaterMark,
                    value: .init(low: limit / 2, high: limit)
                ).flatMapThrowing {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(WebSocketRawFrameWriter(connection: connection), position: .first)
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
                let accepted = state.withLockedValue { state -> Bool in
                    guard !state.shuttingDown else { return false }
                    state.children[id] = channel
                    return true
                }
                guard accepted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in
                    _ = state.withLockedValue { $0.children.removeValue(forKey: id) }
                }
                do {
                    let httpHandler = EngineIOHTTPHandler(endpoints: endpoints, fallback: fallback, logger: logger)
                    let boundHandler = NIOLoopBound(httpHandler, eventLoop: channel.eventLoop)
                    let validator = EngineIOWebSocketRequestValidator(endpoints: endpoints)
                    let boundValidator = NIOLoopBound(validator, eventLoop: channel.eventLoop)
                    let sync = channel.pipeline.syncOperations
                    let upgradeCompleted: @Sendable (ChannelHandlerContext) -> Void = { context in
                        context.pipeline.syncOperations.removeHandler(boundHandler.value, promise: nil)
                        context.pipeline.syncOperations.removeHandler(boundValidator.value, promise: nil)
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
                    try sync.addHandler(httpHandler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }

        let channel = try await bootstrap.bind(host: self.host, port: self.port).get()
        self.state.withLockedValue { $0.serverChannel = channel }
        self.logger.info(
            "listening",
            metadata: [
                "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                "paths": "\(endpoints.map(\.path))",
            ]
        )
    }

    /// Closes every session (reason ``EngineIOCloseReason/forcedServerShutdown``), stops listening and closes
    /// the remaining connections.
    public func shutdown() async throws {
        let (serverChannel, endpoints) = self.state.withLockedValue { state in
            state.shuttingDown = true
            return (state.serverChannel, state.endpoints)
        }
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
