import Logging
import NIOCore
import NIOPosix
import SocketGatewayServer
import Testing

/// Authentication cannot be turned off by a missing or empty setting: only `allowAnonymous` does it.
@Suite(.serialized) struct SocketServerAuthConfigurationTests {
    var logger: Logger {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        return logger
    }

    /// `start()` fails with the configuration error naming `variable`; the server shuts down cleanly after.
    func expectStartFails(_ server: SocketServer, naming variable: String) async throws {
        do {
            try await server.start()
            Issue.record("the server started")
        } catch let error as SocketServerConfigurationError {
            #expect(error.variable == variable, "\(error)")
        }
        try await server.shutdown()
    }

    @Test func noAuthenticationIsRefusedUnlessAllowed() async throws {
        let base = SocketServerConfiguration(port: 0, eventLoopThreads: 1)
        try await self.expectStartFails(SocketServer(configuration: base, logger: self.logger), naming: "tokenSecret")

        // Explicitly anonymous: starts, and accepts a client without a token.
        let anonymous = SocketServer(configuration: base.anonymous, logger: self.logger)
        try await anonymous.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (client, _) = try await TestWebSocketClient.connectEngineIO(
            port: try #require(anonymous.localPort),
            group: group
        )
        try await client.send("40")
        #expect(try await client.nextText().hasPrefix("40{\"sid\":"))
        await client.close()
        try await anonymous.shutdown()
        try await group.shutdownGracefully()
    }

    @Test func emptyTokenSecretIsAnErrorEvenWhenAnonymousIsAllowed() async throws {
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 1, tokenSecret: "")
        #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
        try await self.expectStartFails(
            SocketServer(configuration: configuration, logger: self.logger),
            naming: "tokenSecret"
        )
        configuration.allowAnonymous = true
        try await self.expectStartFails(
            SocketServer(configuration: configuration, logger: self.logger),
            naming: "tokenSecret"
        )
    }

    @Test func tokenSecretAloneAuthenticates() async throws {
        let secret = "auth-configuration-secret-0123456789"
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1, tokenSecret: secret),
            logger: self.logger
        )
        try await server.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let port = try #require(server.localPort)
        let (refused, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
        try await refused.send("40")
        #expect(try await refused.nextText() == #"44{"message":"Unauthorized"}"#)
        await refused.close()
        let (accepted, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
        let token = try await TestTokens.hs256(["sub": "carol"], secret: secret)
        try await accepted.send(#"40{"token":"\#(token)"}"#)
        #expect(try await accepted.nextText().hasPrefix("40{\"sid\":"))
        await accepted.close()
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test func limitsMustBePositive() {
        var configuration = SocketServerConfiguration().anonymous
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.maxQueuedEventsPerConnection = 0
        #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
        configuration = SocketServerConfiguration()
        configuration.maxPendingAcksPerConnection = -1
        #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
        configuration = SocketServerConfiguration()
        configuration.eventRateLimit = SocketEventRateLimit(eventsPerSecond: 0, burst: 1)
        #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
        configuration.eventRateLimit = SocketEventRateLimit(eventsPerSecond: 5, burst: 0)
        #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
        configuration.eventRateLimit = SocketEventRateLimit(eventsPerSecond: 5, burst: 10)
        #expect(throws: Never.self) { try configuration.validate() }
    }
}
