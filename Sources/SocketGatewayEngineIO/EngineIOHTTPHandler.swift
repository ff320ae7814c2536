import Logging
import Metrics
import NIOCore
import NIOHTTP1
import SocketGatewayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits a request URI into its path and percent-decoded query parameters.
struct RequestTarget: Sendable {
    var path: String
    var query: [String: String]

    init(uri: String) {
        guard let mark = uri.firstIndex(of: "?") else {
            self.path = uri
            self.query = [:]
            return
        }
        self.path = String(uri[..<mark])
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.percentDecode(parts[0])
            query[name] = parts.count > 1 ? Self.percentDecode(parts[1]) : ""
        }
        self.query = query
    }

    static func percentDecode(_ text: Substring) -> String {
        guard text.contains(where: { $0 == "%" || $0 == "+" }) else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// What every HTTP connection of a server shares: its time limits, and the counter and warning of connections
/// closed for running out of them.
final class HTTPConnectionPolicy: Sendable {
    let timeouts: HTTPConnectionTimeouts
    /// The most bytes a request's target and headers may take.
    let maxRequestHeaderBytes: Int
    let logger: Logger
    private let headerTooLargeWarning = RateLimitedWarning()
    private let timeoutWarning = RateLimitedWarning()
    private let connectionRefusedWarning = RateLimitedWarning()
    private let tlsHandshakeWarning = RateLimitedWarning()

    init(timeouts: HTTPConnectionTimeouts, maxRequestHeaderBytes: Int = 16 << 10, logger: Logger) {
        self.timeouts = timeouts
        self.maxRequestHeaderBytes = maxRequestHeaderBytes
        self.logger = logger
    }

    /// The limits for a server with these endpoints: the most lenient of each (connections are timed before
    /// they are routed).
    convenience init(endpoints: [EngineIOEndpoint], logger: Logger) {
        self.init(configurations: endpoints.map(\.configuration), logger: logger)
    }

    /// The limits for a listener whose connections these configurations govern: the most lenient of each.
    convenience init(configurations: [EngineIOConfiguration], logger: Logger) {
        let defaults = EngineIOConfiguration()
        func largest(_ value: KeyPath<EngineIOConfiguration, Duration>) -> TimeAmount {
            TimeAmount(configurations.map { $0[keyPath: value] }.max() ?? defaults[keyPath: value])
        }
        self.init(
            timeouts: HTTPConnectionTimeouts(
                idle: largest(\.httpIdleTimeout),
                header: largest(\.httpHeaderTimeout),
                body: largest(\.httpBodyTimeout)
            ),
            maxRequestHeaderBytes: configurations.map(\.maxRequestHeaderBytes).max() ?? defaults.maxRequestHeaderBytes,
            logger: logger
        )
    }

    /// Whether a request head is larger than allowed (target plus headers, as sent, roughly).
    func headTooLarge(_ head: HTTPRequestHead) -> Bool {
        var size = head.uri.utf8.count
        for header in head.headers {
            size += header.name.utf8.count + header.value.utf8.count + 4
            if size > self.maxRequestHeaderBytes { return true }
        }
        return size > self.maxRequestHeaderBytes
    }

    /// Counts and logs (rate-limited) a request refused for its head's size.
    func headRefused(remoteAddress: SocketAddress?) {
        Counter(label: "socketgateway_http_requests_refused_total", dimensions: [("reason", "header_too_large")])
            .increment()
        self.headerTooLargeWarning.log(
            self.logger,
            "refusing HTTP request: headers too large",
            metadata: [
                "remote": "\(remoteAddress.map { "\($0)" } ?? "?")",
                "limit": "\(self.maxRequestHeaderBytes)",
            ]
        )
    }

    /// Counts and logs (rate-limited) a connection closed because its address has too many open already.
    func connectionRefused(address: String, limit: Int) {
        Counter(label: "socketgateway_http_connections_refused_total", dimensions: [("reason", "per_address_limit")])
            .increment()
        self.connectionRefusedWarning.log(
            self.logger,
            "closing new connection: too many connections from its address",
            metadata: ["remote": "\(address)", "limit": "\(limit)"]
        )
    }

    /// Counts (`socketgateway_http_timeouts_total{kind="tls_handshake"}`) and logs (rate-limited) a connection
    /// closed because its TLS handshake did not complete in time.
    func tlsHandshakeTimedOut(remoteAddress: SocketAddress?, timeout: TimeAmount) {
        Counter(label: "socketgateway_http_timeouts_total", dimensions: [("kind", "tls_handshake")]).increment()
        self.tlsHandshakeWarning.log(
            self.logger,
            "closing connection: TLS handshake not completed in time",
            metadata: ["remote": "\(remoteAddress.map { "\($0)" } ?? "?")", "timeout": "\(timeout)"]
        )
    }

    /// Counts and logs (rate-limited) a connection closed because a time limit ran out.
    func timedOut(_ kind: HTTPConnectionTimeoutKind, remoteAddress: SocketAddress?) {
        Counter(label: "socketgateway_http_timeouts_total", dimensions: [("kind", kind.rawValue)]).increment()
        // Idle connections are routine (a browser's spare connection, a client's pool); slow requests are not.
        guard kind != .idle else {
            self.logger.debug(
                "closing idle HTTP connection",
                metadata: ["remote": "\(remoteAddress.map { "\($0)" } ?? "?")"]
            )
            return
        }
        self.timeoutWarning.log(
            self.logger,
            "closing HTTP connection: request \(kind.rawValue) not received in time",
            metadata: [
                "remote": "\(remoteAddress.map { "\($0)" } ?? "?")",
                "timeout": "\(kind == .header ? self.timeouts.header : self.timeouts.body)",
            ]
        )
    }
}

/// Routes HTTP/1.1 requests: long-polling to the mounted Engine.IO endpoints, everything else to the fallback
/// responder or 404. Responses may be produced on another event loop (the session's); they hop back here.
///
/// It also enforces the connection's HTTP time limits (``HTTPConnectionTimeoutStateMachine``) until the connection
/// is upgraded to a WebSocket, which removes this handler.
final class EngineIOHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maxFallbackBody = 1 << 20

    private enum Target {
        case endpoint(EngineIOEndpoint, RequestTarget)
        case fallback(any HTTPFallbackResponder)
        case notFound
        /// The body is too large: answered already, the rest is dropped.
        case discarding
    }

    private let endpoints: [EngineIOEndpoint]
    private let fallback: (any HTTPFallbackResponder)?
    /// Where fallback responses run (owned by the server's `run()`).
    private let tasks: ServerTaskPool
    private let logger: Logger
    private let policy: HTTPConnectionPolicy
    private var timeouts: HTTPConnectionTimeoutStateMachine
    private var timeoutTimer: Scheduled<Void>?
    private var timeoutsStarted = false
    private var head: HTTPRequestHead?
    private var headArrival = NIODeadline.uptimeNanoseconds(0)
    private var target: Target = .notFound
    private var body: ByteBuffer?
    private var bodyLimit = 0
    /// A GET parked in a session, so its session can be told if the connection goes away.
    private var parked: (endpoint: EngineIOEndpoint, sid: String, handle: PollingRequestHandle)?
    /// The report of the last GET answer carrying packets, until the client shows it got past it (its next request
    /// on this connection) or shows it did not (it closed or reset the connection with those bytes unacknowledged).
    private var unconfirmedAnswer: PollingRequestHandle.Written?
    /// A POST whose head has arrived but not its end.
    private var postInProgress: (endpoint: EngineIOEndpoint, sid: String)?

    init(
        endpoints: [EngineIOEndpoint],
        fallback: (any HTTPFallbackResponder)?,
        tasks: ServerTaskPool,
        policy: HTTPConnectionPolicy,
        logger: Logger
    ) {
        self.endpoints = endpoints
        self.fallback = fallback
        self.tasks = tasks
        self.policy = policy
        self.logger = logger
        self.timeouts = HTTPConnectionTimeoutStateMachine(timeouts: policy.timeouts, now: .now())
    }

    // MARK: time limits

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.startTimeouts(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.startTimeouts(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Upgraded to a WebSocket (or the channel is gone): the Engine.IO heartbeat takes over.
        self.timeouts.stop()
        self.timeoutTimer?.cancel()
        self.timeoutTimer = nil
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // With an answer unconfirmed, a read without a new request is the client's FIN (NIO reports it here, before
        // it closes the socket) or part of a later request. A FIN whose acknowledgement does not cover our answer
        // was sent before the answer arrived: the client never read it.
        if let unconfirmed = self.unconfirmedAnswer, Self.closedWithoutReadingOurData(context.channel) {
            self.unconfirmedAnswer = nil
            unconfirmed(false)
        }
        self.runTimeout(self.timeouts.readCompleted(now: .now()), context: context)
        context.fireChannelReadComplete()
    }

    private func startTimeouts(context: ChannelHandlerContext) {
        guard !self.timeoutsStarted else { return }
        self.timeoutsStarted = true
        self.timeouts = HTTPConnectionTimeoutStateMachine(timeouts: self.policy.timeouts, now: .now())
        self.runTimeout(self.timeouts.connectionOpened(), context: context)
    }

    /// A response has been written; `keepAlive` tells whether the connection stays open for another request.
    private func responseWritten(context: ChannelHandlerContext, keepAlive: Bool) {
        if keepAlive {
            self.runTimeout(self.timeouts.responseSent(now: .now()), context: context)
        } else {
            self.timeouts.stop()
            self.timeoutTimer?.cancel()
            self.timeoutTimer = nil
        }
    }

    private func runTimeout(_ action: HTTPConnectionTimeoutStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .scheduleTimer(let deadline):
            self.timeoutTimer?.cancel()
            self.timeoutTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                self.timeoutTimer = nil
                self.runTimeout(self.timeouts.timerFired(now: .now()), context: context)
            }
        case .close(let kind, let respond):
            self.timeoutTimer?.cancel()
            self.timeoutTimer = nil
            self.policy.timedOut(kind, remoteAddress: context.channel.remoteAddress)
            // The 408 goes in below NIO's pipelining handler, which may not have seen a request head yet and would
            // refuse a response to no request: written as bytes through the context of the response encoder.
            guard respond,
                let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
            else {
                context.close(promise: nil)
                return
            }
            let channel = context.channel
            encoder.writeAndFlush(NIOAny(Self.requestTimeoutResponse)).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    static let requestTimeoutResponse = ByteBuffer(
        string: "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 15\r\n"
            + "Connection: close\r\n\r\nRequest Timeout"
    )

    // MARK: requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.unconfirmedAnswer = nil
            self.timeouts.headReceived(now: .now())
            self.head = head
            self.headArrival = .now()
            self.body = nil
            let requestTarget = RequestTarget(uri: head.uri)
            if let endpoint = self.endpoints.first(where: { $0.matches(requestTarget.path) }) {
                self.target = .endpoint(endpoint, requestTarget)
                self.bodyLimit = endpoint.configuration.maxPayload
                if head.method == .POST, let sid = requestTarget.query["sid"],
                    endpoint.validatePollingQuery(requestTarget.query) == nil
                {
                    // Tell the session at once, so a second POST overlapping this one is caught. A POST refused for
                    // its query (wrong EIO or transport) never reaches the session, so it must not mark one started.
                    endpoint.postStarted(sid: sid)
                    self.postInProgress = (endpoint, sid)
                }
            } else if let fallback = self.fallback {
                self.target = .fallback(fallback)
                self.bodyLimit = Self.maxFallbackBody
            } else {
                self.target = .notFound
                self.bodyLimit = Self.maxFallbackBody
            }
        case .body(var chunk):
            self.timeouts.bodyReceived()
            if case .discarding = self.target { return }
            if (self.body?.readableBytes ?? 0) + chunk.readableBytes > self.bodyLimit {
                self.bodyTooLarge(context: context)
                return
            }
            if self.body == nil {
                self.body = chunk
            } else {
                self.body!.writeBuffer(&chunk)
            }
        case .end:
            self.timeouts.endReceived(now: .now())
            self.postInProgress = nil
            guard let head = self.head else { return }
            self.head = nil
            let body = self.body
            self.body = nil
            self.dispatch(context: context, head: head, body: body)
        }
    }

    private func bodyTooLarge(context: ChannelHandlerContext) {
        guard let head = self.head else { return }
        var extraHeaders: [(String, String)] = []
        if case .endpoint(let endpoint, let requestTarget) = self.target {
            endpoint.payloadTooLarge(query: requestTarget.query)
            extraHeaders = endpoint.corsHeaders(for: head.headers)
        }
        self.target = .discarding
        self.body = nil
        let body = Self.errorBody(.payloadTooLarge, allocator: context.channel.allocator)
        self.respond(
            context: context,
            version: head.version,
            status: .payloadTooLarge,
            headers: extraHeaders + [("Content-Type", "application/json")],
            body: body,
            keepAlive: false
        )
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer?) {
        switch self.target {
        case .discarding:
            return
        case .notFound:
            self.respond(
                context: context,
                version: head.version,
                status: .notFound,
                headers: [("Content-Type", "text/plain; charset=utf-8")],
                body: ByteBuffer(string: "Not Found"),
                keepAlive: head.isKeepAlive
            )
        case .fallback(let responder):
            let submitted = Self.runFallback(
                responder,
                head: head,
                body: body ?? ByteBuffer(),
                tasks: self.tasks,
                loopBound: NIOLoopBound((context, self), eventLoop: context.eventLoop)
            )
            if !submitted {
                // The server is shutting down (its tasks take no more work): answered here, not dropped.
                self.logger.debug("fallback request refused: the server is shutting down")
                self.respond(
                    context: context,
                    version: head.version,
                    status: .serviceUnavailable,
                    headers: [("Content-Type", "text/plain; charset=utf-8")],
                    body: ByteBuffer(string: "Service Unavailable: shutting down"),
                    keepAlive: false
                )
            }
        case .endpoint(let endpoint, let requestTarget):
            let cors = endpoint.corsHeaders(for: head.headers)
            if head.method == .OPTIONS {
                self.respond(
                    context: context,
                    version: head.version,
                    status: .noContent,
                    headers: endpoint.preflightHeaders(for: head.headers),
                    body: nil,
                    keepAlive: head.isKeepAlive
                )
                return
            }
            let loopBound = NIOLoopBound((context, self), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            let version = head.version
            let keepAlive = head.isKeepAlive
            // httpCompression: what this GET's Accept-Encoding allows for its payload.
            let compression =
                head.method == .GET ? endpoint.configuration.httpCompression?.forRequest(head.headers) : nil
            let handle = PollingRequestHandle(arrival: self.headArrival) { handle, reply, written in
                let answer: @Sendable () -> Void = {
                    let (context, handler) = loopBound.value
                    handler.answer(
                        context: context,
                        handle: handle,
                        reply: reply,
                        version: version,
                        keepAlive: keepAlive,
                        cors: cors,
                        compression: compression,
                        written: written
                    )
                }
                if eventLoop.inEventLoop {
                    answer()
                } else {
                    eventLoop.execute(answer)
                }
            }
            if head.method == .GET, let sid = requestTarget.query["sid"] {
                self.parked = (endpoint, sid, handle)
            }
            let remoteAddress = endpoint.configuration.trustedProxies.clientAddress(
                peer: context.channel.remoteAddress,
                headers: head.headers
            )
            endpoint.handlePolling(
                method: head.method,
                query: requestTarget.query,
                request: EngineIOHandshakeRequest(
                    uri: head.uri,
                    path: requestTarget.path,
                    query: requestTarget.query,
                    headers: head.headers,
                    remoteAddress: remoteAddress
                ),
                body: body,
                eventLoop: context.eventLoop,
                handle: handle
            )
        }
    }

    /// Produces the fallback response in a task of `tasks`, then writes it on the connection's loop.
    /// - Returns: false when `tasks` takes no more work (the server is shutting down): nothing was started.
    private static func runFallback(
        _ responder: any HTTPFallbackResponder,
        head: HTTPRequestHead,
        body: ByteBuffer,
        tasks: ServerTaskPool,
        loopBound: NIOLoopBound<(ChannelHandlerContext, EngineIOHTTPHandler)>
    ) -> Bool {
        let eventLoop = loopBound.eventLoop
        return tasks.submit {
            let response = await responder.respond(to: head, body: body)
            eventLoop.execute {
                var headers = response.headers
                headers.remove(name: "content-length")
                let (context, handler) = loopBound.value
                handler.respond(
                    context: context,
                    version: head.version,
                    status: response.status,
                    headers: headers.map { ($0.name, $0.value) },
                    body: response.body,
                    keepAlive: head.isKeepAlive
                )
            }
        }
    }

    private func answer(
        context: ChannelHandlerContext,
        handle: PollingRequestHandle,
        reply: PollingReply,
        version: HTTPVersion,
        keepAlive: Bool,
        cors: [(String, String)],
        compression: PollingResponseCompression?,
        written: PollingRequestHandle.Written?
    ) {
        if self.parked?.handle === handle {
            self.parked = nil
        }
        if case .payload = reply, !Self.clientStillConnected(context.channel) {
            // The GET's client is gone (its close may not have been processed yet): its packets would vanish in a
            // dead socket. The session hears about it (and closes: an aborted GET is a transport error).
            written?(false)
            context.close(promise: nil)
            return
        }
        let promise = written.map { written in
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { result in
                if case .success = result { written(true) } else { written(false) }
            }
            return promise
        }
        if case .payload = reply, keepAlive, let written {
            // Handed to the socket is not yet read by the client: if the client turns out to have closed before
            // these bytes reached it, the session must still hear that they were lost (see channelReadComplete).
            self.unconfirmedAnswer = written
        }
        switch reply {
        case .ok:
            self.respond(
                context: context,
                version: version,
                status: .ok,
                headers: cors + [("Content-Type", "text/html")],
                body: ByteBuffer(string: "ok"),
                keepAlive: keepAlive,
                promise: promise
            )
        case .payload(let body):
            let (sent, encoding) = compression?.encode(body) ?? (body, [])
            self.respond(
                context: context,
                version: version,
                status: .ok,
                headers: cors + [("Content-Type", "text/plain; charset=UTF-8")] + encoding,
                body: sent,
                keepAlive: keepAlive,
                promise: promise
            )
        case .error(let error):
            self.respond(
                context: context,
                version: version,
                status: HTTPResponseStatus(statusCode: error.status.rawValue),
                headers: cors + [("Content-Type", "application/json")],
                body: Self.errorBody(error, allocator: context.channel.allocator),
                keepAlive: keepAlive,
                promise: promise
            )
        }
    }

    /// Writes a response and updates the connection's time limits.
    private func respond(
        context: ChannelHandlerContext,
        version: HTTPVersion,
        status: HTTPResponseStatus,
        headers: [(String, String)],
        body: ByteBuffer?,
        keepAlive: Bool,
        promise: EventLoopPromise<Void>? = nil
    ) {
        Self.write(
            context: context,
            version: version,
            status: status,
            headers: headers,
            body: body,
            keepAlive: keepAlive,
            promise: promise
        )
        self.responseWritten(context: context, keepAlive: keepAlive)
    }

    /// Whether the channel is open and its client has not closed its side. The second part matters because a
    /// connection's end-of-file may still wait in the event loop when a GET's answer comes in from its session.
    static func clientStillConnected(_ channel: any Channel) -> Bool {
        guard channel.isActive else { return false }
        // TCP_ESTABLISHED is 1; CLOSE_WAIT (the client sent FIN) or CLOSE (reset) mean it is gone.
        return Self.tcpState(of: channel).map { $0.state == 1 } ?? true
    }

    /// Whether the client has closed (FIN) without acknowledging everything we sent, or reset the connection.
    static func closedWithoutReadingOurData(_ channel: any Channel) -> Bool {
        // TCP_CLOSE is 7 (reset), TCP_CLOSE_WAIT is 8 (the client's FIN arrived).
        guard let info = Self.tcpState(of: channel) else { return false }
        return info.state == 7 || (info.state == 8 && info.unacknowledged > 0)
    }

    /// The kernel's TCP state of the channel's socket and its count of unacknowledged segments (Linux, on the
    /// channel's loop); `nil` where it cannot be read.
    private static func tcpState(of channel: any Channel) -> (state: UInt8, unacknowledged: UInt32)? {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        var result: (state: UInt8, unacknowledged: UInt32)?
        provider.getTCPInfo().assumeIsolated().whenSuccess { info in
            result = (info.tcpi_state, info.tcpi_unacked)
        }
        return result
        #else
        return nil
        #endif
    }

    static func errorBody(_ error: EngineIOHTTPError, allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(string: "{\"code\":\(error.code),\"message\":\"\(error.message)\"}")
    }

    static func write(
        context: ChannelHandlerContext,
        version: HTTPVersion,
        status: HTTPResponseStatus,
        headers: [(String, String)],
        body: ByteBuffer?,
        keepAlive: Bool,
        promise: EventLoopPromise<Void>? = nil
    ) {
        var responseHeaders = HTTPHeaders(headers)
        responseHeaders.add(name: "Content-Length", value: "\(body?.readableBytes ?? 0)")
        if !keepAlive { responseHeaders.add(name: "Connection", value: "close") }
        context.write(
            NIOAny(
                HTTPServerResponsePart.head(
                    HTTPResponseHead(version: version, status: status, headers: responseHeaders)
                )
            ),
            promise: nil
        )
        if let body, body.readableBytes > 0 {
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: promise)
        } else {
            let channel = context.channel
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { result in
                promise?.completeWith(result)
                channel.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let post = self.postInProgress {
            self.postInProgress = nil
            post.endpoint.postAbandoned(sid: post.sid)
        }
        if let parked = self.parked {
            self.parked = nil
            parked.endpoint.pollingConnectionClosed(sid: parked.sid, handle: parked.handle)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let unconfirmed = self.unconfirmedAnswer, let error = error as? IOError, error.errnoCode == ECONNRESET {
            // A reset after our answer: the client closed with it unread, or before it arrived.
            self.unconfirmedAnswer = nil
            unconfirmed(false)
        }
        self.logger.debug("HTTP connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

/// Sits before NIO's upgrade handler and answers invalid Engine.IO WebSocket requests (bad EIO, transport or sid,
/// a missing or malformed Sec-WebSocket-Key or -Version, a refused Origin) with an Engine.IO error and its HTTP
/// status, instead of letting the upgrader drop the connection without a word.
final class EngineIOWebSocketRequestValidator: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let endpoints: [EngineIOEndpoint]
    private let policy: HTTPConnectionPolicy
    private var swallowing = false
    /// Builds a new `HTTPServerUpgradeHandler` for an upgrade request that is not the connection's first
    /// request (NIO's handler removes itself after the first request).
    var makeUpgradeHandler: (() -> HTTPServerUpgradeHandler)?
    private var upgradeHandler: HTTPServerUpgradeHandler?

    init(endpoints: [EngineIOEndpoint], policy: HTTPConnectionPolicy) {
        self.endpoints = endpoints
        self.policy = policy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.upgradeHandler = try? context.pipeline.syncOperations.handler(type: HTTPServerUpgradeHandler.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // The factory's completion handler refers back to this handler: drop it so the two can be freed.
        self.makeUpgradeHandler = nil
        self.upgradeHandler = nil
    }

    /// Puts an upgrade handler right after this one if the last one has left the pipeline.
    private func rearmUpgradeHandler(context: ChannelHandlerContext) {
        let sync = context.pipeline.syncOperations
        if let current = self.upgradeHandler, (try? sync.context(handler: current)) != nil { return }
        guard let make = self.makeUpgradeHandler else { return }
        let handler = make()
        do {
            try sync.addHandler(handler, position: .after(self))
            self.upgradeHandler = handler
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        switch part {
        case .head(let head):
            self.swallowing = false
            // Every request passes here first (upgrade or not): the one place to refuse oversized heads, before a
            // session could keep them.
            if self.policy.headTooLarge(head) {
                self.policy.headRefused(remoteAddress: context.channel.remoteAddress)
                self.swallowing = true
                EngineIOHTTPHandler.write(
                    context: context,
                    version: head.version,
                    status: .requestHeaderFieldsTooLarge,
                    headers: [("Content-Type", "text/plain; charset=utf-8")],
                    body: ByteBuffer(string: "Request Header Fields Too Large"),
                    keepAlive: false
                )
                return
            }
            guard head.headers.contains(name: "upgrade") else { break }
            let target = RequestTarget(uri: head.uri)
            guard let endpoint = self.endpoints.first(where: { $0.matches(target.path) }),
                let error = endpoint.validateWebSocketRequest(query: target.query, headers: head.headers)
            else {
                self.rearmUpgradeHandler(context: context)
                break
            }
            self.swallowing = true
            var headers = [("Content-Type", "application/json")]
            if error.status == .upgradeRequired { headers.append(("Sec-WebSocket-Version", "13")) }
            EngineIOHTTPHandler.write(
                context: context,
                version: head.version,
                status: HTTPResponseStatus(statusCode: error.status.rawValue),
                headers: headers,
                body: EngineIOHTTPHandler.errorBody(error, allocator: context.channel.allocator),
                keepAlive: false
            )
            return
        case .body, .end:
            if self.swallowing { return }
        }
        context.fireChannelRead(data)
    }
}
