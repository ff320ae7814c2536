import Foundation
import Logging
import NIOCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayRedis

/// Sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`) through `RedisClusterPubSub` against a real local Redis Cluster.
@Suite(.serialized) struct RedisClusterShardedIntegrationTests {
    let logger = Logger(label: "test.redis-cluster-sharded")

    /// Channels whose slots are served by each of the cluster's primaries (`perShard` each).
    static func channels(spreadOver cluster: RedisClusterProcess, perShard: Int) async -> [String] {
        var byPort: [Int: [String]] = [:]
        var index = 0
        while byPort.values.map(\.count).reduce(0, +) < perShard * 3 && index < 100_000 {
            let name = "socketio#/#room-\(index)#"
            index += 1
            guard let owner = await cluster.primary(forSlot: RedisClusterSlot.of(name)),
                byPort[owner.port, default: []].count < perShard
            else { continue }
            byPort[owner.port, default: []].append(name)
        }
        return byPort.values.flatMap { $0 }.sorted()
    }

    @Test func publishAndSubscribeAcrossTheThreeShards() async throws {
        try await RedisClusterProcess.with { cluster in
            let url = try cluster.url
            let channels = await Self.channels(spreadOver: cluster, perShard: 3)
            #expect(Set(channels.map { RedisClusterSlot.of($0) }).count == 9)
            let recorder = MessageRecorder()
            // Pinged after 200 ms of silence: the liveness check must not disturb the subscriptions.
            let subscriber = RedisClusterPubSub(
                url: url,
                configuration: .init(pingInterval: .milliseconds(200), pingTimeout: .seconds(2)),
                logger: self.logger
            ) { recorder.record($0) }
            let publisher = RedisClusterPubSub(url: url, logger: self.logger) { _ in }
            subscriber.start()
            publisher.start()
            try await subscriber.subscribe(channels)
            try await Task.sleep(for: .seconds(1))
            let health = await subscriber.health()
            #expect(health.primaries == 3)
            #expect(health.subscriptionConnections == 3)
            #expect(health.wantedChannels == 9)
            #expect(health.activeChannels == 9)
            #expect(health.connectionsUp == 3)
            #expect(health.connectionsDown == 0)
            #expect(health.pendingChannels == 0)
            #expect(health.topologyRefreshes >= 1)
            #expect(health.lastError == nil)
            #expect(!health.readingPaused)
            #expect(subscriber.currentHealth.activeChannels == 9, "the snapshot, read without waiting")
            // Every shard's primary holds three of our sharded subscriptions.
            for primary in await cluster.runningPrimaries {
                let counted = try await primary.cli(["PUBSUB", "SHARDNUMSUB"] + channels)
                let numbers = counted.split(whereSeparator: \.isNewline).enumerated().filter { $0.offset % 2 == 1 }
                #expect(numbers.map { Int($0.element) ?? 0 }.reduce(0, +) == 3, "\(primary.port): \(counted)")
            }
            for channel in channels {
                #expect(try await publisher.publish(channel: channel, payload: ByteBuffer(string: channel)) == 1)
            }
            #expect(await recorder.wait { Set($0) == Set(channels) && $0.count == channels.count })

            // Unsubscribing half: their publishes reach nobody, the others still arrive.
            let dropped = Array(channels.prefix(4))
            try await subscriber.unsubscribe(dropped)
            for channel in dropped {
                #expect(try await publisher.publish(channel: channel, payload: ByteBuffer(string: "late")) == 0)
            }
            #expect(try await publisher.publish(channel: channels[5], payload: ByteBuffer(string: "still")) == 1)
            #expect(await recorder.wait { $0.last == "still" })
            #expect(!recorder.messages.contains("late"))
            await publisher.shutdown()
            await subscriber.shutdown()
        }
    }

