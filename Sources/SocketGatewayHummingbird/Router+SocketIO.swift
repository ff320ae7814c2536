import HTTPTypes
public import Hummingbird
public import HummingbirdWebSocket
public import NIOCore
import NIOHTTP1
import NIOWebSocket
import ServiceLifecycle
package import SocketGatewayEngineIO
public import SocketGatewayServer

/// The request context for a router that serves Socket.IO (``RouterMethods/addSocketIO(_:)``): WebSocket upgrades,
/// the client's address for the server's logs and limits, and the connection, so long-polling answers go out in
/// the order Engine.IO clients expect. Any `WebSocketRequestContext` works; this one is the best fit.
public struct SocketIORequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    /// Hummingbird's own request state.
    public var coreContext: CoreRequestContextStorage
    /// Where a WebSocket route leaves its handler for the upgrade.
    public let webSocket: WebSocketHandlerReference<Self>
    /// The client's address.
    public let remoteAddress: SocketAddress?
    /// The request's connection.
    let channel: any Channel

    /// Creates the context of one request.
    /// - Parameter source: The application's request source (the connection and its logger).
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = CoreRequestContextStorage(source: source)
        self.webSocket = WebSocketHandlerReference()
        self.remoteAddress = source.channel.remoteAddress
        self.channel = source.channel
    }
}

extension RouterMethods where Context: WebSocketRequestContext {
    /// Serves Socket.IO at the server's path (``SocketServerConfiguration/path``, default `/socket.io/`) through
    /// this router: long-polling, CORS preflights and WebSockets, direct or upgraded from long-polling.
    ///
    /// WebSockets need the application's server to upgrade through this router:
    /// `server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: .socketIO(server)))`
    /// (see `WebSocketServerConfiguration.socketIO(_:)`). The `SocketServer` binds no listener of its own (its
    /// host and port are not used): run it among the application's services, which runs its sessions, tasks and
    /// cluster link and shuts them down with the application.
    /// - Parameter server: The Socket.IO server, namespaces and handlers registered as usual.
    /// - Returns: The router, for chaining.
    @discardableResult
    public func addSocketIO(_ server: SocketServer) -> Self {
        self.addEngineIO(server.mountedEndpoint())
    }

    /// Serves any Engine.IO endpoint of a server (e.g. the conformance tool's `/engine.io/` echo) the same way.
    @discardableResult
    package func addEngineIO(_ endpoint: EngineIOMountedEndpoint) -> Self {
        let mount = SocketIOHummingbirdMount(endpoint: endpoint)
        let path = RouterPath(mount.routePath)
        self.on(path, method: .get) { request, context in
            if request.headers[.upgrade]?.lowercased() == "websocket" {
                return try await mount.upgrade(request, context: context)
            }
            return try await mount.poll(request, context: context)
        }
        // POST sends, OPTIONS is a CORS preflight; other methods get Engine.IO's 400 (not the router's 404).
        for method in [HTTPRequest.Method.post, .options, .put, .patch, .delete] {
            self.on(path, method: method) { request, context in try await mount.poll(request, context: context) }
        }
        return self
    }
}

extension RouterMethods {
    /// Serves Socket.IO's long-polling transport only, through a router whose context cannot upgrade to
    /// WebSockets (use a `WebSocketRequestContext` for both transports; see the other `addSocketIO`).
    /// - Parameter server: The Socket.IO server; its configuration should list only the polling transport.
    /// - Returns: The router, for chaining.
    @discardableResult
    public func addSocketIOPolling(_ server: SocketServer) -> Self {
        let mount = SocketIOHummingbirdMount(endpoint: server.mountedEndpoint())
        let path = RouterPath(mount.routePath)
        for method in [HTTPRequest.Method.get, .post, .options, .put, .patch, .delete] {
            self.on(path, method: method) { request, context in try await mount.poll(request, context: context) }
        }
        return self
    }
}

/// Carries one Engine.IO endpoint's requests between Hummingbird and the session layer.
struct SocketIOHummingbirdMount: Sendable {
    let endpoint: EngineIOMountedEndpoint

    /// The endpoint's path as a Hummingbird route (no trailing slash: the router matches `/socket.io/` to it).
    var routePath: String {
        var path = self.endpoint.path
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        return path
    }

    static func headers(_ fields: HTTPFields) -> HTTPHeaders {
        HTTPHeaders(fields.map { ($0.name.rawName, $0.value) })
    }

    static func remoteAddress(of context: some RequestContext) -> SocketAddress? {
        (context as? any RemoteAddressRequestContext)?.remoteAddress
    }

    /// Without the connection's channel (a context other than ``SocketIORequestContext``): how long after the
    /// writer's flush an answer counts as gone out.
    static let settleTime = Duration.milliseconds(20)

