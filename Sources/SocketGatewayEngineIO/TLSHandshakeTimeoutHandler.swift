import NIOCore
import NIOTLS

/// Closes a TLS connection whose handshake has not completed within a time limit: a peer that opens TCP and sends
/// its ClientHello a byte at a time, or never, holds a socket and a TLS state only that long. Sits right after the
/// `NIOSSLServerHandler` and removes itself when the handshake completes (the HTTP time limits take over).
final class TLSHandshakeTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let timeout: TimeAmount
    private let policy: HTTPConnectionPolicy
    private var timer: Scheduled<Void>?
    private var done = false

    init(timeout: TimeAmount, policy: HTTPConnectionPolicy) {
        self.timeout = timeout
        self.policy = policy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.start(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.done = true
        self.timer?.cancel()
        self.timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent {
            self.done = true
            self.timer?.cancel()
            self.timer = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func start(context: ChannelHandlerContext) {
        guard !self.done, self.timer == nil else { return }
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: self.timeout) {
            self.timer = nil
            guard !self.done else { return }
            self.done = true
            self.policy.tlsHandshakeTimedOut(remoteAddress: context.channel.remoteAddress, timeout: self.timeout)
            context.close(promise: nil)
        }
    }
}