    /// A slot migrated by hand (`CLUSTER SETSLOT … IMPORTING/MIGRATING`, then `NODE`): publishes keep working
    /// during the migration, the subscription gets Redis 7's `sunsubscribe` and moves to the new owner, and a
    /// publisher with the old map follows `MOVED` there.
    @Test func aMigratedSlotMovesPublishesAndSubscriptions() async throws {
        try await RedisClusterProcess.with { cluster in
            let url = try cluster.url
            let channel = "socketio#/#migrating#"
            let slot = RedisClusterSlot.of(channel)
            let source = try #require(await cluster.primary(forSlot: slot))
            let target = try #require(await cluster.runningPrimaries.first { $0.port != source.port })
            let sourceID = try await source.cli(["CLUSTER", "MYID"])
            let targetID = try await target.cli(["CLUSTER", "MYID"])

            let recorder = MessageRecorder()
            let subscriber = RedisClusterPubSub(url: url, logger: self.logger) { recorder.record($0) }
            let publisher = RedisClusterPubSub(url: url, logger: self.logger) { _ in }
            subscriber.start()
            publisher.start()
            try await subscriber.subscribe([channel])
            #expect(try await publisher.publish(channel: channel, payload: ByteBuffer(string: "before")) == 1)
            #expect(await recorder.wait { $0 == ["before"] })

            #expect(try await target.cli(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID]) == "OK")
            #expect(try await source.cli(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID]) == "OK")
            // Redis 7.0 serves a sharded channel of a migrating slot on the source (channels are not keys that could
            // be missing, so no ASK): the publish still reaches the subscriber.
            #expect(try await publisher.publish(channel: channel, payload: ByteBuffer(string: "during")) == 1)

            let others = await cluster.runningPrimaries.filter { $0.port != source.port && $0.port != target.port }
            for node in [target, source] + others {
                #expect(try await node.cli(["CLUSTER", "SETSLOT", String(slot), "NODE", targetID]) == "OK")
            }
            // The subscriber follows the channel to the target (bounded: 20 s); the publisher's stale map gets MOVED.
            var delivered = false
            for attempt in 0..<200 where !delivered {
                let text = "after-\(attempt)"
                let receivers = try await publisher.publish(channel: channel, payload: ByteBuffer(string: text))
                if receivers == 1 { delivered = await recorder.wait(limit: .seconds(2)) { $0.last == text } }
                if !delivered { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(delivered)
            let onTarget = try await target.cli(["PUBSUB", "SHARDNUMSUB", channel])
            #expect(onTarget.hasSuffix("1"), "target: \(onTarget)")
            #expect(try await source.cli(["PUBSUB", "SHARDNUMSUB", channel]).hasSuffix("0"))
            await publisher.shutdown()
            await subscriber.shutdown()
        }
    }

    enum Failure: String, CustomStringConvertible {
        case manualFailover
        case killPrimary
        var description: String { self.rawValue }
    }

    /// A stream of SPUBLISH to channels on every shard (one per 10 ms); mid-stream the primary of the first
    /// channel fails over (`CLUSTER FAILOVER` on its replica) or is killed. Prints what was lost and how long until
    /// its channel delivered again; asserts that it does, within a bounded wait.
    @Test(arguments: [Failure.manualFailover, .killPrimary])
    func shardedStreamSurvivesAFailover(_ failure: Failure) async throws {
        try await RedisClusterProcess.with { cluster in
            let url = try cluster.url
            let channels = await Self.channels(spreadOver: cluster, perShard: 1)
            let victimChannel = channels[0]
            let victim = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(victimChannel)))
            let replica = try #require(await cluster.replica(of: victim))
            let recorder = MessageRecorder()
            let subscriber = RedisClusterPubSub(url: url, logger: self.logger) { recorder.record($0) }
            let publisher = RedisClusterPubSub(
                url: url,
                configuration: .init(publishTimeout: .seconds(1)),
                logger: self.logger
            ) { _ in }
            subscriber.start()
            publisher.start()
            try await subscriber.subscribe(channels)

            let clock = ContinuousClock()
            let streamEnd = clock.now + .seconds(30)
            let total = 300
            let failAt = 100
            var failedAt: ContinuousClock.Instant?
            var sentAt: [Int: ContinuousClock.Instant] = [:]
            var publishErrors = 0
            for seq in 0..<total where clock.now < streamEnd {
                if seq == failAt {
                    failedAt = clock.now
                    switch failure {
                    case .manualFailover: #expect(try await replica.cli(["CLUSTER", "FAILOVER"]) == "OK")
                    case .killPrimary: await victim.crash()
                    }
                }
                sentAt[seq] = clock.now
                for (index, channel) in channels.enumerated() {
                    do {
                        try await publisher.publish(channel: channel, payload: ByteBuffer(string: "\(index):\(seq)"))
                    } catch {
                        publishErrors += 1
                    }
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            // Then probes on the victim's channel until one arrives (bounded: 30 s).
            var probe = total
            var recovered = false
            let end = clock.now + .seconds(30)
            while clock.now < end && !recovered {
                let text = "0:\(probe)"
                _ = try? await publisher.publish(channel: victimChannel, payload: ByteBuffer(string: text))
                recovered = await recorder.wait(limit: .milliseconds(200)) { $0.contains(text) }
                probe += 1
            }
            let seen = try await subscriber.eventLoop.submit { subscriber.router.topology?.primaries ?? [] }.get()
            let state = recovered ? "" : await cluster.describeState()
            #expect(recovered, "the failed shard's channel never delivered again: \(state); the client sees \(seen)")
            // Per channel (0 is the failed shard's), the seqs of the stream that did not arrive.
            let received = Set(recorder.messages)
            let lost = channels.indices.map { index in (0..<total).filter { !received.contains("\(index):\($0)") } }
            let firstBack = (failAt..<total).first { received.contains("0:\($0)") }
            var recovery = "not within the stream"
            if let firstBack, let sent = sentAt[firstBack], let failedAt { recovery = "\(sent - failedAt)" }
            let lostText = lost.map { $0.isEmpty ? "0" : "\($0.count) (#\($0.first!)…#\($0.last!))" }
            print(
                "[sharded failover: \(failure)] primary 127.0.0.1:\(victim.port), replica 127.0.0.1:\(replica.port); "
                    + "\(total) rounds × \(channels.count) channels (one per shard), failure at #\(failAt); "
                    + "publish errors \(publishErrors); lost per channel, the failed shard's first: "
                    + "\(lostText.joined(separator: ", ")); its channel delivered again from an emit sent "
                    + "\(recovery) after the failure"
            )
            await publisher.shutdown()
            await subscriber.shutdown()
        }
    }
}

@Suite struct RedisClusterPubSubMisconfigurationTests {
    /// Seeds that are a standalone Redis (no cluster support) never yield a topology: a publish fails with
    /// `.timeout` at `publishTimeout` instead of waiting forever, and a subscription is not confirmed.
    @Test func aStandaloneServerFailsInTime() async throws {
        let redis = try await RedisServerProcess.start()
        let url = RedisURL(endpoint: .cluster(seeds: [.init(host: "127.0.0.1", port: redis.port)]))
        let pubsub = RedisClusterPubSub(
            url: url,
            configuration: .init(publishTimeout: .milliseconds(500)),
            logger: Logger(label: "test.redis-cluster-misconfigured")
        ) { _ in }
        pubsub.start()
        do {
            try await pubsub.publish(channel: "c", payload: ByteBuffer(string: "x"))
            Issue.record("a publish to a standalone server succeeded")
        } catch {
            #expect(error.code == .timeout)
            #expect(error.message.contains("no primary took SPUBLISH"), "\(error)")
        }
        do {
            try await pubsub.subscribe(["c"], timeout: .milliseconds(300))
            Issue.record("a subscription on a standalone server was confirmed")
        } catch {
            #expect(error.code == .timeout)
        }
        #expect(await pubsub.health().primaries == 0)
        await pubsub.shutdown()
        await redis.stop()
    }
}
