import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// Receives what a Redis channel reads; implemented by the event-loop-confined publisher and subscriber cores.
protocol RedisConnectionDelegate: AnyObject {
    /// A reply or push arrived on the connection with this generation number.
    func connection(_ generation: UInt64, received value: RESPValue)
    /// The connection with this generation number closed; `error` is what closed it, if known.
    func connection(_ generation: UInt64, closedWith error: (any Error)?)
}

/// Forwards decoded replies and the close to the owner. Does no protocol work of its own.
final class RedisReplyForwarder: ChannelInboundHandler {
    typealias InboundIn = RESPValue

    private weak var delegate: (any RedisConnectionDelegate)?
    private let generation: UInt64
    private var error: (any Error)?

    init(delegate: any RedisConnectionDelegate, generation: UInt64) {
        self.delegate = delegate
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.delegate?.connection(self.generation, received: Self.unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil { self.error = error }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.delegate?.connection(self.generation, closedWith: self.error)
        self.delegate = nil
    }
}

/// Opening connections: TCP or unix socket, with the RESP decoder and the reply forwarder in the pipeline; for a
/// `rediss://` URL, TLS first (the URL's shared `NIOSSLContext`), the channel handed over once its handshake is done.
///
/// What is sent on a new connection (the handshake) and when it is ready is `RedisConnectionStateMachine`'s.
enum RedisConnector {
    /// Connects to `url` on `eventLoop` with the RESP decoder and a forwarder to `delegate` in the pipeline.
    /// A TLS handshake that fails (an untrusted certificate, a name mismatch) or takes longer than `connectTimeout`
    /// fails the future with a `RedisError` that says why.
    static func connect(
        url: RedisURL,
        eventLoop: any EventLoop,
        connectTimeout: TimeAmount,
        delegate: any RedisConnectionDelegate,
        generation: UInt64
    ) -> EventLoopFuture<any Channel> {
        let boundDelegate = NIOLoopBound(delegate, eventLoop: eventLoop)
        // Classic pub/sub on a cluster: PUBLISH and SUBSCRIBE work on any node (the cluster bus carries messages to
        // every node), so each attempt takes a seed at random; after a node fails, the next attempt most likely
        // reaches another one.
        let tlsTarget: (host: String, port: Int)? =
            switch url.endpoint {
            case .tcp(let host, let port): (host, port)
            case .cluster(let seeds): seeds.randomElement().map { ($0.host, $0.port) }
            case .unixSocket, .sentinel: nil
            }
        if let tls = url.tlsContext, let target = tlsTarget {
            return Self.connectTLS(
                tls,
                host: target.host,
                port: target.port,
                redactedURL: url.redacted,
                eventLoop: eventLoop,
                connectTimeout: connectTimeout,
                delegate: boundDelegate,
                generation: generation
            )
        }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        RESPReplyDecoder(), RedisReplyForwarder(delegate: boundDelegate.value, generation: generation),
                    ])
                }
            }
        switch url.endpoint {
        case .tcp(let host, let port):
            return bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1).connect(host: host, port: port)
        case .unixSocket(let path):
            return bootstrap.connect(unixDomainSocketPath: path)
        case .sentinel:
            // `RedisConnectionShell.openConnection` asks the sentinels first and connects to the primary's address.
            return eventLoop.makeFailedFuture(
                RedisError(code: .connectionFailed, message: "a sentinel URL names no node", redactedURL: url.redacted)
            )
        case .cluster(let seeds):
            // A seed at random, as for TLS above.
            let seed = seeds.randomElement()!
            return bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1).connect(
                host: seed.host,
                port: seed.port
            )
        }
    }

    /// TCP, then TLS; the RESP decoder and the forwarder join the pipeline once the handshake is done, so a
    /// failed handshake is a failed connect (retried with the backoff) and never a closed connection.
    private static func connectTLS(
        _ tls: RedisTLSContext,
        host: String,
        port: Int,
        redactedURL: String,
        eventLoop: any EventLoop,
        connectTimeout: TimeAmount,
        delegate: NIOLoopBound<any RedisConnectionDelegate>,
        generation: UInt64
    ) -> EventLoopFuture<any Channel> {
        let handshakeDone = eventLoop.makePromise(of: Void.self)
        let serverName = tls.serverName(forHost: host)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sslHandler = try NIOSSLClientHandler(context: tls.sslContext, serverHostname: serverName)
                    try channel.pipeline.syncOperations.addHandlers([
                        sslHandler,
                        RedisTLSHandshakeHandler(
                            handshakeDone: handshakeDone,
                            host: host,
                            configuration: tls.configuration,
                            redactedURL: redactedURL,
                            timeout: connectTimeout
                        ),
                    ])
                }
            }
        let connected = bootstrap.connect(host: host, port: port)
        connected.whenFailure { handshakeDone.fail($0) }
        return connected.flatMap { channel in
            handshakeDone.futureResult.flatMapThrowing { (_: Void) -> any Channel in
                try channel.pipeline.syncOperations.addHandlers([
                    RESPReplyDecoder(), RedisReplyForwarder(delegate: delegate.value, generation: generation),
                ])
                return channel
            }.flatMapErrorThrowing { error in
                channel.close(promise: nil)
                throw error
            }
        }
    }

    /// Writes and flushes `commands` on `channel`, each framed as one RESP command: what a connection machine's
    /// `.sendHandshake` and `.sendPing` ask the publisher, the subscriber and the command client to send.
    static func send(_ commands: some Sequence<[String]>, on channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: 128)
        for arguments in commands { RESPCommand.write(arguments, into: &buffer) }
        channel.writeAndFlush(buffer, promise: nil)
    }
}

/// What the publisher, the subscriber and the command client share as the NIO shell of a
/// `RedisConnectionStateMachine`: opening the connection the machine asks for and feeding the outcome back.
/// Everything here runs on `eventLoop`.
protocol RedisConnectionShell: RedisConnectionDelegate, Sendable {
    var url: RedisURL { get }
    var eventLoop: any EventLoop { get }
    /// How long a TCP or unix-socket connect may take.
    var connectTimeout: Duration { get }
    var machine: RedisConnectionStateMachine { get set }
    /// The open connection, once the machine took it.
    var channel: (any Channel)? { get set }
    /// Performs what the machine decided.
    func run(_ action: RedisConnectionStateMachine.Action)
}

extension RedisConnectionShell {
    /// Opens connection attempt `generation` (the machine's `.connect`). The machine decides what the outcome
    /// means; a channel it no longer wants (a stale attempt) is closed at once.
    func openConnection(generation: UInt64) {
        if case .sentinel(let sentinel) = self.url.endpoint {
            // Asks the sentinels where the primary is first (RedisSentinelResolver.swift).
            self.openConnection(generation: generation, through: sentinel)
            return
        }
        RedisConnector.connect(
            url: self.url,
            eventLoop: self.eventLoop,
            connectTimeout: TimeAmount(self.connectTimeout),
            delegate: self,
            generation: generation
        ).whenComplete { result in
            switch result {
            case .success(let channel):
                let action = self.machine.connected(generation: generation, now: .now())
                guard action != .discardConnection else {
                    channel.close(promise: nil)
                    return
                }
                self.channel = channel
                self.run(action)
            case .failure(let error):
                self.run(self.machine.connectFailed(generation: generation, error: error, now: .now()))
            }
        }
    }
}
