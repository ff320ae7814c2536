import Logging
import NIOCore
import NIOWebSocket
import SocketGatewayCore

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// One WebSocket connection as the session sees it: writes pre-encoded frame bytes, closes. Whether NIO handlers
/// of our own listener carry its bytes (``ChannelWebSocketConnection``) or a framework's WebSocket support does
/// (``EngineIOExternalWebSocket``), the session cannot tell.
protocol EngineIOWebSocketConnection: AnyObject, Sendable {
    /// Writes complete frames (already framed bytes, as ``WebSocketFrameBytes`` builds them) and flushes once.
    /// - Parameter promise: completed when the last buffer has been written (or dropped).
    func write(_ buffers: [ByteBuffer], promise: EventLoopPromise<Void>?)
    /// Sends a close frame and ends the connection; only the first call does anything.
    /// - Parameter reason: why the session ended (nil: normal closure).
    func close(reason: EngineIOCloseReason?)
    /// The bytes written and not yet taken by the peer, when they can be read on `eventLoop` (else 0).
    func unsentBytes(on eventLoop: any EventLoop) -> Int
    /// Whether a message written now goes out without waiting behind earlier ones (volatile emits ask).
    var isWritable: Bool { get }
    /// The permessage-deflate agreement of this connection, if any.
    var deflate: WebSocketDeflateAgreement? { get }
    /// `frames` as this connection sends them: compressed when it agreed to permessage-deflate.
    func outgoing(_ frames: ByteBuffer) -> ByteBuffer
}

extension EngineIOWebSocketConnection {
    /// A framework's WebSocket negotiates its own extensions: none is agreed by us.
    var deflate: WebSocketDeflateAgreement? { nil }

    func outgoing(_ frames: ByteBuffer) -> ByteBuffer { frames }

    func write(_ buffers: [ByteBuffer]) {
        self.write(buffers, promise: nil)
    }

    func close() {
        self.close(reason: nil)
    }
}

/// One WebSocket connection of our own listener: writes pre-encoded frame bytes next to the pipeline's head.
///
/// Thread-safe: calls from other event loops hop to the channel's loop once per batch.
final class ChannelWebSocketConnection: EngineIOWebSocketConnection, @unchecked Sendable {
    let channel: any Channel
    private let endpoint: EngineIOEndpoint
    /// The context of `WebSocketRawFrameWriter`, next to the head of the pipeline; touched on the channel's loop.
    fileprivate var rawContext: ChannelHandlerContext?
    /// Whether `WebSocketRawFrameWriter` was ever added (channel loop only).
    private var rawWriterInstalled = false
    /// `close()` was called before the WebSocket handshake finished (channel loop only).
    private var closeWhenReady: WebSocketClose?
    /// Set once a close frame has been written (channel loop only): nothing is written after it.
    private(set) var closeSent = false
    /// The close for a connection failed because of what the peer sent (1009, 1002, 1007); set on the channel's
    /// loop before the session is told, so the session's own close sends it.
    var failure: WebSocketClose?
    /// permessage-deflate as agreed in the upgrade (nil: not offered, or off): the session compresses what it
    /// sends, the handler inflates what it receives.
    let deflate: WebSocketDeflateAgreement?

    init(channel: any Channel, endpoint: EngineIOEndpoint, deflate: WebSocketDeflateAgreement? = nil) {
        self.channel = channel
        self.endpoint = endpoint
        self.deflate = deflate
    }

    /// `frames` as this connection sends them: compressed where the agreement says so (``EngineIOOutboundMessage``
    /// caches its compressed frames, so a broadcast is compressed once, not once per client).
    func outgoing(_ frames: ByteBuffer) -> ByteBuffer {
        guard let deflate = self.deflate else { return frames }
        return WebSocketDeflateFrames.compress(frames, threshold: deflate.threshold)
    }

