import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayRedis

/// Sharded publishes in outbox mode (`RedisClusterPubSubConfiguration.outboxCapacity > 0`) against a real local
/// Redis Cluster: a stream of publishes to one room channel while its primary fails over (`CLUSTER FAILOVER` on the
/// replica) or is killed (SIGKILL, then failed over by the cluster after `cluster-node-timeout`).
@Suite(.serialized) struct RedisClusterShardedOutboxTests {
    let logger = Logger(label: "test.redis-cluster-sharded-outbox")

    /// What each publish of the stream was told, by sequence number.
    final class Outcomes: Sendable {
        private let box = NIOLockedValueBox<(told: [Int: [String]], receivers: [Int: Int])>(([:], [:]))

        func record(_ seq: Int, _ progress: PublishProgress) {
            self.box.withLockedValue { state in
                switch progress {
                case .published(let subscribers):
                    state.told[seq, default: []].append("published")
                    state.receivers[seq] = subscribers
                case .queued: state.told[seq, default: []].append("queued")
                case .failed(let error): state.told[seq, default: []].append("failed \(error.code)")
                }
            }
        }

        var told: [Int: [String]] { self.box.withLockedValue { $0.told } }
        var receivers: [Int: Int] { self.box.withLockedValue { $0.receivers } }
    }

    enum Failure: String, CustomStringConvertible {
        case manualFailover
        case killPrimary
        /// `killPrimary` on a cluster whose nodes speak TLS only (bus and replication too), reached over TLS.
        case killPrimaryOverTLS
        var description: String { self.rawValue }
    }

    /// 300 publishes, one per 10 ms, to a channel of the primary that fails at #100. Every publish is told exactly
    /// one outcome; none fails or is dropped (the outbox holds 10,000); every one told `.queued` (held while the
    /// primary was unreachable) and every one published to a subscriber arrives after the failover (bounded wait:
    /// 30 s). Prints the counts: published (to how many), queued, failed, and what never arrived.
    @Test(arguments: [Failure.manualFailover, .killPrimary, .killPrimaryOverTLS])
    func whatTheOutboxHeldIsDeliveredAfterTheFailover(_ failure: Failure) async throws {
        let certificates = failure == .killPrimaryOverTLS ? try await TestCertificates.make() : nil
        try await RedisClusterProcess.with(tls: certificates.map { .using($0) }) { cluster in
            let url = try RedisURL(parsing: cluster.urlString)
                .applyingTLSSettings(certificates.map { RedisTLSConfiguration(caFile: $0.caFile) })
            let channel = await RedisClusterShardedIntegrationTests.channels(spreadOver: cluster, perShard: 1)[0]
            let victim = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(channel)))
            let replica = try #require(await cluster.replica(of: victim))
            let recorder = MessageRecorder()
            let subscriber = RedisClusterPubSub(url: url, logger: self.logger) { recorder.record($0) }
            let publisher = RedisClusterPubSub(
                url: url,
                configuration: .init(outboxCapacity: 10_000, outboxSubscriberWait: .seconds(15)),
                logger: self.logger
            ) { _ in }
            #expect(publisher.isOutboxMode)
            subscriber.start()
            publisher.start()
            try await subscriber.subscribe([channel])

            let outcomes = Outcomes()
            let total = 300
            let failAt = 100
            for seq in 0..<total {
                if seq == failAt {
                    switch failure {
                    case .manualFailover: #expect(try await replica.cli(["CLUSTER", "FAILOVER"]) == "OK")
                    case .killPrimary, .killPrimaryOverTLS: await victim.crash()
                    }
                }
                publisher.publish(channel: channel, completion: { outcomes.record(seq, $0) }) {
                    $0.writeString("\(seq)")
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            let allTold = await eventually(limit: .seconds(30)) { outcomes.told.count == total }
            #expect(allTold, "\(total - outcomes.told.count) publishes were told nothing")
            let told = outcomes.told
            let receivers = outcomes.receivers
            let twice = told.filter { $0.value.count > 1 }
            #expect(twice.isEmpty, "publishes told more than once: \(twice)")
            let queued = Set(told.filter { $0.value == ["queued"] }.keys)
            let failed = told.filter { $0.value.contains { $0.hasPrefix("failed") } }
            let reached = Set(receivers.filter { $0.value > 0 }.keys)
            let unheard = Set(receivers.filter { $0.value == 0 }.keys)
            #expect(failed.isEmpty, "publishes failed: \(failed.sorted { $0.key < $1.key }.prefix(5))")
            let expected = queued.union(reached)
            let arrived = await recorder.wait(limit: .seconds(30)) { messages in
                expected.isSubset(of: Set(messages.compactMap { Int($0) }))
            }
            let received = Set(recorder.messages.compactMap { Int($0) })
            let missing = expected.subtracting(received).sorted()
            #expect(arrived, "held or published messages never arrived: \(missing.prefix(20))")
            if failure != .manualFailover {
                #expect(!queued.isEmpty, "nothing was held while the primary was dead")
            }
            let health = await publisher.health()
            print(
                "[sharded outbox: \(failure)] \(total) publishes, failure at #\(failAt): published to a subscriber "
                    + "\(reached.count), published to none \(unheard.count) \(Self.range(unheard)), queued "
                    + "\(queued.count) \(Self.range(queued)), failed \(failed.count); delivered \(received.count) "
                    + "distinct (\(recorder.count) in all), missing \(missing.count); dropped from outboxes "
                    + "\(health.droppedFromOutbox)"
            )
            #expect(health.droppedFromOutbox == 0)
            await publisher.shutdown()
            await subscriber.shutdown()
        }
    }

