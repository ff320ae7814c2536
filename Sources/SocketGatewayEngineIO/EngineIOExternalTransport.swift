import Logging
import NIOConcurrencyHelpers
package import NIOCore
package import NIOHTTP1
package import NIOWebSocket
import SocketGatewayCore

/// An HTTP request for an Engine.IO endpoint, as a framework's route hands it over (whole: body collected).
package struct EngineIOExternalRequest: Sendable {
    /// The method (GET, POST, OPTIONS).
    package var method: HTTPMethod
    /// The request URI, e.g. `/socket.io/?EIO=4&transport=polling`.
    package var uri: String
    /// The request headers.
    package var headers: HTTPHeaders
    /// The body (POST); nil for none.
    package var body: ByteBuffer?
    /// The client's address, when the framework knows it.
    package var remoteAddress: SocketAddress?

    /// Creates a request.
    package init(
        method: HTTPMethod,
        uri: String,
        headers: HTTPHeaders,
        body: ByteBuffer?,
        remoteAddress: SocketAddress?
    ) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
    }
}

/// The answer to an ``EngineIOExternalRequest``, for the framework to write.
package struct EngineIOExternalResponse: Sendable {
    /// The HTTP status code.
    package var status: Int
    /// Response headers (CORS among them); the framework adds Content-Length.
    package var headers: [(String, String)]
    /// The body.
    package var body: ByteBuffer
    /// Call once the body has been handed to the connection (`true`) or could not be (`false`): a GET's packets
    /// that never left are reported to their session. Nil when nobody needs to know.
    package var written: (@Sendable (Bool) -> Void)?
}

