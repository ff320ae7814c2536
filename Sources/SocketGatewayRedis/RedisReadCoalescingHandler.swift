import NIOCore

/// Holds a subscribed connection's next read for a short delay while messages arrive closely spaced, so they are
/// read in one system call and handled in one wake-up (``RedisReadCoalescingStateMachine`` decides; this handler
/// passes on, or holds, the channel's `read` event and arms the timer).
///
/// It joins the pipeline first (nearest the socket, before TLS) once the subscription is ready, so the handshake's
/// replies are never held. It leaves autoRead alone: the channel asks for each next read through the pipeline,
/// and a held read is passed on at its deadline unless the consumer paused reading meanwhile (autoRead off).
final class RedisReadCoalescingHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: RedisReadCoalescingStateMachine
    private var timer: Scheduled<Void>?

    init(delay: TimeAmount) {
        self.machine = RedisReadCoalescingStateMachine(delay: delay)
    }

    /// Adds a handler holding reads for `delay` at the front of `channel`'s pipeline, and a receive buffer that
    /// takes what arrives meanwhile in one read. Call on the channel's loop; a `delay` of zero adds nothing.
    static func install(delay: TimeAmount, on channel: any Channel) {
        guard delay > .zero else { return }
        do {
            // 64 KiB at first (a millisecond at 50,000 messages/s of 200 bytes is 10 KiB), growing when a read
            // fills it; NIO reuses the buffer from read to read.
            try channel.syncOptions?.setOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 1 << 20)
            )
            try channel.pipeline.syncOperations.addHandler(Self(delay: delay), position: .first)
        } catch {
            // A channel that closed meanwhile: nothing to coalesce.
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        _ = self.machine.readCompleted(now: .now())
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        self.run(self.machine.readRequested(now: .now()), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.cancelTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimer()
    }

    private func run(_ action: RedisReadCoalescingStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .nothing:
            break
        case .read:
            context.read()
        case .readAt(let deadline):
            self.cancelTimer()
            self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                self.timer = nil
                let autoRead = (try? context.channel.syncOptions?.getOption(ChannelOptions.autoRead)) ?? true
                self.run(self.machine.deadlineReached(now: .now(), autoRead: autoRead), context: context)
            }
        }
    }

    private func cancelTimer() {
        self.timer?.cancel()
        self.timer = nil
    }
}