    /// A shutdown sends what the outboxes hold before it closes them: 200 publishes spread over the three
    /// primaries' channels, made just before `shutdown(deadline:)` while the outboxes are still connecting (so
    /// every one of them waits there), are all published to the subscriber and delivered, and the shutdown
    /// reports none unsent. (Before the drain they all failed with `.shutdown`.)
    @Test func shutdownSendsWhatTheOutboxesHold() async throws {
        try await RedisClusterProcess.with { cluster in
            let url = try cluster.url
            let channels = await RedisClusterShardedIntegrationTests.channels(spreadOver: cluster, perShard: 1)
            let recorder = MessageRecorder()
            let subscriber = RedisClusterPubSub(url: url, logger: self.logger) { recorder.record($0) }
            let publisher = RedisClusterPubSub(
                url: url,
                configuration: .init(outboxCapacity: 1000),
                logger: self.logger
            ) { _ in }
            subscriber.start()
            publisher.start()
            try await subscriber.subscribe(channels)
            let discovered = await eventually(limit: .seconds(10)) { publisher.currentHealth.primaries == 3 }
            #expect(discovered, "the publisher found no topology")
            let outcomes = Outcomes()
            let total = 200
            for seq in 0..<total {
                publisher.publish(channel: channels[seq % channels.count], completion: { outcomes.record(seq, $0) }) {
                    $0.writeString("\(seq)")
                }
            }
            let unsent = await publisher.shutdown(deadline: .now() + .seconds(10))
            #expect(unsent == 0)
            let told = outcomes.told
            #expect(told.count == total, "\(total - told.count) publishes were told nothing")
            let notPublished = told.filter { $0.value != ["published"] }
            #expect(notPublished.isEmpty, "\(notPublished.sorted { $0.key < $1.key }.prefix(5))")
            #expect(outcomes.receivers.values.allSatisfy { $0 == 1 })
            let arrived = await recorder.wait(limit: .seconds(10)) { Set($0.compactMap { Int($0) }).count == total }
            #expect(arrived, "\(total - Set(recorder.messages).count) messages never arrived")
            await subscriber.shutdown()
        }
    }

    /// What cannot be sent by the shutdown's deadline is reported: the primary owning a channel and its replica
    /// are killed (nothing can take the slot over), three publishes wait in its outbox (told `.queued`), and a
    /// shutdown given 1 s returns 3 unsent and logs them.
    @Test func shutdownReportsWhatItCouldNotSend() async throws {
        try await RedisClusterProcess.with { cluster in
            let url = try cluster.url
            let channel = await RedisClusterShardedIntegrationTests.channels(spreadOver: cluster, perShard: 1)[0]
            let owner = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(channel)))
            let replica = try #require(await cluster.replica(of: owner))
            let lines = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
            let logger = Logger(label: "test.sharded-outbox-shutdown") { _ in CapturingLogHandler(lines: lines) }
            let publisher = RedisClusterPubSub(
                url: url,
                configuration: .init(outboxCapacity: 1000),
                logger: logger
            ) { _ in }
            publisher.start()
            let discovered = await eventually(limit: .seconds(10)) { publisher.currentHealth.primaries == 3 }
            #expect(discovered, "the publisher found no topology")
            await replica.crash()
            await owner.crash()
            let outcomes = Outcomes()
            for seq in 0..<3 {
                publisher.publish(channel: channel, completion: { outcomes.record(seq, $0) }) {
                    $0.writeString("\(seq)")
                }
            }
            let queued = await eventually(limit: .seconds(10)) { outcomes.told.count == 3 }
            #expect(queued)
            #expect(outcomes.told.values.allSatisfy { $0 == ["queued"] }, "\(outcomes.told)")
            let unsent = await publisher.shutdown(deadline: .now() + .seconds(1))
            #expect(unsent == 3)
            let warning = lines.withLockedValue { $0 }.first { $0.message.contains("shut down with unsent messages") }
            #expect(warning?.level == .warning)
            #expect(warning?.metadata.contains("redis.unsent=3") == true, "\(String(describing: warning))")
            #expect(outcomes.told.values.allSatisfy { $0 == ["queued"] }, "told more after .queued")
        }
    }

    static func range(_ seqs: Set<Int>) -> String {
        guard let first = seqs.min(), let last = seqs.max() else { return "" }
        return "(#\(first)…#\(last))"
    }
}
