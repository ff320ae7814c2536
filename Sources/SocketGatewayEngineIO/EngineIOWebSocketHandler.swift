import Logging
import NIOCore
import NIOWebSocket
import SocketGatewayCore

/// One WebSocket connection as the session sees it: writes pre-encoded frame bytes, closes.
///
/// Thread-safe: calls from other event loops hop to the channel's loop once per batch.
final class EngineIOWebSocketConnection: @unchecked Sendable {
    let channel: any Channel
    /// The context of `WebSocketRawFrameWriter`, next to the head of the pipeline; touched on the channel's loop.
    fileprivate var rawContext: ChannelHandlerContext?
    /// Whether `WebSocketRawFrameWriter` was ever added (channel loop only).
    private var rawWriterInstalled = false
    /// `close()` was called before the WebSocket handshake finished (channel loop only).
    private var closeWhenReady = false
    /// Set once a close frame has been written.
    private var closeSent = false
    /// The close code for a connection closed because of what the peer sent (1009, 1002); set on the channel's
    /// loop before the session is told, so the session's own close sends it.
    var failureCode: WebSocketErrorCode?

    init(channel: any Channel) {
        self.channel = channel
    }

    /// Writes complete frames (already framed bytes) and flushes once.
    /// - Parameter promise: completed when the last buffer has been written to the socket (or dropped).
    func write(_ buffers: [ByteBuffer], promise: EventLoopPromise<Void>? = nil) {
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
        guard let context = self.rawContext else {
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
        if self.closeWhenReady {
            // Let the upgrade finish (the 101 is already out), then close.
            context.eventLoop.execute { self.closeNow() }
        }
    }

    /// Sends a close frame and closes the connection. Only the first call sends a frame; it carries
    /// `failureCode` when a protocol error set one (on the channel's loop), else normal closure.
    func close() {
        if self.channel.eventLoop.inEventLoop {
            self.closeNow()
        } else {
            self.channel.eventLoop.execute { self.closeNow() }
        }
    }

    private func closeNow() {
        guard !self.closeSent else { return }
        let code = self.failureCode ?? .normalClosure
        guard self.rawWriterInstalled else {
            // Still in the HTTP upgrade: complete the handshake first, then close.
            self.closeWhenReady = true
            return
        }
        guard let context = self.rawContext else {
            self.channel.close(promise: nil)
            return
        }
        self.closeSent = true
        var closeFrame = ByteBuffer(bytes: [0x88, 0x02])
        closeFrame.write(webSocketErrorCode: code)
        let channel = self.channel
        context.writeAndFlush(NIOAny(closeFrame)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

/// Sits next to the pipeline's head so pre-encoded frame bytes skip `WebSocketFrameEncoder` (one encode per
/// outbound message, however many recipients). Other outbound bytes pass through unchanged.
final class WebSocketRawFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connection: EngineIOWebSocketConnection

    init(connection: EngineIOWebSocketConnection) {
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
final class EngineIOWebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let endpoint: EngineIOEndpoint
    private let connection: EngineIOWebSocketConnection
    /// The polling session this WebSocket upgrades (already attached in `shouldUpgrade`), or nil for a new session.
    private let joining: EngineIOSession?
    private let request: EngineIOHandshakeRequest
    private var session: EngineIOSession?

    init(
        endpoint: EngineIOEndpoint,
        connection: EngineIOWebSocketConnection,
        joining: EngineIOSession?,
        request: EngineIOHandshakeRequest
    ) {
        self.endpoint = endpoint
        self.connection = connection
        self.joining = joining
        self.request = request
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
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            guard let session = self.session else { return }
            let payload = frame.unmaskedData
            let decoded: Result<EngineIOPacket, EngineIOCodecError>
            if payload.readableBytes > self.endpoint.configuration.maxPayload {
                self.connection.failureCode = .messageTooLarge  // the session's close tells the peer why (1009)
                decoded = .failure(
                    EngineIOCodecError(
                        code: .payloadTooLarge,
                        context: "WebSocket frame of \(payload.readableBytes) bytes, maxPayload \(self.endpoint.configuration.maxPayload)"
                    )
                )
            } else {
                do {
                    decoded = .success(try EngineIOPacket.decode(webSocketFrame: payload, isBinary: frame.opcode == .binary))
                } catch {
                    decoded = .failure(error)
                }
            }
            let connection = self.connection
            Self.onLoop(of: session) { session.webSocketReceived(decoded, from: connection) }
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self) ?? 1000
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.writeInteger(code == 1005 ? 1000 : code)
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)))
                .whenComplete { _ in channel.close(promise: nil) }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(pong), promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let session = self.session {
            let connection = self.connection
            Self.onLoop(of: session) { session.webSocketClosed(connection) }
        }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable, let session = self.session {
            let connection = self.connection
            Self.onLoop(of: session) { session.webSocketUnwritable(connection) }
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.endpoint.logger.debug("websocket error", metadata: ["error": "\(error)"])
        // Tell the peer why (what NIO's automatic error handling does, without one more handler per connection):
        // 1009 for a frame or message over the limit, 1002 for a broken frame sequence. The session's close
        // (or ours, below) sends it.
        let code: WebSocketErrorCode?
        switch error {
        case NIOWebSocketError.invalidFrameLength, NIOWebSocketFrameAggregator.Error.accumulatedFrameSizeIsTooLarge:
            code = .messageTooLarge
        case is NIOWebSocketError, is NIOWebSocketFrameAggregator.Error:
            code = .protocolError
        default:
            code = nil
        }
        self.connection.failureCode = code
        if let session = self.session {
            // A frame over maxPayload (NIO's decoder or the aggregator) ends the session with a precise reason.
            let reason: EngineIOCloseReason = code == .messageTooLarge ? .payloadTooLarge : .transportError
            let connection = self.connection
            Self.onLoop(of: session) { session.webSocketFailed(connection, reason: reason) }
        }
        if code != nil {
            self.connection.close()  // a no-op if the session closed it already
        } else {
            context.close(promise: nil)
        }
    }
}