    /// Writes complete frames (already framed bytes) and flushes once.
    /// - Parameter promise: completed when the last buffer has been written to the socket (or dropped).
    func write(_ buffers: [ByteBuffer], promise: EventLoopPromise<Void>?) {
        guard !buffers.isEmpty else {
            promise?.succeed()
            return
        }
        if self.channel.eventLoop.inEventLoop {
            self.writeNow(buffers, promise: promise)
        } else {
            self.channel.eventLoop.execute { self.writeNow(buffers, promise: promise) }
        }
    }

    private func writeNow(_ buffers: [ByteBuffer], promise: EventLoopPromise<Void>?) {
        // No data frame may follow a close frame (RFC 6455 §5.5.1).
        guard let context = self.rawContext, !self.closeSent else {
            promise?.succeed()
            return
        }
        for (index, buffer) in buffers.enumerated() {
            context.write(NIOAny(buffer), promise: index == buffers.count - 1 ? promise : nil)
        }
        context.flush()
    }

    fileprivate func rawWriterAdded(_ context: ChannelHandlerContext) {
        self.rawContext = context
        self.rawWriterInstalled = true
        if let close = self.closeWhenReady {
            // Let the upgrade finish (the 101 is already out), then close.
            context.eventLoop.execute { self.closeNow(close) }
        }
    }

    /// Sends a close frame and closes the connection. Only the first call sends a frame; it carries `failure`
    /// when a protocol error set one (on the channel's loop), else the code for `reason`.
    /// - Parameter reason: why the session ended (nil: normal closure).
    var isWritable: Bool {
        self.channel.isWritable
    }

    func unsentBytes(on eventLoop: any EventLoop) -> Int {
        guard self.channel.eventLoop === eventLoop else { return 0 }
        return (try? self.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    func close(reason: EngineIOCloseReason?) {
        if self.channel.eventLoop.inEventLoop {
            self.closeNow(self.failure ?? reason.map(WebSocketProtocolRules.close(for:)) ?? .normal)
        } else {
            self.channel.eventLoop.execute {
                self.closeNow(self.failure ?? reason.map(WebSocketProtocolRules.close(for:)) ?? .normal)
            }
        }
    }

    /// Sends `close` (ours, or the answer to the peer's close), then ends the TCP connection.
    ///
    /// Once the frame is written the server half-closes (FIN after the frame, RFC 6455 §7.1.1: the server closes
    /// first) and the peer, having read it, closes its side, which closes the channel. The close is bounded: if the
    /// frame cannot be flushed now (the channel is over its write buffer limit: the peer does not read) the
    /// connection is reset at once; if the channel is still open `webSocketCloseTimeout` later (the frame or the
    /// FIN is stuck behind data the peer does not read, or the peer does not close), it is reset then.
    /// Call on the channel's loop.
    func closeNow(_ close: WebSocketClose) {
        self.channel.eventLoop.assertInEventLoop()
        guard !self.closeSent else { return }
        guard self.rawWriterInstalled else {
            // Still in the HTTP upgrade: complete the handshake first, then close.
            self.closeWhenReady = self.closeWhenReady ?? close
            return
        }
        guard let context = self.rawContext else {
            self.channel.close(promise: nil)
            return
        }
        self.closeSent = true
        let channel = self.channel
        guard channel.isWritable else {
            self.abort(why: "unwritable")
            return
        }
        let endpoint = self.endpoint
        let timeout = TimeAmount(endpoint.configuration.webSocketCloseTimeout)
        let timer = channel.eventLoop.scheduleTask(in: timeout) { [self] in
            guard channel.isActive else { return }
            self.abort(why: "close timeout")
        }
        channel.closeFuture.whenComplete { _ in timer.cancel() }
        context.writeAndFlush(NIOAny(close.frameBytes)).whenComplete { result in
            guard case .success = result else {
                channel.close(promise: nil)
                return
            }
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
        }
    }

    /// Resets the connection (SO_LINGER 0): the kernel drops what the peer did not read instead of keeping it for
    /// a peer that may never read it.
    private func abort(why: String) {
        self.endpoint.webSocketForcedClose(why: why, remoteAddress: self.channel.remoteAddress)
        self.channel.resetConnection()
    }
}

extension Channel {
    /// Resets the TCP connection (SO_LINGER 0, then close): the kernel drops what the peer did not read instead of
    /// keeping it for a peer that may never read it. A channel without socket options is just closed.
    package func resetConnection() {
        guard let provider = self as? any SocketOptionProvider else {
            self.close(promise: nil)
            return
        }
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
            self.close(promise: nil)
        }
    }
}

/// Sits next to the pipeline's head so pre-encoded frame bytes skip `WebSocketFrameEncoder` (one encode per
/// outbound message, however many recipients). Other outbound bytes pass through unchanged.
final class WebSocketRawFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connection: ChannelWebSocketConnection

