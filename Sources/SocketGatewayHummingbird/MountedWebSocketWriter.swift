import NIOCore
import NIOWebSocket

/// Writes a mounted WebSocket's batches of Engine.IO frames straight onto its Hummingbird channel: one hop to the
/// channel's event loop and one flush per batch, where hummingbird-websocket's outbound writer takes one hop and one
/// flush per frame. The close frame still goes through hummingbird-websocket (its close handshake).
///
/// Its handler sits just after the WebSocket frame encoder, so every frame hummingbird-websocket writes passes it:
/// once a close frame has gone by (ours, or the answer to the peer's close), no data frame follows it.
struct MountedWebSocketWriter: Sendable {
    /// A batch that can no longer be written: a close frame went out, or the handler left the pipeline.
    struct Closed: Error {}

    private let handler: NIOLoopBound<MountedFrameHandler>
    private let eventLoop: any EventLoop

    /// Adds the writer to an upgraded WebSocket channel's pipeline; nil when the pipeline has no WebSocket frame
    /// encoder (then write through hummingbird-websocket's outbound writer).
    static func install(on channel: any Channel) async -> Self? {
        try? await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            let encoder = try pipeline.handler(type: WebSocketFrameEncoder.self)
            let handler = MountedFrameHandler(eventLoop: channel.eventLoop)
            try pipeline.addHandler(handler, position: .after(encoder))
            return MountedWebSocketWriter(
                handler: NIOLoopBound(handler, eventLoop: channel.eventLoop),
                eventLoop: channel.eventLoop
            )
        }.get()
    }

    /// Writes `frames` in order and flushes once. Returns once they are handed to the channel, or, when the
    /// channel is not writable (its peer does not read), once the last one has been written to the socket.
    func write(_ frames: [WebSocketFrame]) async throws {
        let handler = self.handler
        try await self.eventLoop.flatSubmit { handler.value.write(frames) }.get()
    }
}

/// The channel handler of ``MountedWebSocketWriter``; touched on the channel's event loop only.
final class MountedFrameHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let eventLoop: any EventLoop
    private var context: ChannelHandlerContext?
    /// A close frame has passed: nothing more is written.
    private var closeSent = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if self.unwrapOutboundIn(data).opcode == .connectionClose { self.closeSent = true }
        context.write(data, promise: promise)
    }

    func write(_ frames: [WebSocketFrame]) -> EventLoopFuture<Void> {
        guard let context = self.context, !self.closeSent else {
            return self.eventLoop.makeFailedFuture(MountedWebSocketWriter.Closed())
        }
        guard !frames.isEmpty else { return self.eventLoop.makeSucceededVoidFuture() }
        let promise = context.eventLoop.makePromise(of: Void.self)
        for (index, frame) in frames.enumerated() {
            context.write(self.wrapOutboundOut(frame), promise: index == frames.count - 1 ? promise : nil)
        }
        context.flush()
        return context.channel.isWritable ? context.eventLoop.makeSucceededVoidFuture() : promise.futureResult
    }
}
