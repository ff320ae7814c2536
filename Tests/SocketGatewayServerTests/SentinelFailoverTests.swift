import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayServer
import SocketGatewayWorker
import Testing

/// A clustered server and a worker on a `redis+sentinel://` URL while the primary fails over (forced with
/// `SENTINEL FAILOVER`, or killed with SIGKILL) in the middle of a stream of emits. Both end up on the new primary;
/// what was lost and how long the client saw nothing are printed, not asserted (they depend on timing).
@Suite(.serialized) struct SentinelFailoverTests {
    /// Arrival of each streamed emit (by its number) at the client.
    final class Arrivals: Sendable {
        private let box = NIOLockedValueBox<[(index: Int, at: ContinuousClock.Instant)]>([])
        func record(_ index: Int) { self.box.withLockedValue { $0.append((index, .now)) } }
        var indices: Set<Int> { Set(self.box.withLockedValue { $0.map(\.index) }) }
        /// The longest silence between two consecutive arrivals.
        var longestGap: Duration {
            let times = self.box.withLockedValue { $0.map(\.at) }
            return zip(times, times.dropFirst()).map { $1 - $0 }.max() ?? .zero
        }
    }

    enum Failure { case forced, primaryKilled }

    @Test func forcedFailoverDuringAStreamOfEmits() async throws {
        try await self.streamThroughFailover(.forced)
    }

    @Test func primaryKilledDuringAStreamOfEmits() async throws {
        try await self.streamThroughFailover(.primaryKilled)
    }

    func streamThroughFailover(_ failure: Failure) async throws {
        let setup = try await RedisSentinelSetup.start()
        let cluster = ClusterTests()
        let channel = ClusterTests.channelName()
        let node = try await cluster.startNode(redisURL: setup.urlString(), channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let worker = WorkerSocketGateway(
            redisURL: setup.urlString(),
            channel: channel,
            outboxCapacity: 10_000,
            emitTimeout: .milliseconds(200),
            logger: ClusterTests.logger()
        )
        do {
            try await cluster.waitSubscribed([node])
            let (client, _) = try await cluster.connect(node, group: group)
            let oldPrimary = try #require(await setup.primaryPort())
            let arrivals = Arrivals()
            let emits = 300
            let interval = Duration.milliseconds(20)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                // The client reads until the last emit (or the end marker) arrives; bounded by next()'s attempts.
                tasks.addTask {
                    while true {
                        guard case .text(let text) = try await client.next(attempts: 3000) else { continue }
                        if text == #"42["end",0]"# { return }
                        guard text.hasPrefix(#"42["n","#), let index = Int(text.dropFirst(7).dropLast(1)) else {
                            continue
                        }
                        arrivals.record(index)
                    }
                }
                var failedOverAt: ContinuousClock.Instant?
                let movedAfter = NIOLockedValueBox<Duration?>(nil)
                for index in 0..<emits {
                    if index == 50 {
                        let start = ContinuousClock.now
                        failedOverAt = start
                        switch failure {
                        case .forced: try await setup.forceFailover()
                        case .primaryKilled: try await setup.killPrimary()
                        }
                        // When the server's subscriber is on the new primary (reported, bounded: 60 s + 30 s).
                        tasks.addTask {
                            let port = try await setup.waitForNewPrimary(otherThan: oldPrimary)
                            let primary = try #require(setup.dataNode(port: port))
                            for _ in 0..<600 {
                                if (try? await primary.cli(["PUBSUB", "NUMSUB", channel]))?.hasSuffix("\n1") == true {
                                    movedAfter.withLockedValue { $0 = ContinuousClock.now - start }
                                    return
                                }
                                try await Task.sleep(for: .milliseconds(50))
                            }
                        }
                    }
                    _ = await worker.broadcast(event: "n", data: .int(Int64(index)))
                    try await Task.sleep(for: interval)
                }
                let newPrimary = try await setup.waitForNewPrimary(otherThan: oldPrimary)
                // After the failover both end up on the new primary: the server's subscriber is there, and an emit
                // published after it (retried in bounded steps while the worker reconnects) reaches the client.
                let primaryNode = try #require(setup.dataNode(port: newPrimary))
                var subscribed = false
                for _ in 0..<300 where !subscribed {
                    subscribed = (try? await primaryNode.cli(["PUBSUB", "NUMSUB", channel]))?.hasSuffix("\n1") == true
                    if !subscribed { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(subscribed, "the server's subscriber is not on the new primary \(newPrimary)")
                var ended = false
                for _ in 0..<100 where !ended {
                    ended = await worker.broadcast(event: "end", data: 0).outcome == .published
                    if !ended { try await Task.sleep(for: .milliseconds(100)) }
                }
                #expect(ended, "the worker could not publish to the new primary")
                try await tasks.waitForAll()
                let received = arrivals.indices
                let lost = (0..<emits).filter { !received.contains($0) }
                let sinceFailover = failedOverAt.map { ContinuousClock.now - $0 } ?? .zero
                print(
                    "sentinel \(failure == .forced ? "SENTINEL FAILOVER" : "primary SIGKILL"): \(emits) emits "
                        + "every \(interval), \(received.count) received, \(lost.count) lost \(Self.ranges(lost)); "
                        + "longest silence at the client \(arrivals.longestGap); primary \(oldPrimary) → "
                        + "\(newPrimary); subscriber on the new primary "
                        + "\(movedAfter.withLockedValue { $0 }.map { "\($0)" } ?? "never") after the failover; "
                        + "\(sinceFailover) from the failover to the end"
                )
                #expect(received.contains(emits - 1), "the last emit, sent after the failover, did not arrive")
                #expect(worker.status?.connected == true)
                #expect(node.server.clusterHealth.redisConnected == true)
            }
            await client.close()
        } catch {
            await worker.shutdown(timeout: .seconds(1))
            try? await node.server.shutdown()
            try? await group.shutdownGracefully()
            await setup.stop()
            throw error
        }
        await worker.shutdown(timeout: .seconds(1))
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await setup.stop()
    }

    /// `[3-7, 12]` for logs.
    static func ranges(_ indices: [Int]) -> String {
        var parts: [String] = []
        var start: Int?
        var previous = -2
        for index in indices {
            if index != previous + 1 {
                if let start { parts.append(start == previous ? "\(start)" : "\(start)-\(previous)") }
                start = index
            }
            previous = index
        }
        if let start { parts.append(start == previous ? "\(start)" : "\(start)-\(previous)") }
        return "[" + parts.joined(separator: ", ") + "]"
    }
}
