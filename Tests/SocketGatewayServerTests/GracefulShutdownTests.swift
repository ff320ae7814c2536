import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayServer
import Testing

/// Shutting down while a handler is still running: the shutdown completes without waiting for it, the client's
/// connection is closed, and the handler that resumes afterwards emits and acks into nothing, harmlessly. (Handlers
/// are not yet children of the server's run(), so shutdown neither waits for nor cancels them: the structure issue.)
@Suite(.serialized) struct GracefulShutdownTests {
    @Test func shutdownWithAHandlerRunningTellsTheClientAndLeavesTheHandlerHarmless() async throws {
        var logger = Logger(label: "socket-gateway.shutdown-test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 2).anonymous,
            logger: logger
        )
        let gate = TestGate()
        let steps = NIOLockedValueBox<[String]>([])
        server.namespace("/").on("block") { socket, _, ack in
            steps.withLockedValue { $0.append("blocked") }
            await gate.wait()
            socket.emit("after", .bool(true))
            ack?(.string("late"))
            steps.withLockedValue { $0.append("resumed") }
        }
        try await server.start()
        let port = try #require(server.localPort)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await client.send("40")
            #expect(try await client.nextText().hasPrefix("40{\"sid\":\""))
            try await client.send(#"421["block"]"#)
            for _ in 0..<500 where steps.withLockedValue({ $0.isEmpty }) {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(steps.withLockedValue { $0 } == ["blocked"])

            // The handler still waits: the server shuts down anyway, and the client is told.
            try await server.shutdown()
            try await client.waitForClose()
            #expect(client.isClosed)

            // The handler resumes after the shutdown: its emit and its ack go nowhere, and nothing breaks.
            gate.open()
            for _ in 0..<500 where steps.withLockedValue({ $0.count }) < 2 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(steps.withLockedValue { $0 } == ["blocked", "resumed"])
            await client.close()
        } catch {
            gate.open()
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}
