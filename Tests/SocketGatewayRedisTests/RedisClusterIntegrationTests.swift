import Foundation
import Logging
import NIOCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// Against a real local Redis Cluster (3 primaries + 3 replicas started by the test kit).
@Suite(.serialized) struct RedisClusterIntegrationTests {
    let logger = Logger(label: "test.redis-cluster")

    /// The test kit's cluster is healthy; our key slots are the cluster's own (`CLUSTER KEYSLOT`), hash tags and
    /// edge cases included; `CLUSTER SHARDS` and `CLUSTER SLOTS` from a real node parse into the topology the nodes
    /// report about themselves.
    @Test func slotsAndTopologyMatchTheRealCluster() async throws {
        try await RedisClusterProcess.with { cluster in
            #expect(await cluster.runningPrimaries.count == 3)
            #expect(await cluster.runningReplicas.count == 3)

            var keys = ["", "foo", "{foo}bar", "foo{}{bar}", "foo{{bar}}zap", "foo{bar", "}{a}", "{é}x", "socketio"]
            keys += (0..<200).map { "socketio#/#room-\($0)#" }
            keys += (0..<50).map { _ in UUID().uuidString }
            let node = cluster.nodes[0]
            for key in keys {
                let expected = try await node.cli(["CLUSTER", "KEYSLOT", key])
                #expect(String(RedisClusterSlot.of(key)) == expected, "slot of '\(key)'")
            }

            let client = RedisCommandClient(url: node.url, logger: self.logger)
            let replying = RedisClusterAddress(host: "127.0.0.1", port: node.port)
            let shards = try RedisClusterTopology.parse(
                shards: try await client.send(["CLUSTER", "SHARDS"]),
                from: replying
            )
            let slots = try RedisClusterTopology.parse(
                slots: try await client.send(["CLUSTER", "SLOTS"]),
                from: replying
            )
            await client.shutdown()
            #expect(shards.coversAllSlots)
            #expect(shards.shards.count == 3)
            #expect(Set(shards.allNodes.map(\.port)) == Set(cluster.nodes.map(\.port)))
            for slot in [0, 1, 5460, 5461, 8000, 10922, 10923, 16383] {
                let owner = try #require(await cluster.primary(forSlot: slot))
                #expect(shards.primary(forSlot: slot) == RedisClusterAddress(host: "127.0.0.1", port: owner.port))
            }
            for slot in 0..<RedisClusterSlot.count {
                #expect(shards.primary(forSlot: slot) == slots.primary(forSlot: slot))
            }
        }
    }

    /// Classic pub/sub on a cluster: a publisher and a subscriber given every node as seeds each connect to one
    /// of them, and PUBLISH reaches the subscriber wherever both landed (the cluster bus carries it).
    @Test func classicPublishSubscribeThroughSeeds() async throws {
        try await RedisClusterProcess.with { cluster in
            let url = try cluster.url
            let recorder = MessageRecorder()
            // Several subscribers, so that (seeds being picked at random) they most likely sit on different nodes.
            var subscribers: [RedisSubscriber] = []
            for _ in 0..<4 {
                let subscriber = RedisSubscriber(url: url, channels: ["socketio"], logger: self.logger) {
                    recorder.record($0)
                }
                subscriber.start()
                #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
                subscribers.append(subscriber)
            }
            let publisher = RedisPublisher(url: url, logger: self.logger)
            // PUBLISH answers the number of subscribers on the node that received it; the others get it by the bus.
            _ = try await publisher.publish(ByteBuffer(string: "one"))
            #expect(await recorder.wait { $0.count == 4 })
            #expect(recorder.messages == ["one", "one", "one", "one"])
            await publisher.shutdown()
            for subscriber in subscribers { await subscriber.shutdown() }
        }
    }
}
