import Foundation
import Logging
import NIOCore
import NIOPosix
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayServer
import SocketGatewayWorker
import Testing

/// Servers and a worker in today's python-socketio format (classic PUBLISH/SUBSCRIBE), through a real local Redis
/// Cluster (3 primaries + 3 replicas) given as `redis+cluster://` seeds; then nodes fail during a stream of emits.
@Suite(.serialized) struct RedisClusterClassicTests {
    let base = ClusterTests()

    @Test func serversAndWorkerShareEmitsThroughTheCluster() async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = ClusterTests.channelName()
            let a = try await self.base.startNode(redisURL: cluster.urlString, channel: channel)
            let b = try await self.base.startNode(redisURL: cluster.urlString, channel: channel)
            let worker = WorkerSocketGateway(
                redisURL: cluster.urlString,
                channel: channel,
                logger: ClusterTests.logger()
            )
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                try await self.base.waitSubscribed([a, b])
                let (clientA, sidA) = try await self.base.connect(a, group: group)
                let (clientB, _) = try await self.base.connect(b, group: group)
                #expect(await worker.broadcast(event: "all", data: 1).outcome == .published)
                #expect(try await clientA.nextText() == #"42["all",1]"#)
                #expect(try await clientB.nextText() == #"42["all",1]"#)
                await b.server.gateway.emitToRoom(sidA, event: "direct", data: "from-b")
                #expect(try await clientA.nextText() == #"42["direct","from-b"]"#)
                #expect(await worker.emitToRoom(sidA, event: "w", data: 2).outcome == .published)
                #expect(try await clientA.nextText() == #"42["w",2]"#)
                #expect(clientB.hasNoPendingFrames())
                await clientA.close()
                await clientB.close()
            } catch {
                await worker.shutdown(timeout: .seconds(1))
                try? await a.server.shutdown()
                try? await b.server.shutdown()
                try? await group.shutdownGracefully()
                throw error
            }
            await worker.shutdown(timeout: .seconds(1))
            try await a.server.shutdown()
            try await b.server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    enum Failure: String, CustomStringConvertible {
        /// `CLUSTER FAILOVER` on the replica of the primary the server's subscription sits on (or of any primary).
        case manualFailover
        /// SIGKILL of the node the server's subscription sits on.
        case killSubscribedNode
        var description: String { self.rawValue }
    }

    /// A stream of worker emits (one every 10 ms) to a client of a server; mid-stream a node fails. Prints what was
    /// lost and how long until emits arrived again; asserts that they do, within a bounded wait.
    @Test(arguments: [Failure.manualFailover, .killSubscribedNode])
    func streamSurvivesANodeFailure(_ failure: Failure) async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = ClusterTests.channelName()
            let node = try await self.base.startNode(redisURL: cluster.urlString, channel: channel)
            let worker = WorkerSocketGateway(
                redisURL: cluster.urlString,
                channel: channel,
                logger: ClusterTests.logger()
            )
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                try await self.base.waitSubscribed([node])
                let (client, _) = try await self.base.connect(node, group: group)
                // The node holding the server's SUBSCRIBE (the worker holds no pub/sub connection).
                // (It subscribes the common channel and its cluster request and response channels: `sub=3`.)
                var subscribed: RedisServerProcess?
                for node in cluster.nodes where node.pid != nil {
                    let clients = (try? await node.cli(["CLIENT", "LIST", "TYPE", "pubsub"])) ?? ""
                    if clients.split(separator: "\n").contains(where: {
                        $0.contains(" sub=") && !$0.contains(" sub=0 ")
                    }) {
                        subscribed = node
                        break
                    }
                }
                let state = subscribed == nil ? await cluster.describeState() : ""
                let victim = try #require(subscribed, "no node holds the subscription: \(state)")
                let victimWasPrimary = await cluster.runningPrimaries.contains { $0.port == victim.port }

                let total = 300
                let failAt = 100
                var sentAt: [Int: ContinuousClock.Instant] = [:]
                var outcomes: [String: Int] = [:]
                var failedAt: ContinuousClock.Instant?
                let clock = ContinuousClock()
                for seq in 0..<total {
                    if seq == failAt {
                        failedAt = clock.now
                        try await self.fail(failure, victim: victim, cluster: cluster)
                    }
                    sentAt[seq] = clock.now
                    let outcome = await worker.broadcast(event: "tick", data: .int(Int64(seq))).outcome
                    outcomes["\(outcome)", default: 0] += 1
                    try await Task.sleep(for: .milliseconds(10))
                }
                // Then probes until one arrives (bounded: 30 s), so that recovery is asserted even if the whole
                // stream fell into the outage.
                var received: [Int: ContinuousClock.Instant] = [:]
                var recovered = false
                var probe = total
                let end = clock.now + .seconds(30)
                while clock.now < end && !recovered {
                    sentAt[probe] = clock.now
                    _ = await worker.broadcast(event: "tick", data: .int(Int64(probe)))
                    let deadline = clock.now + .milliseconds(500)
                    while clock.now < deadline {
                        guard let frame = try? await client.next(attempts: 5), case .text(let text) = frame else {
                            try? await Task.sleep(for: .milliseconds(10))
                            continue
                        }
                        guard let seq = Int(text.dropFirst(#"42["tick","#.count).dropLast()) else { continue }
                        received[seq] = clock.now
                        if seq >= total { recovered = true }
                    }
                    probe += 1
                }
                let clusterState = recovered ? "" : await cluster.describeState()
                #expect(recovered, "no emit arrived within 30 s of the failure: \(clusterState)")
                let lost = (0..<total).filter { received[$0] == nil }
                let firstAfter = (failAt..<probe).first { received[$0] != nil }
                var recovery: Duration?
                if let firstAfter, let sent = sentAt[firstAfter], let failedAt { recovery = sent - failedAt }
                let lostText = lost.count > 20 ? "#\(lost.first!)…#\(lost.last!)" : "\(lost)"
                let victimRole = victimWasPrimary ? "primary" : "replica"
                print(
                    "[cluster failover: \(failure)] victim 127.0.0.1:\(victim.port) (\(victimRole)); \(total) emits, "
                        + "failure at #\(failAt); worker outcomes \(outcomes); lost \(lost.count) \(lostText); first "
                        + "emit delivered after the failure: #\(firstAfter.map(String.init) ?? "none"), sent "
                        + "\(recovery.map { "\($0)" } ?? "?") after it"
                )
                await client.close()
            } catch {
                await worker.shutdown(timeout: .seconds(1))
                try? await node.server.shutdown()
                try? await group.shutdownGracefully()
                throw error
            }
            await worker.shutdown(timeout: .seconds(1))
            try await node.server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    private func fail(_ failure: Failure, victim: RedisServerProcess, cluster: RedisClusterProcess) async throws {
        switch failure {
        case .killSubscribedNode:
            await victim.crash()
        case .manualFailover:
            let primaries = await cluster.runningPrimaries
            let primary = primaries.contains { $0.port == victim.port } ? victim : primaries[0]
            let replica = try #require(await cluster.replica(of: primary), "no replica of \(primary.port)")
            let reply = try await replica.cli(["CLUSTER", "FAILOVER"])
            #expect(reply == "OK", "CLUSTER FAILOVER: \(reply)")
        }
    }
}