/// An Engine.IO endpoint whose bytes a framework carries (its routes for long-polling, its WebSocket support for
/// WebSockets), instead of our own listener: the same sessions, limits, CORS and upgrade as a listener's endpoint.
package final class EngineIOMountedEndpoint: Sendable {
    let endpoint: EngineIOEndpoint
    private let eventLoopGroup: any EventLoopGroup

    init(endpoint: EngineIOEndpoint, eventLoopGroup: any EventLoopGroup) {
        self.endpoint = endpoint
        self.eventLoopGroup = eventLoopGroup
    }

    /// The path, with slashes on both ends (e.g. `/socket.io/`).
    package var path: String { self.endpoint.path }

    /// The largest body a request may carry (``EngineIOConfiguration/maxPayload``).
    package var maxPayload: Int { self.endpoint.configuration.maxPayload }

    /// Whether `requestPath` belongs to this endpoint.
    package func matches(_ requestPath: String) -> Bool {
        self.endpoint.matches(requestPath)
    }

    // MARK: long-polling

    /// Answers a long-polling request (or a CORS preflight); a GET may wait for packets up to pingInterval.
    package func respond(to request: EngineIOExternalRequest) async -> EngineIOExternalResponse {
        let endpoint = self.endpoint
        let target = RequestTarget(uri: request.uri)
        let cors = endpoint.corsHeaders(for: request.headers)
        if request.method == .OPTIONS {
            return .init(
                status: 204,
                headers: endpoint.preflightHeaders(for: request.headers),
                body: ByteBuffer(),
                written: nil
            )
        }
        if let body = request.body, body.readableBytes > endpoint.configuration.maxPayload {
            return self.payloadTooLarge(uri: request.uri, headers: request.headers)
        }
        if request.method == .POST, let sid = target.query["sid"], endpoint.validatePollingQuery(target.query) == nil {
            endpoint.postStarted(sid: sid)
        }
        let eventLoop = self.eventLoopGroup.next()
        let parkedSID = request.method == .GET ? target.query["sid"] : nil
        let answer = NIOLockedValueBox<CheckedContinuation<(PollingReply, PollingRequestHandle.Written?), Never>?>(nil)
        let handle = PollingRequestHandle { _, reply, written in
            answer.withLockedValue { continuation in
                defer { continuation = nil }
                return continuation
            }?.resume(returning: (reply, written))
        }
        let (reply, written) = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                answer.withLockedValue { $0 = continuation }
                // On the loop a new session gets, as our listener calls it on the connection's loop.
                eventLoop.execute {
                    endpoint.handlePolling(
                        method: request.method,
                        query: target.query,
                        request: EngineIOHandshakeRequest(
                            uri: request.uri,
                            path: target.path,
                            query: target.query,
                            headers: request.headers,
                            remoteAddress: request.remoteAddress
                        ),
                        body: request.body,
                        eventLoop: eventLoop,
                        handle: handle
                    )
                }
            }
        } onCancel: {
            // The framework gave up on the request (its connection closed): a parked GET is aborted, as on our
            // own listener, and the request is answered so the route returns.
            if let parkedSID { endpoint.pollingConnectionClosed(sid: parkedSID, handle: handle) }
            handle.reply(.error(.badRequest))
        }
        switch reply {
        case .ok:
            return .init(
                status: 200,
                headers: cors + [("Content-Type", "text/html")],
                body: ByteBuffer(string: "ok"),
                written: written
            )
        case .payload(let body):
            // httpCompression, as on our own listener: the framework writes the body it is given.
            let compression =
                request.method == .GET ? endpoint.configuration.httpCompression?.forRequest(request.headers) : nil
            let (sent, encoding) = compression?.encode(body) ?? (body, [])
            return .init(
                status: 200,
                headers: cors + [("Content-Type", "text/plain; charset=UTF-8")] + encoding,
                body: sent,
                written: written
            )
        case .error(let error):
            return .init(
                status: error.status.rawValue,
                headers: cors + [("Content-Type", "application/json")],
                body: EngineIOHTTPHandler.errorBody(error, allocator: ByteBufferAllocator()),
                written: written
            )
        }
    }

    /// The answer to a request whose body is larger than ``maxPayload``; its session (if any) is closed.
    package func payloadTooLarge(uri: String, headers: HTTPHeaders) -> EngineIOExternalResponse {
        self.endpoint.payloadTooLarge(query: RequestTarget(uri: uri).query)
        return .init(
            status: 413,
            headers: self.endpoint.corsHeaders(for: headers) + [("Content-Type", "application/json")],
            body: EngineIOHTTPHandler.errorBody(.payloadTooLarge, allocator: ByteBufferAllocator()),
            written: nil
        )
    }

    // MARK: WebSocket

    /// Checks a WebSocket upgrade request; nil when acceptable, else the Engine.IO error to answer with.
    package func validateWebSocket(uri: String, headers: HTTPHeaders) -> EngineIOExternalResponse? {
        let target = RequestTarget(uri: uri)
        guard let error = self.endpoint.validateWebSocketRequest(query: target.query, headers: headers) else {
            return nil
        }
        var responseHeaders = [("Content-Type", "application/json")]
        if error.status == .upgradeRequired { responseHeaders.append(("Sec-WebSocket-Version", "13")) }
        return .init(
            status: error.status.rawValue,
            headers: responseHeaders,
            body: EngineIOHTTPHandler.errorBody(error, allocator: ByteBufferAllocator()),
            written: nil
        )
    }

    /// Prepares the WebSocket of an accepted upgrade request, before the framework answers it with 101. With a
    /// `sid` (an upgrade from long-polling) the WebSocket is attached to its session now, so the session knows of
    /// the upgrade before the client can send anything on either transport.
    /// - Returns: The connection to run with ``EngineIOExternalWebSocket/run(inbound:write:)``; nil when the
    ///   request's session is gone (refuse the upgrade).
    package func acceptWebSocket(
        uri: String,
        headers: HTTPHeaders,
        remoteAddress: SocketAddress?
    ) async -> EngineIOExternalWebSocket? {
        let target = RequestTarget(uri: uri)
        let request = EngineIOHandshakeRequest(
            uri: uri,
            path: target.path,
            query: target.query,
            headers: headers,
            remoteAddress: remoteAddress
        )
        guard let sid = target.query["sid"] else {
            return EngineIOExternalWebSocket(
                endpoint: self.endpoint,
                request: request,
                joining: nil,
                eventLoop: self.eventLoopGroup.next()
            )
        }
        guard let session = self.endpoint.session(id: sid) else { return nil }
        let connection = EngineIOExternalWebSocket(
            endpoint: self.endpoint,
            request: request,
            joining: session,
            eventLoop: session.eventLoop
        )
        try? await session.eventLoop.submit { session.webSocketAttached(connection) }.get()
        return connection
    }
}