    init(connection: ChannelWebSocketConnection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.connection.rawWriterAdded(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.connection.rawContext = nil
    }
}

/// Turns WebSocket frames into Engine.IO packets for one session (new, or joining by sid for an upgrade).
///
/// Frames come straight from NIO's decoder: a ``WebSocketMessageAssembler`` checks them and joins fragments, and
/// the handler runs what it returns (deliver a message, answer a close or a ping, fail the connection).
final class EngineIOWebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let endpoint: EngineIOEndpoint
    private let connection: ChannelWebSocketConnection
    /// The polling session this WebSocket upgrades (already attached in `shouldUpgrade`), or nil for a new session.
    private let joining: EngineIOSession?
    private let request: EngineIOHandshakeRequest
    private var session: EngineIOSession?
    private var assembler: WebSocketMessageAssembler
    /// Created on the first compressed message, freed with the handler (event-loop confined).
    private var inflater: WebSocketInflater?

    init(
        endpoint: EngineIOEndpoint,
        connection: ChannelWebSocketConnection,
        joining: EngineIOSession?,
        request: EngineIOHandshakeRequest
    ) {
        self.endpoint = endpoint
        self.connection = connection
        self.joining = joining
        self.request = request
        self.assembler = WebSocketMessageAssembler(
            maxMessageSize: max(endpoint.configuration.maxPayload, 1),
            compressionAgreed: connection.deflate != nil
        )
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.inflater = nil
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let connection = self.connection
        if let session = self.joining {
            self.session = session
        } else {
            self.session = self.endpoint.openWebSocketSession(
                connection: connection,
                request: self.request,
                eventLoop: context.eventLoop
            )
        }
    }