    static func response(_ answer: EngineIOExternalResponse, channel: (any Channel)? = nil) -> Response {
        var fields = HTTPFields()
        for (name, value) in answer.headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        let body = answer.body
        guard let written = answer.written else {
            return Response(status: .init(code: answer.status), headers: fields, body: .init(byteBuffer: body))
        }
        // A GET's packets: its session hears whether they reached the connection.
        return Response(
            status: .init(code: answer.status),
            headers: fields,
            body: .init(contentLength: body.readableBytes) { writer in
                do {
                    try await writer.write(body)
                    try await writer.finish(nil)
                } catch {
                    written(false)
                    throw error
                }
                // Engine.IO holds a GET's answer until the POST's answer has gone out, so a client reads them in
                // that order (python-engineio needs it). Gone out means written to the socket: a hop through the
                // connection's event loop, after the writer's flush, when the context knows the connection.
                if let channel {
                    try? await channel.eventLoop.submit {}.get()
                } else {
                    try? await Task.sleep(for: Self.settleTime)
                }
                written(true)
            }
        )
    }

    /// A long-polling request or a CORS preflight.
    func poll(_ request: Request, context: some RequestContext) async throws -> Response {
        let method: HTTPMethod
        switch request.method {
        case .get: method = .GET
        case .post: method = .POST
        case .options: method = .OPTIONS
        default: method = HTTPMethod(rawValue: request.method.rawValue)
        }
        let headers = Self.headers(request.headers)
        var body: ByteBuffer?
        if method == .POST {
            var collected = ByteBuffer()
            for try await var chunk in request.body {
                guard collected.readableBytes + chunk.readableBytes <= self.endpoint.maxPayload else {
                    return Self.response(self.endpoint.payloadTooLarge(uri: request.uri.description, headers: headers))
                }
                collected.writeBuffer(&chunk)
            }
            body = collected
        }
        let answer = await self.endpoint.respond(
            to: EngineIOExternalRequest(
                method: method,
                uri: request.uri.description,
                headers: headers,
                body: body,
                remoteAddress: Self.remoteAddress(of: context)
            )
        )
        return Self.response(answer, channel: (context as? SocketIORequestContext)?.channel)
    }

    /// A WebSocket upgrade request, routed here by hummingbird-websocket before it answers 101.
    func upgrade<Context: RequestContext & WebSocketRequestContext>(
        _ request: Request,
        context: Context
    ) async throws -> Response {
        let uri = request.uri.description
        let headers = Self.headers(request.headers)
        if let refusal = self.endpoint.validateWebSocket(uri: uri, headers: headers) {
            return Self.response(refusal)
        }
        guard
            let connection = await self.endpoint.acceptWebSocket(
                uri: uri,
                headers: headers,
                remoteAddress: Self.remoteAddress(of: context)
            )
        else {
            return Response(status: .badRequest)
        }
        let channel = (context as? SocketIORequestContext)?.channel
        let upgrade = WebSocketUpgradeMiddleware<Context> { inbound, outbound, _ in
            // With the connection's channel, a batch goes out in one hop and one flush, and a close is bounded (a
            // peer that does not read is reset); else frame by frame, and a close waits for the peer.
            let writer: MountedWebSocketWriter? =
                if let channel { await MountedWebSocketWriter.install(on: channel, for: connection) } else { nil }
            await withGracefulShutdownHandler {
                await connection.run(
                    inbound: inbound.map { WebSocketFrame(fin: $0.fin, opcode: $0.opcode.nio, data: $0.data) },
                    write: { output in
                        switch output {
                        case .messages(let frames):
                            if let writer {
                                try await writer.write(frames)
                            } else {
                                for frame in frames { try await outbound.write(.custom(frame)) }
                            }
                        case .close(let code, let reason):
                            try await outbound.close(.init(codeNumber: Int(code)), reason: reason)
                        }
                    },
                    closing: { writer?.closing() }
                )
            } onGracefulShutdown: {
                // hummingbird-websocket sends its close frame; the app's shutdown waits for this connection, so a
                // peer that does not read it must not hold the shutdown up.
                writer?.closing()
            }
        }
        return try await upgrade.handle(request, context: context) { _, _ in Response(status: .ok) }
    }
}

extension WebSocketDataFrame.Opcode {
    fileprivate var nio: WebSocketOpcode {
        switch self {
        case .text: .text
        case .binary: .binary
        case .continuation: .continuation
        }
    }
}

extension WebSocketServerConfiguration {
    /// hummingbird-websocket's settings for serving `server`'s WebSockets: frames up to its `maxPayload`
    /// (hummingbird-websocket's default is 16 KiB, which would refuse larger Socket.IO messages), and no WebSocket
    /// pings of its own (Engine.IO's heartbeat already checks the client).
    /// - Parameter server: The Socket.IO server the router serves (``RouterMethods/addSocketIO(_:)``).
    /// - Returns: The settings, for `.http1WebSocketUpgrade(webSocketRouter:configuration:)`.
    public static func socketIO(_ server: SocketServer) -> Self {
        WebSocketServerConfiguration(
            maxFrameSize: max(server.configuration.maxPayload, 1 << 14),
            autoPing: .disabled
        )
    }
}
