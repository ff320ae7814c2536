import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// An HTTP server on 127.0.0.1 that answers a JWKS fetch the way a broken or hostile identity provider would. It
/// reads a request head, then acts by its current ``Behaviour`` (switchable while it runs), and counts requests and
/// the body bytes it got onto the wire before the client went away.
final class HostileJWKSServer: Sendable {
    enum Behaviour: Sendable {
        /// A 200 with this body, then close.
        case serve([UInt8])
        /// A 200 whose body (a valid key set) goes out one byte per `interval`.
        case trickle([UInt8], interval: TimeAmount)
        /// Reads the request and never answers.
        case silent
        /// A 200 announcing `bytes` of body and writing them as fast as the client reads.
        case oversized(bytes: Int)
        /// A 302 to the same path, every time.
        case redirectLoop
        /// A 200 whose head never ends: header lines, as fast as the client reads.
        case endlessHeaders
    }

    private struct State {
        var behaviour: Behaviour
        var requests = 0
        var bodyBytesWritten = 0
    }

    let port: Int
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    init(_ behaviour: Behaviour) async throws {
        let state = NIOLockedValueBox(State(behaviour: behaviour))
        self.state = state
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.port = self.channel.localAddress?.port ?? 0
    }

    var url: String { "http://127.0.0.1:\(self.port)/jwks.json" }

    var behaviour: Behaviour {
        get { self.state.withLockedValue { $0.behaviour } }
        set { self.state.withLockedValue { $0.behaviour = newValue } }
    }

    /// Request heads received so far.
    var requests: Int { self.state.withLockedValue { $0.requests } }

    /// Body bytes (or, for endless headers, head bytes) the kernel took from this server so far.
    var bodyBytesWritten: Int { self.state.withLockedValue { $0.bodyBytesWritten } }

    func stop() async {
        try? await self.channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let state: NIOLockedValueBox<State>
        private var head: [UInt8] = []
        private var answering = false
        private var timer: Scheduled<Void>?
        /// What is left to write for `.oversized` / `.endlessHeaders`; written while the channel is writable.
        private var flood: (remaining: Int, chunk: ByteBuffer)?

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !self.answering else { return }
            self.head.append(contentsOf: self.unwrapInboundIn(data).readableBytesView)
            guard self.head.count >= 4, self.head.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)) else { return }
            self.answering = true
            let behaviour = self.state.withLockedValue { state in
                state.requests += 1
                return state.behaviour
            }
            self.answer(behaviour, context: context)
        }

        private func answer(_ behaviour: Behaviour, context: ChannelHandlerContext) {
            switch behaviour {
            case .serve(let body):
                self.write("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n", context)
                self.write(body, context).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            case .trickle(let body, let interval):
                self.write("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n", context)
                self.trickle(body[...], every: interval, context)
            case .silent:
                break
            case .oversized(let bytes):
                self.write("HTTP/1.1 200 OK\r\nContent-Length: \(bytes)\r\n\r\n", context)
                let chunk = ByteBuffer(repeating: UInt8(ascii: " "), count: 64 * 1024)
                self.flood = (bytes, chunk)
                self.pump(context)
            case .redirectLoop:
                self.write(
                    "HTTP/1.1 302 Found\r\nLocation: /jwks.json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    context
                ).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            case .endlessHeaders:
                self.write("HTTP/1.1 200 OK\r\n", context)
                let line = "X-Padding: " + String(repeating: "a", count: 1000) + "\r\n"
                self.flood = (Int.max, ByteBuffer(string: String(repeating: line, count: 64)))
                self.pump(context)
            }
        }

        /// Writes the first byte of `rest` after `interval`, then the next, until none is left or the peer went.
        private func trickle(_ rest: ArraySlice<UInt8>, every interval: TimeAmount, _ context: ChannelHandlerContext) {
            guard let byte = rest.first else { return }
            self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: interval) {
                self.write([byte], context)
                self.trickle(rest.dropFirst(), every: interval, context)
            }
        }

        /// Writes flood chunks until the socket pushes back, and again when it drains.
        private func pump(_ context: ChannelHandlerContext) {
            while let (remaining, chunk) = self.flood, remaining > 0, context.channel.isWritable {
                let slice = chunk.getSlice(at: 0, length: min(remaining, chunk.readableBytes)) ?? chunk
                self.flood = (remaining - slice.readableBytes, chunk)
                let state = self.state
                let count = slice.readableBytes
                context.writeAndFlush(self.wrapOutboundOut(slice)).whenSuccess {
                    state.withLockedValue { $0.bodyBytesWritten += count }
                }
            }
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            self.pump(context)
            context.fireChannelWritabilityChanged()
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.timer?.cancel()
            self.flood = nil
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        @discardableResult
        private func write(_ text: String, _ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
            self.write(Array(text.utf8), context)
        }

        @discardableResult
        private func write(_ bytes: [UInt8], _ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: bytes)))
        }
    }
}
