import Atomics
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Why a client failed to connect.
struct ClientConnectError: Error, CustomStringConvertible {
    var description: String
}

/// One Socket.IO client over a WebSocket: answers the Engine.IO open with a CONNECT carrying the token, answers
/// pings, and hands every EVENT packet to the recorder. Confined to its channel's event loop.
final class SocketIOClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum State {
        case awaitingOpen, awaitingConnect, connected, closed
    }

    private let connectPayload: ByteBuffer
    private let recorder: LoadRecorder
    private let connected: EventLoopPromise<Void>
    private var state = State.awaitingOpen
    private let pong: ByteBuffer

    init(token: String, recorder: LoadRecorder, connected: EventLoopPromise<Void>) {
        self.connectPayload = ByteBuffer(string: #"40{"token":""# + token + #""}"#)
        self.recorder = recorder
        self.connected = connected
        self.pong = ByteBuffer(string: "3")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text where frame.rsv1:
            // permessage-deflate: RSV1 marks a compressed message (the server sends each in one frame).
            self.recorder.compressedMessages.wrappingIncrement(ordering: .relaxed)
            guard let text = self.recorder.inflater.inflate(frame.unmaskedData) else {
                context.close(promise: nil)
                return
            }
            self.received(text, context: context)
        case .text:
            self.received(frame.unmaskedData, context: context)
        case .ping:
            self.write(frame.unmaskedData, opcode: .pong, context: context)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    private func received(_ text: ByteBuffer, context: ChannelHandlerContext) {
        guard let type = text.getInteger(at: text.readerIndex, as: UInt8.self) else { return }
        switch type {
        case UInt8(ascii: "4"):
            let socketType = text.getInteger(at: text.readerIndex + 1, as: UInt8.self)
            switch socketType {
            case UInt8(ascii: "2"):
                self.recorder.recordEvent(text, now: monotonicMicroseconds())
            case UInt8(ascii: "0"):
                if case .awaitingConnect = self.state {
                    self.state = .connected
                    self.connected.succeed()
                }
            case UInt8(ascii: "4"):
                self.state = .closed
                self.connected.fail(ClientConnectError(description: "CONNECT_ERROR: \(String(buffer: text))"))
                context.close(promise: nil)
            default:
                break
            }
        case UInt8(ascii: "2"):
            self.write(self.pong, opcode: .text, context: context)
        case UInt8(ascii: "0"):
            if case .awaitingOpen = self.state {
                self.state = .awaitingConnect
                self.write(self.connectPayload, opcode: .text, context: context)
            }
        default:
            break
        }
    }

    private func write(_ payload: ByteBuffer, opcode: WebSocketOpcode, context: ChannelHandlerContext) {
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: payload)
        context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch self.state {
        case .connected:
            self.recorder.disconnects.wrappingIncrement(ordering: .relaxed)
        case .awaitingOpen, .awaitingConnect:
            self.connected.fail(
                ClientConnectError(description: "connection closed before the Socket.IO CONNECT was acknowledged")
            )
        case .closed:
            break
        }
        self.state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Opens clients against one server.
struct LoadConnector: Sendable {
    let host: String
    let port: Int
    let path: String
    let group: MultiThreadedEventLoopGroup
    let recorders: [ObjectIdentifier: LoadRecorder]
    /// Offer permessage-deflate in the upgrade request (the server may decline it).
    var deflate = false

    private enum Upgrade: Sendable {
        case upgraded(EventLoopFuture<Void>)
        case refused
    }

    /// Connects one client authenticated with `token`; returns its channel once the Socket.IO CONNECT is acknowledged.
    func connect(token: String, timeout: TimeAmount) async throws -> any Channel {
        let host = self.host
        let path = self.path
        let recorders = self.recorders
        let deflate = self.deflate
        let bootstrap = ClientBootstrap(group: self.group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(timeout)
        let (channel, upgrade): (any Channel, EventLoopFuture<Upgrade>) = try await bootstrap.connect(
            host: self.host,
            port: self.port
        ) { channel in
            channel.eventLoop.makeCompletedFuture {
                let recorder = recorders[ObjectIdentifier(channel.eventLoop)]!
                try channel.pipeline.syncOperations.addHandler(WireByteCounter(recorder: recorder))
                let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(
                    maxFrameSize: 1 << 20,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            let connected = channel.eventLoop.makePromise(of: Void.self)
                            try channel.pipeline.syncOperations.addHandler(
                                SocketIOClientHandler(token: token, recorder: recorder, connected: connected)
                            )
                            return Upgrade.upgraded(connected.futureResult)
                        }
                    }
                )
                var headers = HTTPHeaders()
                headers.add(name: "Host", value: host)
                headers.add(name: "Content-Length", value: "0")
                if deflate {
                    headers.add(
                        name: "Sec-WebSocket-Extensions",
                        value: "permessage-deflate; client_no_context_takeover"
                    )
                }
                let head = HTTPRequestHead(
                    version: .http1_1,
                    method: .GET,
                    uri: "\(path)?EIO=4&transport=websocket",
                    headers: headers
                )
                let configuration = NIOTypedHTTPClientUpgradeConfiguration<Upgrade>(
                    upgradeRequestHead: head,
                    upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.refused) }
                )
                // The server's Engine.IO OPEN often arrives in the same read as the 101: keep those bytes.
                var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                pipeline.leftOverBytesStrategy = .forwardBytes
                let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                    configuration: pipeline
                )
                return (channel, negotiated)
            }
        }
        let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        do {
            switch try await upgrade.get() {
            case .upgraded(let connected):
                try await connected.get()
                return channel
            case .refused:
                throw ClientConnectError(description: "the server refused the WebSocket upgrade")
            }
        } catch {
            try? await channel.close()
            throw error
        }
    }
}