/// A WebSocket carried by a framework's WebSocket support: whole frames in (the framework answers pings and closes,
/// and unmasks), Engine.IO frames and the close out.
///
/// The framework's handler calls ``run(inbound:write:)`` once; it returns when either side has closed.
package final class EngineIOExternalWebSocket: EngineIOWebSocketConnection, @unchecked Sendable {
    /// What the framework writes.
    package enum Output: Sendable {
        /// Text and binary messages (final, unmasked frames), in order: everything one write of the session
        /// handed over (what it had queued in one event-loop tick). Write them together and flush once.
        case messages([WebSocketFrame])
        /// A close frame with this code and reason; nothing follows it.
        case close(code: UInt16, reason: String)
    }

    private struct State {
        var continuation: AsyncStream<(Output, EventLoopPromise<Void>?)>.Continuation?
        var closeSent = false
        /// The close for a connection failed because of what the peer sent.
        var failure: WebSocketClose?
        /// Bytes queued for the framework and not yet written by it.
        var unsent = 0
        /// Whether the session was told the peer does not read (once).
        var reportedUnwritable = false
        /// `run`'s `closing`, until it is called (once).
        var closing: (@Sendable () -> Void)?
    }

    private let endpoint: EngineIOEndpoint
    private let request: EngineIOHandshakeRequest
    /// The session: the polling one it upgrades, or the one `run` opens.
    private let session = NIOLockedValueBox<EngineIOSession?>(nil)
    private let joining: Bool
    private let eventLoop: any EventLoop
    private let state = NIOLockedValueBox(State())
    private let outputs: AsyncStream<(Output, EventLoopPromise<Void>?)>
    /// Touched only by `run`'s inbound loop.
    private var assembler: WebSocketMessageAssembler

    init(
        endpoint: EngineIOEndpoint,
        request: EngineIOHandshakeRequest,
        joining: EngineIOSession?,
        eventLoop: any EventLoop
    ) {
        self.endpoint = endpoint
        self.request = request
        self.joining = joining != nil
        self.session.withLockedValue { $0 = joining }
        self.eventLoop = eventLoop
        self.assembler = WebSocketMessageAssembler(
            maxMessageSize: max(endpoint.configuration.maxPayload, 1),
            requiresMask: false
        )
        let (stream, continuation) = AsyncStream<(Output, EventLoopPromise<Void>?)>.makeStream()
        self.outputs = stream
        self.state.withLockedValue { $0.continuation = continuation }
    }

    /// How long the close of this connection may take before the framework resets it (``run(inbound:write:closing:)``):
    /// `webSocketCloseTimeout`, as on our own listener.
    package var closeTimeout: Duration { self.endpoint.configuration.webSocketCloseTimeout }

    /// Counts and logs (rate-limited) a reset of this connection: the peer did not take the close frame (`why` is
    /// `unwritable` or `close timeout`, as on our own listener).
    package func forcedClose(why: String, remoteAddress: SocketAddress?) {
        self.endpoint.webSocketForcedClose(why: why, remoteAddress: remoteAddress)
    }

    /// Carries the session's traffic until either side closes: opens the session (a new WebSocket) or joins the
    /// polling one, hands every frame of `inbound` to it and writes what it sends through `write`.
    /// - Parameters:
    ///   - inbound: The client's text, binary and continuation frames, unmasked.
    ///   - write: Writes a batch of messages or the close; throwing ends the connection. The bytes of a batch
    ///     count as unsent (``isWritable``, the session's outbound budget) until it returns.
    ///   - closing: Called once, at once, from any thread, when the session ends the connection. Its close frame
    ///     goes to `write` after every batch before it, so it never comes while a peer that does not read holds
    ///     `write` up: the framework must bound the close here, as our own listener does (reset the connection at
    ///     once when its peer does not take what is written, else when it is still open ``closeTimeout`` later).
    package func run<Inbound: AsyncSequence>(
        inbound: Inbound,
        write: @escaping @Sendable (Output) async throws -> Void,
        closing: @escaping @Sendable () -> Void
    ) async where Inbound.Element == WebSocketFrame {
        // The session may have closed the connection already (an upgrade's session, before `run`).
        let closedAlready = self.state.withLockedValue { state -> Bool in
            if !state.closeSent { state.closing = closing }
            return state.closeSent
        }
        if closedAlready { closing() }
        if !self.joining {
            let session = try? await self.eventLoop.submit {
                self.endpoint.openWebSocketSession(connection: self, request: self.request, eventLoop: self.eventLoop)
            }.get()
            guard let session else { return }
            self.session.withLockedValue { $0 = session }
        }
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await (output, promise) in self.outputs {
                    var bytes = 0
                    if case .messages(let frames) = output {
                        for frame in frames { bytes += frame.data.readableBytes }
                    }
                    do {
                        try await write(output)
                        promise?.succeed()
                    } catch {
                        promise?.succeed()
                        self.finishOutputs()
                    }
                    self.state.withLockedValue { $0.unsent -= bytes }
                    if case .close = output { break }
                }
            }
            do {
                for try await frame in inbound {
                    guard self.received(frame) else { break }
                }
            } catch {
                self.endpoint.logger.debug("websocket error", metadata: ["error": "\(error)"])
            }
            // The peer closed (or the framework ended the connection): the session hears it, and the writer stops.
            if let session = self.session.withLockedValue({ $0 }) {
                session.eventLoop.execute { session.webSocketClosed(self) }
            }
            self.finishOutputs()
        }
    }

    private func finishOutputs() {
        self.state.withLockedValue { state in
            defer { state.continuation = nil }
            return state.continuation
        }?.finish()
    }

    /// Handles one inbound frame; false once the connection is failed.
    private func received(_ frame: WebSocketFrame) -> Bool {
        if self.state.withLockedValue({ $0.closeSent }) { return false }
        switch self.assembler.receive(frame) {
        case .success(.none), .success(.control):
            return true
        case .success(.message(let opcode, let payload, _)):
            // Never compressed: no extension is agreed on a framework's WebSocket (the assembler refuses RSV1).
            return self.received(payload, isBinary: opcode == .binary)
        case .failure(let violation):
            self.fail(
                violation,
                excerpt: nil,
                reason: violation.close.code == 1009 ? .payloadTooLarge : .transportError
            )
            return false
        }
    }

    private func received(_ payload: ByteBuffer, isBinary: Bool) -> Bool {
        guard let session = self.session.withLockedValue({ $0 }) else { return false }
        if !isBinary, let violation = WebSocketProtocolRules.checkText(payload) {
            self.fail(violation, excerpt: payload, reason: .parseError)
            return false
        }
        let decoded: Result<EngineIOPacket, EngineIOCodecError>
        do {
            decoded = .success(try EngineIOPacket.decode(webSocketFrame: payload, isBinary: isBinary))
        } catch {
            let close = WebSocketProtocolRules.close(for: .parseError)
            self.state.withLockedValue { $0.failure = close }
            self.endpoint.webSocketProtocolError(
                WebSocketProtocolViolation(close: close, detail: "\(error)"),
                sessionID: session.id,
                excerpt: payload
            )
            decoded = .failure(error)
        }
        session.eventLoop.execute { session.webSocketReceived(decoded, from: self) }
        return true
    }

    private func fail(_ violation: WebSocketProtocolViolation, excerpt: ByteBuffer?, reason: EngineIOCloseReason) {
        let session = self.session.withLockedValue { $0 }
        self.endpoint.webSocketProtocolError(violation, sessionID: session?.id, excerpt: excerpt)
        self.state.withLockedValue { $0.failure = violation.close }
        if let session {
            session.eventLoop.execute { session.webSocketFailed(self, reason: reason) }
        }
        self.sendClose(violation.close)
    }

    // MARK: EngineIOWebSocketConnection

    func write(_ buffers: [ByteBuffer], promise: EventLoopPromise<Void>?) {
        var messages: [(WebSocketOpcode, ByteBuffer)] = []
        for buffer in buffers { WebSocketFrameBytes.split(buffer, into: &messages) }
        var frames: [WebSocketFrame] = []
        frames.reserveCapacity(messages.count)
        var bytes = 0
        for (opcode, payload) in messages {
            frames.append(WebSocketFrame(fin: true, opcode: opcode, data: payload))
            bytes += payload.readableBytes
        }
        let limit = self.endpoint.configuration.maxBufferedBytesPerSession
        let overLimit = self.state.withLockedValue { state -> Bool in
            guard let continuation = state.continuation, !state.closeSent, !frames.isEmpty else {
                promise?.succeed()
                return false
            }
            // One batch, so the framework can write the frames with one hop and one flush.
            state.unsent += bytes
            continuation.yield((.messages(frames), promise))
            guard state.unsent > limit, !state.reportedUnwritable else { return false }
            state.reportedUnwritable = true
            return true
        }
        if overLimit, let session = self.session.withLockedValue({ $0 }) {
            // Backpressure instead of buffering: the session closes a main WebSocket whose peer does not read.
            session.eventLoop.execute { session.webSocketUnwritable(self) }
        }
    }

    func close(reason: EngineIOCloseReason?) {
        let failure = self.state.withLockedValue { $0.failure }
        self.sendClose(failure ?? reason.map(WebSocketProtocolRules.close(for:)) ?? .normal)
    }

    private func sendClose(_ close: WebSocketClose) {
        let closing = self.state.withLockedValue { state -> (@Sendable () -> Void)? in
            guard !state.closeSent, let continuation = state.continuation else { return nil }
            state.closeSent = true
            continuation.yield((.close(code: close.code, reason: close.reason), nil))
            continuation.finish()
            state.continuation = nil
            defer { state.closing = nil }
            return state.closing
        }
        closing?()
    }

    func unsentBytes(on eventLoop: any EventLoop) -> Int {
        self.state.withLockedValue { $0.unsent }
    }

    /// The framework's writer has taken everything handed to it so far.
    var isWritable: Bool {
        self.state.withLockedValue { $0.unsent == 0 }
    }
}

extension WebSocketFrameBytes {
    /// Splits frames that ``WebSocketFrameBytes`` built (unmasked, unfragmented, one after another) into their
    /// opcodes and payloads, without copying the payloads.
    static func split(_ frames: ByteBuffer, into messages: inout [(WebSocketOpcode, ByteBuffer)]) {
        var frames = frames
        while let first = frames.readInteger(as: UInt8.self), let second = frames.readInteger(as: UInt8.self) {
            let length: Int
            switch second & 0x7F {
            case 126: length = Int(frames.readInteger(as: UInt16.self) ?? 0)
            case 127: length = Int(frames.readInteger(as: UInt64.self) ?? 0)
            default: length = Int(second & 0x7F)
            }
            guard let payload = frames.readSlice(length: length) else { return }
            messages.append((first & 0x0F == Opcode.binary.rawValue ? .binary : .text, payload))
        }
    }
}
