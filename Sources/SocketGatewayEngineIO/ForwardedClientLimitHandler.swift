import NIOCore
import NIOHTTP1

/// On a connection from a trusted proxy with a per-address limit: counts the connection for the client each
/// request's `X-Forwarded-For` names (``TrustedProxies/clientAddress(peer:headers:)``), and answers a request whose
/// client is at its limit with `503` and closes the connection. Removed with the HTTP handlers on a WebSocket
/// upgrade (the connection stays counted for its client until it closes).
final class ForwardedClientLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let trustedProxies: TrustedProxies
    /// Counts the connection for a client address; false when that client is at its limit.
    private let count: (String) -> Bool
    /// After a refused head: the rest of that request is dropped while the answer is written and the
    /// connection closes.
    private var refused = false

    init(trustedProxies: TrustedProxies, count: @escaping (String) -> Bool) {
        self.trustedProxies = trustedProxies
        self.count = count
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if case .head(let head) = part, !self.refused {
            let client = self.trustedProxies.clientAddress(peer: context.channel.remoteAddress, headers: head.headers)
            if let address = client?.ipAddress, !self.count(address) {
                self.refused = true
                self.refuse(context: context)
                return
            }
        }
        guard !self.refused else { return }
        context.fireChannelRead(data)
    }

    private func refuse(context: ChannelHandlerContext) {
        var body = context.channel.allocator.buffer(capacity: 64)
        body.writeString("Too many connections from this client address\n")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: .serviceUnavailable, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
