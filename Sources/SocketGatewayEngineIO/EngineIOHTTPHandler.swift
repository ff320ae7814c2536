import Logging
import NIOCore
import NIOHTTP1
import SocketGatewayCore

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

/// Routes HTTP/1.1 requests: long-polling to the mounted Engine.IO endpoints, everything else to the fallback
/// responder or 404. Responses may be produced on another event loop (the session's); they hop back here.
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
    private let logger: Logger
    private var head: HTTPRequestHead?
    private var headArrival = NIODeadline.uptimeNanoseconds(0)
    private var target: Target = .notFound
    private var body: ByteBuffer?
    private var bodyLimit = 0
    /// A GET parked in a session, so its session can be told if the connection goes away.
    private var parked: (endpoint: EngineIOEndpoint, sid: String, handle: PollingRequestHandle)?
    /// A POST whose head has arrived but not its end.
    private var postInProgress: (endpoint: EngineIOEndpoint, sid: String)?

    init(endpoints: [EngineIOEndpoint], fallback: (any HTTPFallbackResponder)?, logger: Logger) {
        self.endpoints = endpoints
        self.fallback = fallback
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.headArrival = .now()
            self.body = nil
            let requestTarget = RequestTarget(uri: head.uri)
            if let endpoint = self.endpoints.first(where: { $0.matches(requestTarget.path) }) {
                self.target = .endpoint(endpoint, requestTarget)
                self.bodyLimit = endpoint.configuration.maxPayload
                if head.method == .POST, let sid = requestTarget.query["sid"] {
                    // Tell the session at once, so a second POST overlapping this one is caught.
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
        Self.write(
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
            Self.write(
                context: context,
                version: head.version,
                status: .notFound,
                headers: [("Content-Type", "text/plain; charset=utf-8")],
                body: ByteBuffer(string: "Not Found"),
                keepAlive: head.isKeepAlive
            )
        case .fallback(let responder):
            Self.runFallback(
                responder,
                head: head,
                body: body ?? ByteBuffer(),
                loopBound: NIOLoopBound(context, eventLoop: context.eventLoop)
            )
        case .endpoint(let endpoint, let requestTarget):
            let cors = endpoint.corsHeaders(for: head.headers)
            if head.method == .OPTIONS {
                Self.write(
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
            let handle = PollingRequestHandle(arrival: self.headArrival) { handle, reply, written in
                let answer: @Sendable () -> Void = {
                    let (context, handler) = loopBound.value
                    let promise = written.map { written in
                        let promise = context.eventLoop.makePromise(of: Void.self)
                        promise.futureResult.whenComplete { _ in written() }
                        return promise
                    }
                    handler.answer(
                        context: context,
                        handle: handle,
                        reply: reply,
                        version: version,
                        keepAlive: keepAlive,
                        cors: cors,
                        promise: promise
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
            let remoteAddress = context.channel.remoteAddress
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

    private static func runFallback(
        _ responder: any HTTPFallbackResponder,
        head: HTTPRequestHead,
        body: ByteBuffer,
        loopBound: NIOLoopBound<ChannelHandlerContext>
    ) {
        let eventLoop = loopBound.eventLoop
        Task {
            let response = await responder.respond(to: head, body: body)
            eventLoop.execute {
                var headers = response.headers
                headers.remove(name: "content-length")
                Self.write(
                    context: loopBound.value,
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
        promise: EventLoopPromise<Void>?
    ) {
        if self.parked?.handle === handle {
            self.parked = nil
        }
        switch reply {
        case .ok:
            Self.write(
                context: context,
                version: version,
                status: .ok,
                headers: cors + [("Content-Type", "text/html")],
                body: ByteBuffer(string: "ok"),
                keepAlive: keepAlive,
                promise: promise
            )
        case .payload(let body):
            Self.write(
                context: context,
                version: version,
                status: .ok,
                headers: cors + [("Content-Type", "text/plain; charset=UTF-8")],
                body: body,
                keepAlive: keepAlive,
                promise: promise
            )
        case .error(let error):
            Self.write(
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
            NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: status, headers: responseHeaders))),
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
    private var swallowing = false
    /// Builds a new `HTTPServerUpgradeHandler` for an upgrade request that is not the connection's first
    /// request (NIO's handler removes itself after the first request).
    var makeUpgradeHandler: (() -> HTTPServerUpgradeHandler)?
    private var upgradeHandler: HTTPServerUpgradeHandler?

    init(endpoints: [EngineIOEndpoint]) {
        self.endpoints = endpoints
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
