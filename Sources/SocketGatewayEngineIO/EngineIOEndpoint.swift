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
    /// Called on the connection's event loop once a response has been handed to the socket (`true`), or could
    /// not be because the connection is gone (`false`).
    typealias Written = @Sendable (_ delivered: Bool) -> Void

    /// When the request's head was read (monotonic, comparable across event loops).
    let arrival: NIODeadline
    private let send: @Sendable (PollingRequestHandle, PollingReply, Written?) -> Void

    init(
        arrival: NIODeadline = .now(),
        send: @escaping @Sendable (PollingRequestHandle, PollingReply, Written?) -> Void
    ) {
        self.arrival = arrival
        self.send = send
    }

    /// Answers the request; `written` (if any) is called on the connection's event loop once the response has
    /// been handed to the socket, or could not be. A payload (a GET's packets) is never written to a connection
    /// whose client has already closed it: `written(false)` then tells the session its packets were not delivered.
    func reply(_ reply: PollingReply, written: Written? = nil) {
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
    /// Closed polling sessions whose next GET still gets an answer ending it: a noop after the client's close, the
    /// close packet after the application's.
    private let lingering = NIOLockedValueBox(LingeringSessions())
    /// How long a polling session the application closed (e.g. for a Socket.IO protocol error) answers its next GET
    /// with the close packet, so the client learns why rather than getting `400 Session ID unknown`.
    static let closePacketLingerTime = TimeAmount.seconds(10)
    private static let noopPayload = EngineIOPollingPayload.encode([.noop])
    private static let closePayload = EngineIOPollingPayload.encode([.close])
    private let protocolErrorWarning = RateLimitedWarning()
    /// Sessions opened and not yet established (see ``EngineIOConfiguration/maxPendingSessions``).
    private let pendingSessions = NIOLockedValueBox(0)
    private let handshakeRefusedWarning = RateLimitedWarning()
    /// Upgrade WebSockets attached to their session in `shouldUpgrade`, waiting for their pipeline.
    private let reservedUpgrades = NIOLockedValueBox<
        [ObjectIdentifier: (EngineIOSession, ChannelWebSocketConnection)]
    >([:])
    /// Warnings about misbehaving WebSocket peers: a flood of them logs a bounded number of lines.
    private let webSocketWarning = RateLimitedWarning()

    init(path: String, configuration: EngineIOConfiguration, application: any EngineIOApplication, logger: Logger) {
        self.path = Self.normalized(path: path)
        self.configuration = configuration
        self.application = application
        var logger = logger
        logger[metadataKey: "engineio.path"] = "\(path)"
        self.logger = logger
        self.metrics = EngineIOMetrics(path: path)
    }

    /// `path` with a slash on both ends, as endpoints keep it.
    static func normalized(path: String) -> String {
        var path = path
        if !path.hasPrefix("/") { path = "/" + path }
        if !path.hasSuffix("/") { path += "/" }
        return path
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

    func sessionOpened(_ session: EngineIOSession, transport: EngineIOTransportKind) {
        self.metrics.opened(transport: transport)
        self.logger.debug(
            "session opened",
            metadata: ["engineio.sid": "\(session.id)", "engineio.transport": "\(transport)"]
        )
    }

    func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {
        _ = self.sessions.withLockedValue { $0.removeValue(forKey: session.id) }
        self.metrics.closed(reason: reason)
        self.logger.debug(
            "session closed",
            metadata: ["engineio.sid": "\(session.id)", "engineio.reason": "\(reason)"]
        )
    }

    /// The number of sessions opened and not yet established.
    var pendingSessionCount: Int {
        self.pendingSessions.withLockedValue { $0 }
    }

    /// Takes a place for a new session among the pending ones; false when the limit is reached.
    private func reservePendingSession() -> Bool {
        self.pendingSessions.withLockedValue { count in
            guard count < self.configuration.maxPendingSessions else { return false }
            count += 1
            return true
        }
    }

    /// A pending session was established or closed.
    func pendingSessionEnded() {
        self.pendingSessions.withLockedValue { $0 -= 1 }
    }

    /// Counts and logs (rate-limited) a handshake refused because too many sessions are pending.
    private func handshakeRefused(transport: EngineIOTransportKind, remoteAddress: SocketAddress?) {
        self.metrics.handshakeRefused(reason: "pending_sessions")
        self.handshakeRefusedWarning.log(
            self.logger,
            "refusing Engine.IO handshake: too many sessions waiting to connect",
            metadata: [
                "limit": "\(self.configuration.maxPendingSessions)",
                "engineio.transport": "\(transport)",
                "remote": "\(remoteAddress.map { "\($0)" } ?? "?")",
            ]
        )
    }

    private func register(_ session: EngineIOSession) {
        self.sessions.withLockedValue { $0[session.id] = session }
    }

    // MARK: WebSocket

    /// A WebSocket request without sid: a new WebSocket-only session on `eventLoop` (the connection's loop).
    func openWebSocketSession(
        connection: any EngineIOWebSocketConnection,
        request: EngineIOHandshakeRequest,
        eventLoop: any EventLoop
    ) -> EngineIOSession {
        // Checked before the upgrade (validateWebSocketRequest); counted here even if a race took it past the limit.
        self.pendingSessions.withLockedValue { $0 += 1 }
        let session = EngineIOSession(
            id: SessionID.random(),
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
    func attachUpgrade(
        sid: String,
        channel: any Channel,
        deflate: WebSocketDeflateAgreement?
    ) -> EventLoopFuture<HTTPHeaders?> {
        guard let session = self.session(id: sid) else { return channel.eventLoop.makeSucceededFuture(nil) }
        let connection = ChannelWebSocketConnection(channel: channel, endpoint: self, deflate: deflate)
        let key = ObjectIdentifier(channel)
        self.reservedUpgrades.withLockedValue { $0[key] = (session, connection) }
        channel.closeFuture.whenComplete { _ in
            _ = self.reservedUpgrades.withLockedValue { $0.removeValue(forKey: key) }
        }
        let promise = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
        session.eventLoop.execute {
            session.webSocketAttached(connection)
            promise.succeed(Self.upgradeResponseHeaders(deflate: deflate))
        }
        return promise.futureResult
    }

    /// The headers the 101 adds: the permessage-deflate answer when one was agreed.
    static func upgradeResponseHeaders(deflate: WebSocketDeflateAgreement?) -> HTTPHeaders {
        guard let deflate else { return HTTPHeaders() }
        return HTTPHeaders([("Sec-WebSocket-Extensions", deflate.responseHeader)])
    }

    /// What this endpoint agrees to for an upgrade request's permessage-deflate offers (nil: uncompressed).
    func deflateAgreement(for headers: HTTPHeaders) -> WebSocketDeflateAgreement? {
        WebSocketDeflateNegotiation.negotiate(headers, configuration: self.configuration.webSocketCompression)
    }

    /// The session and connection reserved by `attachUpgrade` for this channel.
    func takeReservedUpgrade(channel: any Channel) -> (EngineIOSession, ChannelWebSocketConnection)? {
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
        if let sid = query["sid"] {
            if self.session(id: sid) == nil { return .unknownSession }
        } else if self.pendingSessionCount >= self.configuration.maxPendingSessions {
            self.handshakeRefused(transport: .websocket, remoteAddress: nil)
            return .tooManyPendingSessions
        }
        return nil
    }

    /// A WebSocket connection was reset instead of closed cleanly: its peer did not take the close frame (`why` is
    /// `unwritable` when the write buffer was over its limit, `close timeout` when the frame was not written
    /// within `webSocketCloseTimeout`).
    func webSocketForcedClose(why: String, remoteAddress: SocketAddress?) {
        self.metrics.webSocketForcedCloses(why: why).increment()
        self.webSocketWarning.log(
            self.logger,
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
        self.webSocketWarning.log(self.logger, "websocket protocol error, connection failed", metadata: metadata)
    }

    // MARK: long-polling

    /// The client closed `sid` over polling with no GET parked: its GET in flight ends with a noop.
    func linger(sid: String) {
        let until = NIODeadline.now() + TimeAmount(self.configuration.closedSessionLingerTime)
        self.lingering.withLockedValue { $0.add(sid: sid, answer: Self.noopPayload, until: until) }
    }

    /// The application closed polling session `sid` with no GET parked: its next GET gets the close packet.
    func lingerWithClosePacket(sid: String) {
        self.lingering.withLockedValue {
            $0.add(sid: sid, answer: Self.closePayload, until: .now() + Self.closePacketLingerTime)
        }
    }

    /// The answer for the first GET of a session that just closed, if it closed so recently.
    private func takeLingering(sid: String) -> ByteBuffer? {
        self.lingering.withLockedValue { $0.take(sid: sid, now: .now()) }
    }

    /// A client broke the Engine.IO protocol (its session is closed): counted and logged, rate-limited.
    func protocolError(sid: String, transport: EngineIOTransportKind, error: EngineIOCodecError) {
        Counter(
            label: "socketgateway_engineio_protocol_errors_total",
            dimensions: [("path", self.path), ("transport", transport.rawValue)]
        ).increment()
        self.protocolErrorWarning.log(
            self.logger,
            "closing Engine.IO session: protocol error",
            metadata: [
                "engineio.sid": "\(sid)",
                "engineio.transport": "\(transport)",
                "error": "\(LogSafe.text("\(error)"))",
            ]
        )
    }

    /// Checks the query of a long-polling request; nil when `EIO` and `transport` are acceptable.
    func validatePollingQuery(_ query: [String: String]) -> EngineIOHTTPError? {
        guard query["EIO"] == "4" else { return .unsupportedProtocolVersion }
        guard let transportName = query["transport"],
            let transport = EngineIOTransportKind(rawValue: transportName),
            self.configuration.transports.contains(transport)
        else {
            return .transportUnknown
        }
        // transport=websocket without a valid upgrade.
        guard transport == .polling else { return .badRequest }
        return nil
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
        if let error = self.validatePollingQuery(query) {
            handle.reply(.error(error))
            return
        }
        guard let sid = query["sid"] else {
            guard method == .GET else {
                handle.reply(.error(.badHandshakeMethod))
                return
            }
            guard self.reservePendingSession() else {
                self.handshakeRefused(transport: .polling, remoteAddress: request().remoteAddress)
                handle.reply(.error(.tooManyPendingSessions))
                return
            }
            let session = EngineIOSession(
                id: SessionID.random(),
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
            if method == .GET, let answer = self.takeLingering(sid: sid) {
                handle.reply(.payload(answer))
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
        session.terminate(reason: .payloadTooLarge)
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
            guard let origin = requestHeaders.first(name: "origin"), self.configuration.cors.matches(origin: origin)
            else {
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

/// Recently closed polling sessions and the answer their next GET gets. Expired entries are dropped when the table
/// has doubled since the last sweep, so adding stays O(1) on average however many sessions close.
struct LingeringSessions {
    private var entries: [String: (until: NIODeadline, answer: ByteBuffer)] = [:]
    private var sweepAt = 64

    mutating func add(sid: String, answer: ByteBuffer, until: NIODeadline) {
        if self.entries.count >= self.sweepAt {
            let now = NIODeadline.now()
            self.entries = self.entries.filter { $0.value.until > now }
            self.sweepAt = max(64, self.entries.count * 2)
        }
        self.entries[sid] = (until, answer)
    }

    mutating func take(sid: String, now: NIODeadline) -> ByteBuffer? {
        guard let entry = self.entries.removeValue(forKey: sid), entry.until > now else { return nil }
        return entry.answer
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
        self.slowClientDrops = Counter(
            label: "socketgateway_engineio_slow_client_drops_total",
            dimensions: [("path", path)]
        )
    }

    func opened(transport: EngineIOTransportKind) {
        self.connections.increment()
        Counter(
            label: "socketgateway_engineio_sessions_opened_total",
            dimensions: [("path", self.path), ("transport", transport.rawValue)]
        ).increment()
    }

    func handshakeRefused(reason: String) {
        Counter(
            label: "socketgateway_engineio_handshakes_refused_total",
            dimensions: [("path", self.path), ("reason", reason)]
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
        Counter(
            label: "socketgateway_engineio_websocket_forced_closes_total",
            dimensions: [("path", self.path), ("why", why)]
        )
    }

    /// WebSocket connections failed for a protocol error, by the close code sent.
    func webSocketProtocolErrors(code: UInt16) -> Counter {
        Counter(
            label: "socketgateway_engineio_websocket_protocol_errors_total",
            dimensions: [("path", self.path), ("code", "\(code)")]
        )
    }
}