    private static func onLoop(of session: EngineIOSession, _ body: @escaping @Sendable () -> Void) {
        if session.eventLoop.inEventLoop {
            body()
        } else {
            session.eventLoop.execute(body)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Once a close frame is out, what the peer still sends is of no use (and may be a flood).
        guard !self.connection.closeSent else { return }
        switch self.assembler.receive(self.unwrapInboundIn(data)) {
        case .success(.none):
            break
        case .success(.message(let opcode, let payload, compressed: false)):
            self.received(payload, isBinary: opcode == .binary)
        case .success(.message(let opcode, let payload, compressed: true)):
            guard let inflated = self.inflate(payload) else { return }
            self.received(inflated, isBinary: opcode == .binary)
        case .success(.control(let frame)):
            self.received(control: frame, context: context)
        case .failure(let violation):
            self.fail(
                violation,
                excerpt: nil,
                sessionReason: violation.close.code == 1009 ? .payloadTooLarge : .transportError
            )
        }
    }

    /// Inflates a compressed message, capped at the endpoint's `maxPayload`: past it (a zip bomb) the connection
    /// fails with 1009, corrupt data with 1007. Nil when it failed.
    private func inflate(_ payload: ByteBuffer) -> ByteBuffer? {
        if self.inflater == nil { self.inflater = WebSocketInflater() }
        let limit = self.assembler.maxMessageSize
        let result = self.inflater.map { $0.inflate(payload, limit: limit) } ?? .failure(.corrupt)
        switch result {
        case .success(let inflated):
            return inflated
        case .failure(.tooLarge):
            self.fail(
                .init(
                    close: .init(code: 1009, reason: "message too large"),
                    detail: "compressed message of \(payload.readableBytes) bytes inflates past \(limit)"
                ),
                excerpt: nil,
                sessionReason: .payloadTooLarge
            )
        case .failure(.corrupt):
            self.fail(
                .init(close: .init(code: 1007, reason: "invalid compressed data"), detail: "inflate failed"),
                excerpt: nil,
                sessionReason: .parseError
            )
        }
        return nil
    }

    private func received(_ payload: ByteBuffer, isBinary: Bool) {
        guard let session = self.session else { return }
        if !isBinary, let violation = WebSocketProtocolRules.checkText(payload) {
            self.fail(violation, excerpt: payload, sessionReason: .parseError)
            return
        }
        let decoded: Result<EngineIOPacket, EngineIOCodecError>
        do {
            decoded = .success(try EngineIOPacket.decode(webSocketFrame: payload, isBinary: isBinary))
        } catch {
            // The session ends (parse error); its close frame carries the matching code.
            let close = WebSocketProtocolRules.close(for: .parseError)
            self.connection.failure = close
            self.endpoint.webSocketProtocolError(
                WebSocketProtocolViolation(close: close, detail: "\(error)"),
                sessionID: session.id,
                excerpt: payload
            )
            decoded = .failure(error)
        }
        let connection = self.connection
        Self.onLoop(of: session) { session.webSocketReceived(decoded, from: connection) }
    }

    private func received(control frame: WebSocketFrame, context: ChannelHandlerContext) {
        switch frame.opcode {
        case .connectionClose:
            switch WebSocketProtocolRules.reply(toClosePayload: frame.unmaskedData) {
            case .success(let reply):
                // The channel's close tells the session (transport close).
                self.connection.closeNow(reply)
            case .failure(let violation):
                self.fail(violation, excerpt: frame.unmaskedData, sessionReason: .transportError)
            }
        case .ping:
            // A peer that does not read gets no more pongs: RFC 6455 §5.5.3 lets us answer only the latest ping,
            // and unwritable means the ones before are not read either.
            guard context.channel.isWritable else { return }
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(pong), promise: nil)
        default:
            break  // pong
        }
    }

    /// Fails the connection for what the peer sent: the close frame says why, the session ends, and the endpoint
    /// counts and logs it (rate-limited).
    private func fail(_ violation: WebSocketProtocolViolation, excerpt: ByteBuffer?, sessionReason: EngineIOCloseReason)
    {
        guard !self.connection.closeSent else { return }
        self.endpoint.webSocketProtocolError(violation, sessionID: self.session?.id, excerpt: excerpt)
        self.connection.failure = violation.close
        // The session first (its close sends `failure`), so it has ended by the time the peer sees the close.
        if let session = self.session {
            let connection = self.connection
            Self.onLoop(of: session) { session.webSocketFailed(connection, reason: sessionReason) }
        }
        self.connection.closeNow(violation.close)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let session = self.session {
            let connection = self.connection
            Self.onLoop(of: session) { session.webSocketClosed(connection) }
        }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        // Backpressure instead of buffering: read nothing more from a peer that does not take what we send.
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: writable)
        if !writable, let session = self.session {
            let connection = self.connection
            Self.onLoop(of: session) { session.webSocketUnwritable(connection) }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Tell the peer why (what NIO's automatic error handling does, without one more handler per connection):
        // 1009 for a frame over the limit, 1002 for a fragmented or long control frame (NIO's decoder's errors).
        let violation: WebSocketProtocolViolation
        let reason: EngineIOCloseReason
        switch error {
        case NIOWebSocketError.invalidFrameLength:
            violation = .init(close: WebSocketProtocolRules.close(for: .payloadTooLarge), detail: "\(error)")
            reason = .payloadTooLarge
        case is NIOWebSocketError:
            violation = .init(close: .init(code: 1002, reason: "protocol error"), detail: "\(error)")
            reason = .transportError
        default:
            self.endpoint.logger.debug("websocket error", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        self.fail(violation, excerpt: nil, sessionReason: reason)
    }
}
