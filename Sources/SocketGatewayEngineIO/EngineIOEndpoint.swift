import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SocketGatewayCore

/// How a long-polling request is answered.
enum PollingReply: Sendable {
    case ok
    case payload(ByteBuffer)
    case error(EngineIOHTTPError)
}

/// A long-polling request waiting for its answer; `reply` may be called from any thread, once.
final class PollingRequestHandle: Sendable {
    /// When the request's head was read (monotonic, comparable across event loops).
    let arrival: NIODeadline
    private let send: @Sendable (PollingRequestHandle, PollingReply, (@Sendable () -> Void)?) -> Void

    init(
        arrival: NIODeadline = .now(),
        send: @escaping @Sendable (PollingRequestHandle, PollingReply, (@Sendable () -> Void)?) -> Void
    ) {
        self.arrival = arrival
        self.send = send
    }

    /// Answers the request; `written` (if any) is called on the connection's event loop once the response has
    /// been handed to the socket (or could not be).
    func reply(_ reply: PollingReply, written: (@Sendable () -> Void)? = nil) {
        self.send(self, reply, written)
    }
}

/// One mounted Engine.IO endpoint: its configuration, application and live sessions.
final class EngineIOEndpoint: Sendable {
    let path: String
    let configuration: EngineIOConfiguration
    let application: any EngineIOApplication
    let logger: Logger
    let metrics: EngineIOMetrics
    private let sessions = NIOLockedValueBox<[String: EngineIOSession]>([:])
    /// Sessions the client closed over polling, for a moment: one GET still gets the noop that ends it.
    private let lingering = NIOLockedValueBox<[String: NIODeadline]>([:])
    /// How long a closed polling session answers one late GET with a noop.
    static let lingerTime = TimeAmount.milliseconds(500)
    /// Upgrade WebSockets attached to their session in `shouldUpgrade`, waiting for their pipeline.
    private let reservedUpgrades = NIOLockedValueBox<[ObjectIdentifier: (EngineIOSession, EngineIOWebSocketConnection)]>([:])
    /// Warnings about misbehaving WebSocket peers: a flood of them logs a bounded number of lines.
    private let webSocketWarnings = NIOLockedValueBox(LogRateLimiter(interval: .seconds(10)))

    init(path: String, configuration: EngineIOConfiguration, application: any EngineIOApplication, logger: Logger) {
        var path = path
        if !path.hasPrefix("/") { path = "/" + path }
        if !path.hasSuffix("/") { path += "/" }
        self.path = path
        self.configuration = configuration
        self.application = application
        var logger = logger
        logger[metadataKey: "engineio.path"] = "\(path)"
        self.logger = logger
        self.metrics = EngineIOMetrics(path: path)
    }

    /// Whether `requestPath` belongs to this endpoint (`/engine.io/…` or exactly `/engine.io`).
    func matches(_ requestPath: String) -> Bool {
        requestPath.hasPrefix(self.path) || requestPath + "/" == self.path
    }

    func session(id: String) -> EngineIOSession? {
        self.sessions.withLockedValue { $0[id] }
    }

    var allSessions: [EngineIOSession] {
        self.sessions.withLockedValue { Array($0.values) }
    }

