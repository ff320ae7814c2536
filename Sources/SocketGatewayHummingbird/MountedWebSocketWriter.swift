import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import SocketGatewayEngineIO

/// Writes a mounted WebSocket's batches of Engine.IO frames straight onto its Hummingbird channel: one hop to the
/// channel's event loop and one flush per batch, where hummingbird-websocket's outbound writer takes one hop and one
/// flush per frame. The close frame still goes through hummingbird-websocket (its close handshake).
///
/// Its handler sits just after the WebSocket frame encoder, so every frame hummingbird-websocket writes passes it:
/// once a close frame has gone by (ours, or the answer to the peer's close), no data frame follows it.
///
/// It also bounds the connection's close, as our own listener does (`webSocketCloseTimeout`): neither our writer
/// nor hummingbird-websocket's can write a close frame to a peer that does not read (both wait for the channel to
/// be writable), and hummingbird-websocket's close timeout starts only once its frame is written.
struct MountedWebSocketWriter: Sendable {
    /// A batch that can no longer be written: a close frame went out, or the handler left the pipeline.
    struct Closed: Error {}

    /// What the handler tells the writing task, from the channel's loop.
    struct Status {
        /// The channel's writability, as of its last change.
        var writable = true
        /// A close frame went out, or the handler was removed.
        var closed = false
    }

    private let handler: NIOLoopBound<MountedFrameHandler>
    private let eventLoop: any EventLoop
    private let status: NIOLockedValueBox<Status>

    /// Adds the writer to an upgraded WebSocket channel's pipeline; nil when the pipeline has no WebSocket frame
    /// encoder (then write through hummingbird-websocket's outbound writer).
    /// - Parameter connection: The Engine.IO connection the channel carries: its close timeout, and where resets
    ///   are counted.
    static func install(on channel: any Channel, for connection: EngineIOExternalWebSocket) async -> Self? {
        try? await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            let encoder = try pipeline.handler(type: WebSocketFrameEncoder.self)
            let status = NIOLockedValueBox(Status(writable: channel.isWritable))
            let handler = MountedFrameHandler(
                channel: channel,
                status: status,
                closeTimeout: TimeAmount(connection.closeTimeout),
                forcedClose: { why in connection.forcedClose(why: why, remoteAddress: channel.remoteAddress) }
            )
            try pipeline.addHandler(handler, position: .after(encoder))
            return MountedWebSocketWriter(
                handler: NIOLoopBound(handler, eventLoop: channel.eventLoop),
                eventLoop: channel.eventLoop,
                status: status
            )
        }.get()
    }

    /// Writes `frames` in order and flushes once. While the channel is writable it returns at once (as
    /// hummingbird-websocket's writer does); when it is not (its peer does not read), once the last frame has been
    /// written to the socket, so what waits counts as unsent meanwhile.
    func write(_ frames: [WebSocketFrame]) async throws {
        let status = self.status.withLockedValue { $0 }
        if status.closed { throw Closed() }
        let handler = self.handler
        if status.writable {
            self.eventLoop.execute { _ = handler.value.write(frames) }
        } else {
            try await self.eventLoop.flatSubmit { handler.value.write(frames) }.get()
        }
    }

    /// The connection is closing (its session ended it, or the application shuts down): resets it at once if the
    /// channel is unwritable (a close frame would wait behind what the peer does not read), else if it is still
    /// open after the close timeout. Returns at once; from any thread.
    func closing() {
        let handler = self.handler
        self.eventLoop.execute { handler.value.boundClose() }
    }
}

/// The channel handler of ``MountedWebSocketWriter``; touched on the channel's event loop only.
final class MountedFrameHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let channel: any Channel
    private let status: NIOLockedValueBox<MountedWebSocketWriter.Status>
    private let closeTimeout: TimeAmount
    private let forcedClose: @Sendable (String) -> Void
    private var context: ChannelHandlerContext?
    /// A close frame has passed: nothing more is written.
    private var closeSent = false
    /// Resets the connection if it is still open when it fires; armed once the connection starts closing.
    private var closeTimer: Scheduled<Void>?

    init(
        channel: any Channel,
        status: NIOLockedValueBox<MountedWebSocketWriter.Status>,
        closeTimeout: TimeAmount,
        forcedClose: @escaping @Sendable (String) -> Void
    ) {
        self.channel = channel
        self.status = status
        self.closeTimeout = closeTimeout
        self.forcedClose = forcedClose
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.status.withLockedValue { $0.closed = true }
        self.closeTimer?.cancel()
        self.closeTimer = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        self.status.withLockedValue { $0.writable = writable }
        context.fireChannelWritabilityChanged()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if self.unwrapOutboundIn(data).opcode == .connectionClose, !self.closeSent {
            self.closeSent = true
            self.status.withLockedValue { $0.closed = true }
            // Whoever sent it (our session, hummingbird-websocket on shutdown, the answer to the peer's close), the
            // connection must now end within the close timeout.
            self.armCloseTimer()
        }
        context.write(data, promise: promise)
    }

    /// Writes and flushes `frames`: a future that succeeds at once while the channel is writable, else once the
    /// last frame is written.
    func write(_ frames: [WebSocketFrame]) -> EventLoopFuture<Void> {
        guard let context = self.context, !self.closeSent else {
            return self.channel.eventLoop.makeFailedFuture(MountedWebSocketWriter.Closed())
        }
        guard !frames.isEmpty else { return self.channel.eventLoop.makeSucceededVoidFuture() }
        let promise = context.eventLoop.makePromise(of: Void.self)
        for (index, frame) in frames.enumerated() {
            context.write(self.wrapOutboundOut(frame), promise: index == frames.count - 1 ? promise : nil)
        }
        context.flush()
        return context.channel.isWritable ? context.eventLoop.makeSucceededVoidFuture() : promise.futureResult
    }

    /// The connection is closing: resets it now if the channel is unwritable, else arms the close timer.
    func boundClose() {
        guard self.channel.isActive else { return }
        guard self.channel.isWritable else {
            self.reset(why: "unwritable")
            return
        }
        self.armCloseTimer()
    }

    private func armCloseTimer() {
        guard self.closeTimer == nil, self.channel.isActive else { return }
        let channel = self.channel
        let forcedClose = self.forcedClose
        self.closeTimer = channel.eventLoop.scheduleTask(in: self.closeTimeout) {
            guard channel.isActive else { return }
            forcedClose("close timeout")
            channel.resetConnection()
        }
    }

    private func reset(why: String) {
        self.closeTimer?.cancel()
        self.forcedClose(why)
        self.channel.resetConnection()
    }
}
