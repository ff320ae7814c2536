import Foundation
import Logging
import NIOCore
import NIOPosix
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayWorker
import Testing

@testable import SocketGatewayServer

/// Accepts a client whose CONNECT payload is `{"user":"<id>"}` as that user (room `user:<id>`).
private struct ClusterUserFromAuth: SocketAuthenticator {
    func authenticate(auth: JSONValue?, handshake: SocketHandshake) async -> AuthenticatedUser? {
        guard let user = auth?["user"]?.stringValue else { return nil }
        return AuthenticatedUser(id: user)
    }
}

/// Room channels (`SOCKET_REDIS_MODE=rooms`) on a real local Redis Cluster (3 primaries + 3 replicas): room
/// channels travel as sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE` on the shard that owns the channel's slot), the
/// common channel as classic pub/sub.
@Suite(.serialized) struct RoomChannelClusterTests {
    struct Node {
        let server: SocketServer
        let port: Int
    }

    func startNode(
        url: String,
        channel: String,
        unsubscribeDelay: Duration = .seconds(30),
        subscribeTimeout: Duration = .seconds(2)
    ) async throws -> Node {
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 2,
                redis: SocketServerRedisConfiguration(
                    url: url,
                    channel: channel,
                    mode: .rooms,
                    roomUnsubscribeDelay: unsubscribeDelay,
                    roomSubscribeTimeout: subscribeTimeout
                )
            ),
            authenticator: ClusterUserFromAuth(),
            logger: RoomChannelTests.logger()
        )
        try await server.start()
        for _ in 0..<500 where server.clusterHealth.redisConnected != true {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.clusterHealth.redisConnected == true)
        return Node(server: server, port: try #require(server.localPort))
    }

    func connect(
        _ node: Node,
        user: String,
        group: any EventLoopGroup,
        attempts: Int = 500
    ) async throws -> (TestWebSocketClient, String) {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(port: node.port, group: group)
        try await client.send(#"40{"user":"\#(user)"}"#)
        guard case .text(let reply) = try await client.next(attempts: attempts) else {
            throw TestClientError(description: "no CONNECT reply")
        }
        guard reply.hasPrefix("40{\"sid\":\"") else { throw TestClientError(description: "CONNECT reply: \(reply)") }
        return (client, String(reply.dropFirst(10).dropLast(2)))
    }

    func worker(_ cluster: RedisClusterProcess, channel: String) -> WorkerSocketGateway {
        WorkerSocketGateway(
            redisURL: cluster.urlString,
            channel: channel,
            mode: .rooms,
            logger: RoomChannelTests.logger()
        )
    }

    /// `PUBSUB SHARDNUMSUB <channel>` on `node`: its sharded subscribers there.
    /// - Throws: `TestClientError` when redis-cli's answer is not the channel and a count (e.g. it could not reach
    ///   the node), so that it is never taken for a count.
    func shardSubscribers(_ node: RedisServerProcess, _ channel: String) async throws -> Int {
        let output = try await node.cli(["PUBSUB", "SHARDNUMSUB", channel])
        let lines = output.split(separator: "\n")
        guard lines.count == 2, lines[0] == channel, let count = Int(lines[1]) else {
            throw TestClientError(description: "PUBSUB SHARDNUMSUB on \(node.port) answered: \(output)")
        }
        return count
    }

    /// Every sharded channel of `channel`'s layout subscribed anywhere in the cluster (`PUBSUB SHARDCHANNELS`
    /// on every running primary), sorted.
    func shardChannels(_ cluster: RedisClusterProcess, channel: String) async throws -> [String] {
        var channels: [String] = []
        for node in await cluster.runningPrimaries {
            channels += try await node.cli(["PUBSUB", "SHARDCHANNELS", "\(channel)#*"]).split(separator: "\n").map(
                String.init
            )
        }
        return channels.sorted()
    }

    /// Two servers and a worker in room-channel mode on the cluster; users connect to A only. An emit made the
    /// moment a client saw CONNECT reaches it (the join gate waits for the SSUBSCRIBE on the owning primary), with
    /// one sharded receiver; the owning primary counts exactly one sharded subscriber (A), B holds no sharded
    /// channel, and no node holds the room channel as a classic subscription. A server-side emit from B reaches
    /// A's client through the same sharded channel; a broadcast (common channel, classic) still reaches both.
    @Test func userEmitsTravelShardedToTheServerWithTheUserOnly() async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = RoomChannelTests.channelName()
            let a = try await self.startNode(url: cluster.urlString, channel: channel)
            let b = try await self.startNode(url: cluster.urlString, channel: channel)
            let worker = self.worker(cluster, channel: channel)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                var lost: [Int] = []
                var clients: [TestWebSocketClient] = []
                for index in 0..<12 {
                    let (client, _) = try await self.connect(a, user: "u\(index)", group: group)
                    let result = await worker.emitToUser("u\(index)", event: "hello", data: .int(Int64(index)))
                    #expect(result.outcome == .published, "\(result)")
                    if result.redisSubscribers != 1 { lost.append(index) }
                    #expect(try await client.nextText() == "42[\"hello\",\(index)]")
                    clients.append(client)
                }
                #expect(lost == [], "published while A's SSUBSCRIBE was not active")
                // Every user's channel has exactly one sharded subscriber, on the primary owning its slot.
                var owners: Set<Int> = []
                for index in 0..<12 {
                    let roomChannel = "\(channel)#/#user:u\(index)#"
                    let owner = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(roomChannel)))
                    owners.insert(owner.port)
                    #expect(try await self.shardSubscribers(owner, roomChannel) == 1, "\(roomChannel) on \(owner.port)")
                    for node in await cluster.runningPrimaries {
                        let classic = try await node.cli(["PUBSUB", "NUMSUB", roomChannel]).split(separator: "\n")
                        #expect(classic.last == "0", "\(roomChannel) subscribed classically on \(node.port)")
                    }
                }
                print("[room channels on a cluster] 12 user channels on \(owners.count) primaries")
                #expect(try await self.shardChannels(cluster, channel: channel).count == 12)
                #expect(a.server.clusterHealth.roomChannels == 12)
                #expect(b.server.clusterHealth.roomChannels == 0, "B subscribed a room channel")

                // B's server-side emit to A's user goes SPUBLISH; A's client gets it.
                let fromB = await b.server.gateway.emitToUser("u3", event: "fromB", data: true)
                #expect(fromB.outcome == .published, "\(fromB)")
                #expect(try await clients[3].nextText() == #"42["fromB",true]"#)

                // The common channel (classic PUBLISH) still reaches both servers.
                let (clientB, _) = try await self.connect(b, user: "other", group: group)
                #expect(await worker.broadcast(event: "all", data: 1).outcome == .published)
                #expect(try await clients[0].nextText() == #"42["all",1]"#)
                #expect(try await clientB.nextText() == #"42["all",1]"#)
                await clientB.close()
                for client in clients { await client.close() }
            } catch {
                Issue.record("\(error)")
            }
            await worker.shutdown(timeout: .seconds(1))
            try await a.server.shutdown()
            try await b.server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    /// The hysteresis holds on sharded channels: a user who comes back within the unsubscribe delay costs no new
    /// `SSUBSCRIBE` (the owning primary's command count); once the delay passes without members, the channel is
    /// gone from the owner (`SUNSUBSCRIBE`), an emit finds no receiver, and the user connecting again is
    /// subscribed again and reached by an emit made right after CONNECT.
    @Test func aShardedRoomChannelLingersForTheDelayThenGoes() async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = RoomChannelTests.channelName()
            let node = try await self.startNode(url: cluster.urlString, channel: channel, unsubscribeDelay: .seconds(1))
            let worker = self.worker(cluster, channel: channel)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                let roomChannel = "\(channel)#/#user:h#"
                let owner = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(roomChannel)))
                let (first, _) = try await self.connect(node, user: "h", group: group)
                #expect(try await self.shardSubscribers(owner, roomChannel) == 1)
                let ssubscribes = try await self.calls(owner, "ssubscribe")
                #expect(ssubscribes >= 1)
                await first.close()
                let (second, _) = try await self.connect(node, user: "h", group: group)
                #expect(try await self.calls(owner, "ssubscribe") == ssubscribes, "a new SSUBSCRIBE within the delay")
                #expect(try await self.shardSubscribers(owner, roomChannel) == 1)
                await second.close()

                // Bounded wait (the delay is 1 s): the channel is unsubscribed on its owner.
                let gone = try await self.waitUntil(limit: .seconds(20)) {
                    try await self.shardSubscribers(owner, roomChannel) == 0
                }
                if !gone {
                    // What the owner did with the (S)SUBSCRIBE commands (a rejected SUNSUBSCRIBE, e.g. a MOVED from a
                    // primary failed over by the 1 s node timeout under load, counts as rejected_calls, not calls),
                    // its role now, and what the server holds.
                    let stats = try await owner.cli(["INFO", "commandstats"]).split(whereSeparator: \.isNewline)
                        .filter { $0.contains("subscribe") }
                    let role = try await owner.cli(["ROLE"]).split(separator: "\n").first ?? ""
                    let health = node.server.clusterHealth
                    // Late or never: how much longer until it goes (bounded).
                    let clock = ContinuousClock()
                    let since = clock.now
                    let later = try await self.waitUntil(limit: .seconds(30)) {
                        try await self.shardSubscribers(owner, roomChannel) == 0
                    }
                    Issue.record(
                        """
                        still subscribed on \(owner.port) (role \(role)) after 20 s; \(stats); \(health); \
                        \(later ? "gone \(clock.now - since) later" : "still there 30 s later"); \
                        \(await cluster.describeState())
                        """
                    )
                }
                #expect(try await self.calls(owner, "sunsubscribe") >= 1)
                #expect(try await self.waitUntil(limit: .seconds(5)) { node.server.clusterHealth.roomChannels == 0 })
                #expect(await worker.emitToUser("h", event: "gone", data: true).redisSubscribers == 0)

                let (third, _) = try await self.connect(node, user: "h", group: group)
                let back = await worker.emitToUser("h", event: "back", data: true)
                #expect(back.redisSubscribers == 1, "\(back)")
                #expect(try await third.nextText() == #"42["back",true]"#)
                #expect(try await self.shardSubscribers(owner, roomChannel) == 1)
                await third.close()
            } catch {
                Issue.record("\(error)")
            }
            await worker.shutdown(timeout: .seconds(1))
            try await node.server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    /// Checks `condition` until it holds, every 50 ms, at most `limit` long and 400 times (each check may spawn a
    /// `redis-cli`); returns whether it held.
    func waitUntil(limit: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + limit
        var checks = 0
        while clock.now < end, checks < 400 {
            if try await condition() { return true }
            checks += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    /// How many times `node` ran `command` (`INFO commandstats`), 0 before the first.
    /// - Throws: `TestClientError` when redis-cli's answer is not the command statistics.
    func calls(_ node: RedisServerProcess, _ command: String) async throws -> Int {
        let stats = try await node.cli(["INFO", "commandstats"])
        guard stats.hasPrefix("# Commandstats") else {
            throw TestClientError(description: "INFO commandstats on \(node.port) answered: \(stats.prefix(500))")
        }
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }),
            let calls = line.split(separator: "=").dropFirst().first?.split(separator: ",").first
        else { return 0 }
        return Int(calls) ?? 0
    }

    enum ShardFailure: String, CustomStringConvertible {
        /// `CLUSTER FAILOVER` on the replica of the primary owning the user's channel.
        case manualFailover
        /// SIGKILL of that primary (its replica is elected after the node timeout).
        case killOwner
        var description: String { self.rawValue }
    }

    /// A worker emits to a user every 10 ms; mid-stream the primary owning the user's channel fails over. Prints
    /// what was lost, the worker's outcomes (a sharded emit no primary takes fails with its reason) and how long
    /// until emits arrived again; asserts that they do within a bounded wait, and that the channel ends with one
    /// sharded subscriber on its new owner (the former replica).
    @Test(arguments: [ShardFailure.manualFailover, .killOwner])
    func userEmitsResumeAfterTheOwningShardFailsOver(_ failure: ShardFailure) async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = RoomChannelTests.channelName()
            let node = try await self.startNode(url: cluster.urlString, channel: channel)
            let worker = self.worker(cluster, channel: channel)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                let (client, _) = try await self.connect(node, user: "f", group: group)
                let roomChannel = "\(channel)#/#user:f#"
                let slot = RedisClusterSlot.of(roomChannel)
                let owner = try #require(await cluster.primary(forSlot: slot))
                let replica = try #require(await cluster.replica(of: owner), "no replica of \(owner.port)")

                let total = 300
                let failAt = 100
                let clock = ContinuousClock()
                var sentAt: [Int: ContinuousClock.Instant] = [:]
                var outcomes: [String: Int] = [:]
                var failedAt: ContinuousClock.Instant?
                var firstFailure: String?
                for seq in 0..<total {
                    if seq == failAt {
                        failedAt = clock.now
                        switch failure {
                        case .manualFailover:
                            let reply = try await replica.cli(["CLUSTER", "FAILOVER"])
                            #expect(reply == "OK", "CLUSTER FAILOVER: \(reply)")
                        case .killOwner:
                            await owner.crash()
                        }
                    }
                    sentAt[seq] = clock.now
                    let result = await worker.emitToUser("f", event: "tick", data: .int(Int64(seq)))
                    outcomes["\(result.outcome)", default: 0] += 1
                    if result.outcome == .failed, firstFailure == nil {
                        firstFailure = result.reason ?? "no reason"
                        #expect(result.reason != nil, "a failed sharded emit says why")
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                // Then probes until one arrives (bounded: 30 s).
                var received: [Int: ContinuousClock.Instant] = [:]
                var recovered = false
                var probe = total
                let end = clock.now + .seconds(30)
                while clock.now < end && !recovered {
                    sentAt[probe] = clock.now
                    _ = await worker.emitToUser("f", event: "tick", data: .int(Int64(probe)))
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
                let state = recovered ? "" : await cluster.describeState()
                #expect(recovered, "no emit arrived within 30 s of the failover: \(state)")
                let lost = (0..<total).filter { received[$0] == nil }
                let firstAfter = (failAt..<probe).first { received[$0] != nil && !lost.isEmpty && $0 > lost[0] }
                var recovery: Duration?
                if let firstAfter, let sent = sentAt[firstAfter], let failedAt { recovery = sent - failedAt }
                let lostText = lost.count > 20 ? "#\(lost.first!)…#\(lost.last!)" : "\(lost)"
                print(
                    "[room channel failover: \(failure)] owner 127.0.0.1:\(owner.port) -> replica "
                        + "127.0.0.1:\(replica.port); \(total) emits, failure at #\(failAt); worker outcomes \(outcomes)"
                        + (firstFailure.map { " (first failure: \($0))" } ?? "") + "; lost \(lost.count) "
                        + "\(lostText); first emit delivered after the gap: "
                        + "#\(firstAfter.map(String.init) ?? "none (no gap)"), sent "
                        + "\(recovery.map { "\($0)" } ?? "-") after the failover"
                )
                // The subscription followed the slot to its new owner: one sharded subscriber there.
                var newOwner: RedisServerProcess?
                for _ in 0..<100 {
                    newOwner = await cluster.primary(forSlot: slot)
                    if let newOwner, (try? await self.shardSubscribers(newOwner, roomChannel)) == 1 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let finalOwner = try #require(newOwner)
                #expect(finalOwner.port == replica.port, "the slot is owned by \(finalOwner.port)")
                #expect(try await self.shardSubscribers(finalOwner, roomChannel) == 1)
                await client.close()
            } catch {
                Issue.record("\(error)")
            }
            await worker.shutdown(timeout: .seconds(1))
            try await node.server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    /// A join to a room whose channel is already active waits while the shard that owns the channel fails over:
    /// one tab of user `g` is connected; the primary owning `user:g`'s channel is killed; once the server saw its
    /// sharded subscription stop, a second tab of `g` connects. Its CONNECT reply comes only once the channel is
    /// subscribed on the elected replica (the sharded client has no pending channel when the reply is read;
    /// before this gate the reply came at once, the channel still pending), and a worker's emit sent right after
    /// the reply reaches that tab.
    @Test func aJoinToAnActiveRoomWaitsForItsChannelAfterAFailover() async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = RoomChannelTests.channelName()
            let node = try await self.startNode(
                url: cluster.urlString,
                channel: channel,
                subscribeTimeout: .seconds(30)
            )
            // Started after the failover, so that it finds the new owner at once.
            var worker: WorkerSocketGateway?
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                let sharded = try #require((node.server.gateway.cluster as? RedisClusterAdapter)?.channel.sharded)
                let (first, _) = try await self.connect(node, user: "g", group: group)
                let roomChannel = "\(channel)#/#user:g#"
                let owner = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(roomChannel)))
                for _ in 0..<100 where await sharded.health().activeChannels != 1 {
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(await sharded.health().activeChannels == 1)
                await owner.crash()
                // The server sees the subscription stop (its connection to the owner is reset at once).
                for _ in 0..<500 where await sharded.health().pendingChannels != 1 {
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(await sharded.health().pendingChannels == 1)
                let clock = ContinuousClock()
                let started = clock.now
                let (second, _) = try await self.connect(node, user: "g", group: group, attempts: 3000)
                let waited = clock.now - started
                let after = await sharded.health()
                #expect(after.pendingChannels == 0, "the CONNECT reply came before the channel was back: \(after)")
                #expect(after.activeChannels == 1)
                worker = self.worker(cluster, channel: channel)
                let result = try await #require(worker).emitToUser("g", event: "after", data: true)
                #expect(result.outcome == .published, "\(result)")
                #expect(result.redisSubscribers == 1)
                var received = false
                for _ in 0..<3 {
                    let text = try await second.nextText()
                    if text == #"42["after",true]"# {
                        received = true
                        break
                    }
                }
                #expect(received, "the emit sent after the CONNECT reply did not reach the new tab")
                print("[join gate during a failover] the second tab's CONNECT reply waited \(waited)")
                await first.close()
                await second.close()
            } catch {
                Issue.record("\(error); \(await cluster.describeState())")
            }
            await worker?.shutdown(timeout: .seconds(1))
            try await node.server.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