    static func makeSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in bytes.indices { bytes[index] = generator.next() }
        return EngineIOBase64.encodeToString(bytes, urlSafe: true)
    }

    func sessionOpened(_ session: EngineIOSession, transport: EngineIOTransportKind) {
        self.metrics.opened(transport: transport)
        self.logger.debug("session opened", metadata: ["engineio.sid": "\(session.id)", "engineio.transport": "\(transport)"])
    }

    func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {
        _ = self.sessions.withLockedValue { $0.removeValue(forKey: session.id) }
        self.metrics.closed(reason: reason)
        self.logger.debug("session closed", metadata: ["engineio.sid": "\(session.id)", "engineio.reason": "\(reason)"])
    }

    private func register(_ session: EngineIOSession) {
        self.sessions.withLockedValue { $0[session.id] = session }
    }

    // MARK: WebSocket

    /// A WebSocket request without sid: a new WebSocket-only session on `eventLoop` (the connection's loop).
    func openWebSocketSession(
        connection: EngineIOWebSocketConnection,
        request: EngineIOHandshakeRequest,
        eventLoop: any EventLoop
    ) -> EngineIOSession {
        let session = EngineIOSession(
            id: Self.makeSessionID(),
            eventLoop: eventLoop,
            request: request,
            transport: .websocket,
            endpoint: self,
            now: .now()
        )
        session.setMainWebSocket(connection)
        self.register(session)
        session.start(handshakeFrameFor: .websocket)
        return session
    }

    /// Attaches a WebSocket carrying `sid` to its session before the 101 goes out, so the session knows about
    /// the upgrade before the client can send anything on either transport. Nil headers refuse the upgrade.
    func attachUpgrade(sid: String, channel: any Channel) -> EventLoopFuture<HTTPHeaders?> {
        guard let session = self.session(id: sid) else { return channel.eventLoop.makeSucceededFuture(nil) }
        let connection = EngineIOWebSocketConnection(channel: channel, endpoint: self)
        let key = ObjectIdentifier(channel)
        self.reservedUpgrades.withLockedValue { $0[key] = (session, connection) }
        channel.closeFuture.whenComplete { _ in
            _ = self.reservedUpgrades.withLockedValue { $0.removeValue(forKey: key) }
        }
        let promise = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
        session.eventLoop.execute {
            session.webSocketAttached(connection)
            promise.succeed(HTTPHeaders())
        }
        return promise.futureResult
    }

    /// The session and connection reserved by `attachUpgrade` for this channel.
    func takeReservedUpgrade(channel: any Channel) -> (EngineIOSession, EngineIOWebSocketConnection)? {
        self.reservedUpgrades.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Checks a WebSocket upgrade request; nil when it is acceptable, else why not (answered with the error's
    /// status: 400, 403 for a refused origin, 426 for a WebSocket version other than 13).
    func validateWebSocketRequest(query: [String: String], headers: HTTPHeaders) -> EngineIOHTTPError? {
        guard query["EIO"] == "4" else { return .unsupportedProtocolVersion }
        guard query["transport"] == "websocket", self.configuration.transports.contains(.websocket) else {
            return .transportUnknown
        }
        if let error = WebSocketProtocolRules.checkUpgrade(headers) { return error }
        // WebSockets are not subject to CORS, so a browser page on any site can open one: refuse origins the
        // policy does not list. A request without Origin (python-socketio, other non-browser clients) is allowed.
        guard self.configuration.cors.allowsWebSocket(origin: headers.first(name: "origin")) else { return .forbidden }
        if let sid = query["sid"], self.session(id: sid) == nil { return .unknownSession }
        return nil
    }

    /// A WebSocket connection was reset instead of closed cleanly: its peer did not take the close frame (`why` is
    /// `unwritable` when the write buffer was over its limit, `close timeout` when the frame was not written
    /// within `webSocketCloseTimeout`).
    func webSocketForcedClose(why: String, remoteAddress: SocketAddress?) {
        self.metrics.webSocketForcedCloses(why: why).increment()
        self.warn(
            "websocket reset: the peer does not read",
            metadata: ["why": "\(why)", "remote": "\(remoteAddress.map { "\($0)" } ?? "?")"]
        )
    }

    /// A WebSocket peer broke the protocol (RFC 6455 or Engine.IO) and its connection is being failed.
    func webSocketProtocolError(_ violation: WebSocketProtocolViolation, sessionID: String?, excerpt: ByteBuffer?) {
        self.metrics.webSocketProtocolErrors(code: violation.close.code).increment()
        var metadata: Logger.Metadata = [
            "close_code": "\(violation.close.code)",
            "detail": "\(violation.detail)",
        ]
        if let sessionID { metadata["engineio.sid"] = "\(sessionID)" }
        if let excerpt { metadata["excerpt"] = "\(LogSafe.excerpt(excerpt.readableBytesView))" }
        self.warn("websocket protocol error, connection failed", metadata: metadata)
    }

    /// Logs a warning unless one was logged within the last interval; the next line says how many were skipped.
    private func warn(_ message: Logger.Message, metadata: Logger.Metadata) {
        guard let suppressed = self.webSocketWarnings.withLockedValue({ $0.admit(at: .now) }) else { return }
        var metadata = metadata
        metadata["suppressed_since_last_log"] = "\(suppressed)"
        self.logger.warning(message, metadata: metadata)
    }

    // MARK: long-polling

    func linger(sid: String) {
        let now = NIODeadline.now()
        self.lingering.withLockedValue { lingering in
            lingering = lingering.filter { $0.value > now }
            lingering[sid] = now + Self.lingerTime
        }
    }

    /// Whether `sid` was just closed by its client and this is the first GET since.
    private func takeLingering(sid: String) -> Bool {
        let now = NIODeadline.now()
        return self.lingering.withLockedValue { $0.removeValue(forKey: sid).map { $0 > now } ?? false }
    }

    /// Handles a complete long-polling request (any method but OPTIONS) on the connection's event loop.
    func handlePolling(
        method: HTTPMethod,
        query: [String: String],
        request: @autoclosure () -> EngineIOHandshakeRequest,
        body: ByteBuffer?,
        eventLoop: any EventLoop,
        handle: PollingRequestHandle
    ) {
        guard query["EIO"] == "4" else {
            handle.reply(.error(.unsupportedProtocolVersion))
            return
        }
        guard let transportName = query["transport"],
              let transport = EngineIOTransportKind(rawValue: transportName),
              self.configuration.transports.contains(transport)
        else {
            handle.reply(.error(.transportUnknown))
            return
        }
        guard transport == .polling else {
            // transport=websocket without a valid upgrade.
            handle.reply(.error(.badRequest))
            return
        }
        guard let sid = query["sid"] else {
            guard method == .GET else {
                handle.reply(.error(.badHandshakeMethod))
                return
            }
            let session = EngineIOSession(
                id: Self.makeSessionID(),
                eventLoop: eventLoop,
                request: request(),
                transport: .polling,
                endpoint: self,
                now: .now()
            )
            self.register(session)
            session.start(handshakeFrameFor: .polling)
            session.handleGet(handle)
            return
        }
        guard let session = self.session(id: sid) else {
            if method == .GET, self.takeLingering(sid: sid) {
                handle.reply(.payload(EngineIOPollingPayload.encode([.noop])))
            } else {
                handle.reply(.error(.unknownSession))
            }
            return
        }
        switch method {
        case .GET:
            Self.onLoop(of: session) { session.handleGet(handle) }
        case .POST:
            let body = body ?? ByteBuffer()
            Self.onLoop(of: session) { session.handlePost(body, handle: handle) }
        default:
            handle.reply(.error(.badRequest))
        }
    }

    /// A POST's head arrived for `sid` (its body follows).
    func postStarted(sid: String) {
        guard let session = self.session(id: sid) else { return }
        Self.onLoop(of: session) { session.postStarted() }
    }

    /// A POST's connection closed before its body was complete.
    func postAbandoned(sid: String) {
        guard let session = self.session(id: sid) else { return }
        Self.onLoop(of: session) { session.postAbandoned() }
    }

    /// The client's POST body exceeded maxPayload: the session (if any) is closed.
    func payloadTooLarge(query: [String: String]) {
        guard let sid = query["sid"], let session = self.session(id: sid) else { return }
        session.close(reason: .payloadTooLarge)
    }

    /// The parked GET's connection went away.
    func pollingConnectionClosed(sid: String, handle: PollingRequestHandle) {
        guard let session = self.session(id: sid) else { return }
        Self.onLoop(of: session) { session.pendingGetAborted(handle) }
    }

    private static func onLoop(of session: EngineIOSession, _ body: @escaping @Sendable () -> Void) {
        if session.eventLoop.inEventLoop {
            body()
        } else {
            session.eventLoop.execute(body)
        }
    }

    // MARK: CORS

    /// CORS response headers for a request with these headers.
    func corsHeaders(for requestHeaders: HTTPHeaders) -> [(String, String)] {
        switch self.configuration.cors {
        case .none:
            return []
        case .any:
            return [("Access-Control-Allow-Origin", "*")]
        case .origins:
            guard let origin = requestHeaders.first(name: "origin"), self.configuration.cors.matches(origin: origin) else {
                return [("Vary", "Origin")]
            }
            return [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin"),
            ]
        }
    }

    /// Headers answering an OPTIONS preflight.
    func preflightHeaders(for requestHeaders: HTTPHeaders) -> [(String, String)] {
        var headers = self.corsHeaders(for: requestHeaders)
        guard headers.contains(where: { $0.0 == "Access-Control-Allow-Origin" }) else { return headers }
        headers.append(("Access-Control-Allow-Methods", "GET, POST, OPTIONS"))
        let requested = requestHeaders.first(name: "access-control-request-headers") ?? "content-type"
        headers.append(("Access-Control-Allow-Headers", requested))
        headers.append(("Access-Control-Max-Age", "86400"))
        return headers
    }
}

/// The endpoint's metrics (swift-metrics).
struct EngineIOMetrics: Sendable {
    let path: String
    let connections: Meter
    let slowClientDrops: Counter

    init(path: String) {
        self.path = path
        self.connections = Meter(label: "socketgateway_engineio_connections", dimensions: [("path", path)])
        self.slowClientDrops = Counter(label: "socketgateway_engineio_slow_client_drops_total", dimensions: [("path", path)])
    }

    func opened(transport: EngineIOTransportKind) {
        self.connections.increment()
        Counter(
            label: "socketgateway_engineio_sessions_opened_total",
            dimensions: [("path", self.path), ("transport", transport.rawValue)]
        ).increment()
    }

    func closed(reason: EngineIOCloseReason) {
        self.connections.decrement()
        Counter(
            label: "socketgateway_engineio_sessions_closed_total",
            dimensions: [("path", self.path), ("reason", reason.description)]
        ).increment()
        if reason == .slowClient { self.slowClientDrops.increment() }
    }

    /// WebSocket connections reset because the peer did not take the close frame, by `why`.
    func webSocketForcedCloses(why: String) -> Counter {
        Counter(label: "socketgateway_engineio_websocket_forced_closes_total", dimensions: [("path", self.path), ("why", why)])
    }

    /// WebSocket connections failed for a protocol error, by the close code sent.
    func webSocketProtocolErrors(code: UInt16) -> Counter {
        Counter(
            label: "socketgateway_engineio_websocket_protocol_errors_total",
            dimensions: [("path", self.path), ("code", "\(code)")]
        )
    }
}
