import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SocketGatewayServer
import Testing

@Suite struct SocketServerLifecycleTests {
    @Test func runsInAServiceGroupUntilGracefulShutdown() async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous,
            logger: logger
        )
        let group = ServiceGroup(services: [server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Bounded wait for the listener.
            var port: Int?
            for _ in 0..<500 {
                port = server.localPort
                if port != nil { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let (client, open) = try await TestWebSocketClient.connectEngineIO(port: try #require(port), group: clients)
            #expect(open.hasPrefix("0{\"sid\":"))
            try await client.send("40")
            #expect(try await client.nextText().hasPrefix("40{\"sid\":"))

            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            // Shutting down closed the session.
            try await client.waitForClose()
            try await clients.shutdownGracefully()
        }
        // Idempotent after the service stopped.
        try await server.shutdown()
    }

    @Test func waitUntilListeningGivesThePortOnceRunListensAndNilWhenItCannotStart() async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous,
            logger: logger
        )
        let group = ServiceGroup(services: [server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = await server.waitUntilListening()
            #expect(port != nil)
            #expect(port == server.localPort)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }

        // No authentication configured: run() throws, and a waiter is told nil rather than left waiting.
        let refused = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1),
            logger: logger
        )
        async let waited = refused.waitUntilListening()
        await #expect(throws: SocketServerConfigurationError.self) { try await refused.run() }
        #expect(await waited == nil)
    }

    @Test func shutdownWithoutStart() async throws {
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous,
            logger: Logger(label: "test")
        )
        try await server.shutdown()
        try await server.shutdown()
    }
}
