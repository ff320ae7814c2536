import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import SocketGatewayPrometheus
import SocketGatewayServer
import Testing

/// The separate metrics listener (`SOCKET_METRICS_PORT`) against hostile peers on loopback: a slowloris request
/// head, headers over the size limit, and more idle connections than one address may hold. It closes them as the
/// Socket.IO listener does (with the limits of the configuration it is given), and a scrape works meanwhile.
@Suite struct PrometheusMetricsHardeningTests {
    /// A raw TCP connection that keeps what it received and whether the server closed it.
    final class RawPeer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        private let state = NIOLockedValueBox<(received: String, closed: Bool)>(("", false))
        let channel: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)

        static func connect(port: Int) async throws -> RawPeer {
            let peer = RawPeer()
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(peer) }
                }
                .connect(host: "127.0.0.1", port: port).get()
            peer.channel.withLockedValue { $0 = channel }
            return peer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: self.unwrapInboundIn(data))
            self.state.withLockedValue { $0.received += text }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.state.withLockedValue { $0.closed = true }
        }

        func send(_ text: String) {
            self.channel.withLockedValue { $0 }?.writeAndFlush(ByteBuffer(string: text), promise: nil)
        }

        var received: String { self.state.withLockedValue { $0.received } }
        var isClosed: Bool { self.state.withLockedValue { $0.closed } }

        /// Waits (bounded: 20 s) until the server closed the connection.
        func closed() async -> Bool {
            for _ in 0..<1_000 where !self.isClosed {
                try? await Task.sleep(for: .milliseconds(20))
            }
            return self.isClosed
        }

        func close() {
            self.channel.withLockedValue { $0 }?.close(promise: nil)
        }
    }

    /// One `GET /metrics` on a fresh connection: the status line, or "" when closed without an answer.
    static func scrape(port: Int) async throws -> String {
        let peer = try await RawPeer.connect(port: port)
        peer.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        _ = await peer.closed()
        return String(peer.received.prefix { $0 != "\r\n" })
    }

    /// Runs `body` with a metrics listener on 127.0.0.1 under the HTTP limits of `limits`.
    static func withMetricsServer(
        _ limits: SocketServerConfiguration,
        _ body: (Int) async throws -> Void
    ) async throws {
        let registry = PrometheusCollectorRegistry()
        let server = PrometheusMetricsServer(
            host: "127.0.0.1",
            port: 0,
            registry: registry,
            httpLimits: limits,
            logger: Logger(label: "test.metrics", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        try await withThrowingTaskGroup { group in
            group.addTask { try await server.run() }
            let port = try #require(await server.waitUntilListening())
            try await body(port)
            group.cancelAll()
        }
    }

    @Test func aSlowlorisHeadGets408AndAScrapeWorksMeanwhile() async throws {
        var limits = SocketServerConfiguration(port: 0)
        limits.httpHeaderTimeout = .seconds(2)
        try await Self.withMetricsServer(limits) { port in
            let slow = try await RawPeer.connect(port: port)
            slow.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            let trickle = Task {
                // One byte per 100 ms, far longer than the header timeout: the server must end it.
                for _ in 0..<200 where !slow.isClosed {
                    slow.send("a")
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(try await Self.scrape(port: port) == "HTTP/1.1 200 OK")
            #expect(await slow.closed())
            trickle.cancel()
            #expect(slow.received.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(slow.received)")
            #expect(try await Self.scrape(port: port) == "HTTP/1.1 200 OK")
        }
    }

    @Test func headersOverTheLimitGet431AndTheConnectionIsClosed() async throws {
        var limits = SocketServerConfiguration(port: 0)
        limits.maxRequestHeaderBytes = 4 << 10
        try await Self.withMetricsServer(limits) { port in
            let peer = try await RawPeer.connect(port: port)
            let padding = String(repeating: "a", count: 8 << 10)
            peer.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: \(padding)\r\n\r\n")
            #expect(await peer.closed())
            #expect(peer.received.hasPrefix("HTTP/1.1 431 "), "\(peer.received)")
            #expect(try await Self.scrape(port: port) == "HTTP/1.1 200 OK")
        }
    }

    @Test func idleConnectionsBeyondTheLimitAreClosedAndIdleOnesTimeOut() async throws {
        var limits = SocketServerConfiguration(port: 0)
        limits.maxConnectionsPerAddress = 50
        limits.httpIdleTimeout = .seconds(3)
        try await Self.withMetricsServer(limits) { port in
            var idle: [RawPeer] = []
            for _ in 0..<50 { idle.append(try await RawPeer.connect(port: port)) }
            // The 51st from the same address is closed at accept, with nothing written.
            let extra = try await RawPeer.connect(port: port)
            #expect(await extra.closed())
            #expect(extra.received == "")
            // The idle ones are closed by the idle timeout; then a scrape is served again.
            for peer in idle { #expect(await peer.closed()) }
            #expect(idle.allSatisfy { $0.received == "" })
            #expect(try await Self.scrape(port: port) == "HTTP/1.1 200 OK")
        }
    }
}
