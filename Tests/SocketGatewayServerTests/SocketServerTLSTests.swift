import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SocketGatewayRedisTestKit
import SocketGatewayServer
import Testing

/// `SocketServer` with `configuration.tls`: a NIOSSL client that verifies the certificate against the test CA
/// (openssl-made, TestCertificates) reads `/healthz` over TLS; `reloadTLS()` gives new connections the new
/// certificate and keeps the old one when the new file is bad; plaintext HTTP gets no answer.
@Suite struct SocketServerTLSTests {
    /// What a TLS client got from `GET /healthz`: the response's first line, or the error that ended it.
    private static func healthz(port: Int, ca: String, serverName: String?) async throws -> String {
        let group = MultiThreadedEventLoopGroup.singleton
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        let context = try NIOSSLContext(configuration: tls)
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    try sync.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        try? await channel.writeAndFlush(ByteBuffer(string: request)).get()
        try? await channel.closeFuture.get()
        return try await channel.eventLoop.submit { collector.outcome }.get()
    }

    private static func plaintextAnswer(port: Int) async throws -> String {
        let group = MultiThreadedEventLoopGroup.singleton
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).get()
        try await channel.closeFuture.get()
        return try await channel.eventLoop.submit { collector.outcome }.get()
    }

    @Test func servesTLSAndReloadsTheCertificateForNewConnections() async throws {
        let certificates = try await TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        let live = (certificates.path("live.pem"), certificates.path("live.key"))
        try FileManager.default.copyItem(atPath: certificates.serverCertificate, toPath: live.0)
        try FileManager.default.copyItem(atPath: certificates.serverKey, toPath: live.1)
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous
        configuration.tls = SocketServerTLSConfiguration(certificateChainFile: live.0, privateKeyFile: live.1)
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let server = SocketServer(configuration: configuration, logger: logger)
        try await server.start()
        let port = try #require(server.localPort)
        do {
            // The certificate for 127.0.0.1 (no SNI: the client checks the address).
            #expect(try await Self.healthz(port: port, ca: certificates.caFile, serverName: nil) == "HTTP/1.1 200 OK")
            // A client that trusts another CA refuses it.
            let untrusting = try await Self.healthz(port: port, ca: certificates.otherCAFile, serverName: nil)
            #expect(untrusting.contains("CERTIFICATE_VERIFY_FAILED"), "\(untrusting)")
            // Plaintext to the TLS port: no HTTP answer, that connection closed.
            #expect(try await !Self.plaintextAnswer(port: port).hasPrefix("HTTP/"))

            // Reload with the certificate for redis.test (same CA): new connections get it.
            let renewed = [(certificates.namedServerCertificate, live.0), (certificates.namedServerKey, live.1)]
            for (source, target) in renewed {
                try FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: source, toPath: target)
            }
            try server.reloadTLS()
            #expect(
                try await Self.healthz(port: port, ca: certificates.caFile, serverName: "redis.test")
                    == "HTTP/1.1 200 OK"
            )
            let byAddress = try await Self.healthz(port: port, ca: certificates.caFile, serverName: nil)
            #expect(!byAddress.hasPrefix("HTTP/"), "the old certificate for 127.0.0.1 is still served: \(byAddress)")

            // A bad file: refused, naming it; the previous certificate stays.
            try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: live.0))
            #expect(
                throws: SocketServerConfigurationError(
                    variable: "tls",
                    message: "the TLS certificate chain file '\(live.0)' is not a PEM certificate file"
                )
            ) { try server.reloadTLS() }
            #expect(
                try await Self.healthz(port: port, ca: certificates.caFile, serverName: "redis.test")
                    == "HTTP/1.1 200 OK"
            )
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    /// Opens TCP to `port` and sends the start of a TLS record (a ClientHello announcing 512 bytes), then one
    /// byte per 100 ms when `trickle` is set (else nothing more); returns the channel, whose close is the server's.
    private static func stalledClientHello(port: Int, trickle: Bool) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        // Handshake record, TLS 1.0 record version, length 512, then a ClientHello header that never completes.
        try await channel.writeAndFlush(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01])).get()
        if trickle {
            let task = channel.eventLoop.scheduleRepeatedTask(
                initialDelay: .milliseconds(100),
                delay: .milliseconds(100)
            ) {
                _ in channel.writeAndFlush(ByteBuffer(bytes: [0x00]), promise: nil)
            }
            channel.closeFuture.whenComplete { _ in task.cancel() }
        }
        return channel
    }

    /// Whether `channel` was closed within `seconds` (a bound for the test, not a measurement).
    private static func closed(_ channel: any Channel, within seconds: Int) async -> Bool {
        for _ in 0..<(seconds * 20) {
            if !channel.isActive { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return !channel.isActive
    }

    @Test func aPeerThatTricklesOrNeverFinishesItsClientHelloIsClosedAndOthersAreServed() async throws {
        let certificates = try await TestCertificates.make()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous
        configuration.tls = SocketServerTLSConfiguration(
            certificateChainFile: certificates.serverCertificate,
            privateKeyFile: certificates.serverKey,
            handshakeTimeout: .seconds(3)
        )
        let lines = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        let logger = Logger(label: "socket-gateway.test") { _ in CapturingLogHandler(lines: lines) }
        let server = SocketServer(configuration: configuration, logger: logger)
        try await server.start()
        let port = try #require(server.localPort)
        do {
            // One event loop: both stalled peers share it with the client that must be served meanwhile.
            let trickler = try await Self.stalledClientHello(port: port, trickle: true)
            let silent = try await Self.stalledClientHello(port: port, trickle: false)
            #expect(try await Self.healthz(port: port, ca: certificates.caFile, serverName: nil) == "HTTP/1.1 200 OK")
            // Closed by the handshake timeout (3 s here), long before the 60 s HTTP idle timeout could.
            #expect(await Self.closed(trickler, within: 20))
            #expect(await Self.closed(silent, within: 20))
            let warnings = lines.withLockedValue { $0 }.filter { $0.message.contains("TLS handshake not completed") }
            // One warning, the second rate-limited (10 s); two if a starved machine closed them further apart.
            #expect((1...2).contains(warnings.count), "\(warnings)")
            #expect(warnings.first?.text.contains("timeout=3 s") == true, "\(warnings)")
            // The server still serves TLS.
            #expect(try await Self.healthz(port: port, ca: certificates.caFile, serverName: nil) == "HTTP/1.1 200 OK")
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    @Test func theHandshakeTimeoutIsReadFromTheEnvironmentAndABadValueIsRefused() throws {
        let files = ["SOCKET_TLS_CERT": "chain.pem", "SOCKET_TLS_KEY": "key.pem"]
        #expect(try SocketServerConfiguration(environment: files).tls?.handshakeTimeout == .seconds(10))
        let set = files.merging(["SOCKET_TLS_HANDSHAKE_TIMEOUT": "2.5"]) { $1 }
        #expect(try SocketServerConfiguration(environment: set).tls?.handshakeTimeout == .milliseconds(2500))
        for bad in ["0", "soon", "3601"] {
            #expect(
                throws: SocketServerConfigurationError(
                    variable: "SOCKET_TLS_HANDSHAKE_TIMEOUT",
                    message: "must be a number of seconds, 0.001...3600, got '\(bad)'"
                )
            ) { try SocketServerConfiguration(environment: ["SOCKET_TLS_HANDSHAKE_TIMEOUT": bad]) }
        }
    }

    @Test func aHandshakeTimeoutThatIsNotPositiveIsRefused() throws {
        var configuration = SocketServerConfiguration(port: 0).anonymous
        configuration.tls = SocketServerTLSConfiguration(
            certificateChainFile: "chain.pem",
            privateKeyFile: "key.pem",
            handshakeTimeout: .zero
        )
        #expect(
            throws: SocketServerConfigurationError(
                variable: "tls.handshakeTimeout",
                message: "must be positive, got 0.0 seconds"
            )
        ) { try configuration.validate() }
    }

    @Test func aServerWithoutTLSHasNothingToReload() async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let server = SocketServer(configuration: SocketServerConfiguration(port: 0).anonymous, logger: logger)
        let nothingToReload = "is not set: there is nothing to reload"
        #expect(throws: SocketServerConfigurationError(variable: "tls", message: nothingToReload)) {
            try server.reloadTLS()
        }
        try await server.shutdown()
    }

    @Test func aMissingFileStopsTheStartNamingIt() async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous
        configuration.tls = SocketServerTLSConfiguration(
            certificateChainFile: "/nonexistent/chain.pem",
            privateKeyFile: "/nonexistent/key.pem"
        )
        let server = SocketServer(configuration: configuration, logger: logger)
        await #expect(
            throws: SocketServerConfigurationError(
                variable: "tls",
                message: "the TLS certificate chain file '/nonexistent/chain.pem' does not exist"
            )
        ) { try await server.start() }
        try await server.shutdown()
    }
}

/// Collects what a test connection received, and the error that ended it; read on the channel's loop.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var received = ""
    private var error: (any Error)?

    /// The first line received, else the error, else "".
    var outcome: String {
        if let line = self.received.split(separator: "\r\n").first { return String(line) }
        return self.error.map { "\($0)" } ?? ""
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.received += buffer.readString(length: buffer.readableBytes) ?? ""
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil { self.error = error }
        context.close(promise: nil)
    }
}
