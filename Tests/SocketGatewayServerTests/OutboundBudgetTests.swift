import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import Testing

@testable import SocketGatewayEngineIO
@testable import SocketGatewayServer

/// The process-wide bound on bytes waiting for clients: the clients holding the most are shed first, the others
/// keep receiving everything.
@Suite(.serialized) struct OutboundBudgetTests {
    @Test func decidesToShedTheLargestFirstUntilUnderNinetyPercent() {
        let budget = EngineIOOutboundBudget(maxBytes: 1000)
        #expect(budget.decide([]) == .init(total: 0, shed: []))
        #expect(budget.decide([400, 600]) == .init(total: 1000, shed: []), "at the budget: nothing to do")
        // 1,300 over 1,000: the largest (600) brings it to 700, under 900.
        #expect(budget.decide([300, 600, 0, 400]) == .init(total: 1300, shed: [1]))
        // Many equal ones: as few as needed.
        #expect(budget.decide(Array(repeating: 100, count: 15)).shed.count == 6)
        // Sessions holding nothing are never closed, even when the total cannot get under the target otherwise.
        #expect(EngineIOOutboundBudget(maxBytes: 0).decide([0, 5, 0]).shed == [1])
        #expect(EngineIOOutboundBudget.machineDefault >= 64 << 20 && EngineIOOutboundBudget.machineDefault <= 4 << 30)
    }

    @Test func clientsThatNeverReadAreShedAndTheOthersGetEverything() async throws {
        var configuration = SocketServerConfiguration(
            port: 0,
            // Per client far above what the test sends: only the budget can close anyone.
            maxBufferedBytesPerConnection: 256 << 20,
            eventLoopThreads: 2
        ).anonymous
        configuration.maxBufferedBytesTotal = 2 << 20
        var logger = Logger(label: "socket-gateway.budget-test")
        logger.logLevel = .critical
        let server = SocketServer(configuration: configuration, logger: logger)
        let disconnected = NIOLockedValueBox<[String]>([])
        server.namespace("/").onDisconnect { connection, reason in
            disconnected.withLockedValue { $0.append("\(connection.id) \(reason)") }
        }
        try await server.start()
        let port = try #require(server.localPort)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let reader = try await Self.connect(port: port, group: group, receiveBufferSize: nil)
            var stalled: [TestWebSocketClient] = []
            for _ in 0..<3 {
                let client = try await Self.connect(port: port, group: group, receiveBufferSize: 4096)
                try await client.stopReading()
                stalled.append(client)
            }
            let payload = String(repeating: "x", count: 256 << 10)
            let broadcasts = 24  // 6 MiB for each client, 18 MiB for the three that never read
            for index in 0..<broadcasts {
                let data: JSONValue = .array([.int(Int64(index)), .string(payload)])
                await server.gateway.broadcast(event: "big", data: data)
                #expect(try await reader.nextText().hasPrefix(#"42["big",[\#(index),"xxx"#))
            }
            for _ in 0..<1000 where disconnected.withLockedValue({ $0.count }) < 3 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(disconnected.withLockedValue { $0.count } == 3, "\(disconnected.withLockedValue { $0 })")
            // What the shed clients held is released: the next checks find the total back under the budget.
            for _ in 0..<1000 where server.bufferedBytes >= 2 << 20 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(server.bufferedBytes < 2 << 20, "\(server.bufferedBytes) bytes still waiting")
            // The reader is still connected and still gets what is sent.
            await server.gateway.broadcast(event: "after", data: true)
            #expect(try await reader.nextText() == #"42["after",true]"#)
            await reader.close()
            for client in stalled { await client.close() }
        } catch {
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    static func connect(
        port: Int,
        group: any EventLoopGroup,
        receiveBufferSize: Int?
    ) async throws
        -> TestWebSocketClient
    {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(
            port: port,
            group: group,
            receiveBufferSize: receiveBufferSize
        )
        try await client.send("40")
        #expect(try await client.nextText().hasPrefix("40{\"sid\":\""))
        return client
    }
}
