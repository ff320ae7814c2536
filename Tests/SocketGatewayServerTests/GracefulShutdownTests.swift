import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import SocketGatewayCore
import SocketGatewayServer
import Testing

/// Graceful shutdown with handlers running: every task the server started is a child of its `run()` (or of the
/// task `start()` makes), so shutdown stops accepting, lets handlers finish within `shutdownGracePeriod`, cancels
/// what is left, and returns only once they have all ended. Assertions are on the order of what happened
/// (recorded by the handlers and the test), not on how long anything took.
@Suite(.serialized) struct GracefulShutdownTests {
    /// What the handlers and the test did, in order.
    final class Steps: Sendable {
        private let box = NIOLockedValueBox<[String]>([])
        func append(_ step: String) { self.box.withLockedValue { $0.append(step) } }
        var all: [String] { self.box.withLockedValue { $0 } }

        /// Waits (bounded) until `count` steps were recorded.
        func wait(for count: Int) async throws {
            for _ in 0..<1000 where self.all.count < count {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    static func makeServer(gracePeriod: Duration) -> SocketServer {
        var logger = Logger(label: "socket-gateway.shutdown-test")
        logger.logLevel = .critical
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 2).anonymous
        configuration.shutdownGracePeriod = gracePeriod
        return SocketServer(configuration: configuration, logger: logger)
    }

    /// Runs `server` in a ServiceGroup, connects a client to `/`, sends it `event`, then calls `body` with the
    /// group and the client; returns once the group's run() has returned (`run returned` is the last step).
    static func withRunningServer(
        _ server: SocketServer,
        steps: Steps,
        sending event: String,
        _ body: (ServiceGroup, TestWebSocketClient) async throws -> Void
    ) async throws {
        var logger = Logger(label: "socket-gateway.shutdown-test")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [server], logger: logger)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await group.run()
                steps.append("run returned")
            }
            do {
                var port: Int?
                for _ in 0..<500 {
                    port = server.localPort
                    if port != nil { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                let (client, _) = try await TestWebSocketClient.connectEngineIO(
                    port: try #require(port),
                    group: clients
                )
                try await client.send("40")
                #expect(try await client.nextText().hasPrefix("40{\"sid\":\""))
                try await client.send(event)
                try await body(group, client)
                try await tasks.waitForAll()
                await client.close()
            } catch {
                tasks.cancelAll()
                throw error
            }
        }
        try await clients.shutdownGracefully()
    }

    @Test func aHandlerRunningAtShutdownCompletesWithinTheGracePeriodBeforeRunReturns() async throws {
        let server = Self.makeServer(gracePeriod: .seconds(60))
        let gate = TestGate()
        let steps = Steps()
        server.namespace("/").on("block") { socket, _, ack in
            steps.append("blocked")
            await gate.wait()
            ack?(.string("late"))
            steps.append("resumed, cancelled: \(Task.isCancelled)")
        }
        server.namespace("/").onDisconnect { _, reason in
            steps.append("disconnected: \(reason)")
        }
        do {
            try await Self.withRunningServer(server, steps: steps, sending: #"421["block"]"#) { group, client in
                try await steps.wait(for: 1)
                await group.triggerGracefulShutdown()
                // Step 1 of the shutdown: the session is closed (the client is told) ...
                try await client.waitForClose()
                // ... but run() waits for the handler, which has not ended.
                #expect(steps.all == ["blocked"])
                gate.open()
            }
        } catch {
            gate.open()
            throw error
        }
        // The onDisconnect handler ran after the running handler (one at a time per connection), both before
        // run() returned.
        let all = steps.all
        #expect(all.count == 4, "\(all)")
        #expect(all.prefix(2) == ["blocked", "resumed, cancelled: false"])
        #expect(all.dropFirst(2).first?.hasPrefix("disconnected: ") == true)
        #expect(all.last == "run returned")
    }

    @Test func aHandlerThatNeverEndsIsCancelledAfterTheGracePeriodAndRunReturnsOnceItEnded() async throws {
        let server = Self.makeServer(gracePeriod: .milliseconds(100))
        let steps = Steps()
        server.namespace("/").on("forever") { socket, _, _ in
            steps.append("blocked")
            do {
                try await Task.sleep(for: .seconds(3600))
                steps.append("slept")
            } catch {
                steps.append("cancelled")
            }
            // Cleanup after the cancellation still runs on a live server, and finishes before run() returns.
            let rooms = await socket.rooms()
            steps.append("cleaned up (\(rooms.count) rooms)")
        }
        try await Self.withRunningServer(server, steps: steps, sending: #"42["forever"]"#) { group, client in
            try await steps.wait(for: 1)
            await group.triggerGracefulShutdown()
            try await client.waitForClose()
        }
        let all = steps.all
        #expect(all.first == "blocked")
        #expect(all.dropFirst().first == "cancelled")
        #expect(all.dropFirst(2).first?.hasPrefix("cleaned up") == true)
        #expect(all.last == "run returned")
        #expect(all.count == 4, "\(all)")
    }

    @Test func cancellingRunCancelsTheRunningHandlersAtOnceAndReturnsAfterThem() async throws {
        let server = Self.makeServer(gracePeriod: .seconds(3600))
        let steps = Steps()
        server.namespace("/").on("forever") { _, _, _ in
            steps.append("blocked")
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                steps.append("cancelled")
            }
        }
        var logger = Logger(label: "socket-gateway.shutdown-test")
        logger.logLevel = .critical
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await server.run()
                steps.append("run returned")
            }
            var port: Int?
            for _ in 0..<500 {
                port = server.localPort
                if port != nil { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: try #require(port), group: clients)
            try await client.send("40")
            _ = try await client.nextText()
            try await client.send(#"42["forever"]"#)
            try await steps.wait(for: 1)
            // Not a graceful shutdown: the hour-long grace period does not apply.
            tasks.cancelAll()
            try await tasks.waitForAll()
            await client.close()
        }
        try await clients.shutdownGracefully()
        #expect(steps.all == ["blocked", "cancelled", "run returned"])
    }

    @Test func shutdownWithoutRunWaitsForTheRunningHandlerToo() async throws {
        let server = Self.makeServer(gracePeriod: .seconds(60))
        let gate = TestGate()
        let steps = Steps()
        server.namespace("/").on("block") { socket, _, ack in
            steps.append("blocked")
            await gate.wait()
            // The session is closed by now: the emit and the ack go nowhere, harmlessly.
            socket.emit("after", .bool(true))
            ack?(.string("late"))
            steps.append("resumed")
        }
        try await server.start()
        let port = try #require(server.localPort)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: clients)
            try await client.send("40")
            #expect(try await client.nextText().hasPrefix("40{\"sid\":\""))
            try await client.send(#"421["block"]"#)
            try await steps.wait(for: 1)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    try await server.shutdown()
                    steps.append("shutdown returned")
                }
                try await client.waitForClose()
                #expect(steps.all == ["blocked"])
                gate.open()
                try await tasks.waitForAll()
            }
            #expect(steps.all == ["blocked", "resumed", "shutdown returned"])
            await client.close()
        } catch {
            gate.open()
            try? await server.shutdown()
            try? await clients.shutdownGracefully()
            throw error
        }
        try await clients.shutdownGracefully()
    }
}
