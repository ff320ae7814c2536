import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayWorker
import Testing

@testable import SocketGatewayServer

/// Accepts a client whose CONNECT payload is `{"user":"<id>"}` as that user (room `user:<id>`).
private struct HealthUserFromAuth: SocketAuthenticator {
    func authenticate(auth: JSONValue?, handshake: SocketHandshake) async -> AuthenticatedUser? {
        guard let user = auth?["user"]?.stringValue else { return nil }
        return AuthenticatedUser(id: user)
    }
}

/// Room channels on a real Redis Cluster (3 primaries + 3 replicas): the sharded subscription connections pause
/// with the classic one when the server falls behind, and `/healthz` reports them (`redis.sharded`).
@Suite(.serialized) struct RoomChannelClusterHealthTests {
    func startServer(
        url: String,
        channel: String,
        maxQueuedMessages: Int = 10_000,
        outboxCapacity: Int = 1000,
        logger: Logger = RoomChannelTests.logger()
    ) async throws -> SocketServer {
        var configuration = SocketServerConfiguration(
            port: 0,
            eventLoopThreads: 1,
            redis: SocketServerRedisConfiguration(
                url: url,
                channel: channel,
                outboxCapacity: outboxCapacity,
                maxQueuedMessagesPerLoop: maxQueuedMessages,
                mode: .rooms
            )
        )
        configuration.maxBufferedBytesPerConnection = 64 << 20
        let server = SocketServer(
            configuration: configuration,
            authenticator: HealthUserFromAuth(),
            logger: logger
        )
        try await server.start()
        for _ in 0..<500 where server.clusterHealth.redisConnected != true {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.clusterHealth.redisConnected == true)
        return server
    }

    func connect(_ server: SocketServer, user: String, group: any EventLoopGroup) async throws -> TestWebSocketClient {
        let port = try #require(server.localPort)
        let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
        try await client.send(#"40{"user":"\#(user)"}"#)
        let reply = try await client.nextText()
        guard reply.hasPrefix("40{\"sid\":\"") else { throw TestClientError(description: "CONNECT reply: \(reply)") }
        return client
    }

    /// The largest output buffer (`omem`) Redis holds for a sharded subscriber (`ssub` > 0) on `node`.
    func shardedOutputBuffer(_ node: RedisServerProcess) async throws -> Int {
        try await node.cli(["CLIENT", "LIST"]).split(whereSeparator: \.isNewline).compactMap { line -> Int? in
            var fields: [Substring: Substring] = [:]
            for pair in line.split(separator: " ") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[parts[0]] = parts[1] }
            }
            guard let ssub = fields["ssub"].flatMap({ Int($0) }), ssub > 0 else { return nil }
            return fields["omem"].flatMap { Int($0) }
        }.max() ?? 0
    }

    /// The server's only event loop is blocked while a worker floods its user's sharded channel (12 MB, more than
    /// the loopback socket buffers take): the sharded connection stops reading (`redis.sharded.reading_paused`),
    /// so the flood waits in the owning primary's output buffer for it (`omem`) instead of in the server (without
    /// the pause the server reads it all: `omem` stays 0); once the loop is free, reading resumes and every emit
    /// arrives, in order.
    @Test func shardedConnectionsPauseWithTheClassicOneAndResume() async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = RoomChannelTests.channelName()
            let server = try await self.startServer(url: cluster.urlString, channel: channel, maxQueuedMessages: 8)
            let worker = WorkerSocketGateway(
                redisURL: cluster.urlString,
                channel: channel,
                mode: .rooms,
                logger: RoomChannelTests.logger()
            )
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let blocker = DispatchSemaphore(value: 0)
            var blocked = false
            do {
                let client = try await self.connect(server, user: "p", group: group)
                let roomChannel = "\(channel)#/#user:p#"
                let owner = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(roomChannel)))
                #expect(server.clusterHealth.sharded?.readingPaused == false)
                let loop = try #require(server.gateway.shards.all.first).eventLoop
                loop.execute { blocker.wait() }
                blocked = true
                let filler = String(repeating: "x", count: 4096)
                let count = 3000
                for index in 0..<count {
                    let result = await worker.emitToUser("p", event: "n", data: .string("\(index) \(filler)"))
                    #expect(result.outcome == .published, "\(result)")
                }
                for _ in 0..<500 where server.clusterHealth.sharded?.readingPaused != true {
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(server.clusterHealth.sharded?.readingPaused == true)
                #expect(server.clusterHealth.readingPaused)
                let json = server.clusterHealth.json.description
                #expect(
                    json.contains(
                        #""reading_paused":true,"reading_pauses":1,"outbox_queued":0,"dropped_from_outbox":0,"#
                            + #""last_error":null}"#
                    ),
                    "\(json)"
                )
                // What the server does not read waits in Redis, for the sharded connection.
                var held = 0
                for _ in 0..<100 {
                    held = try await self.shardedOutputBuffer(owner)
                    if held > 0 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                print("[sharded backpressure] owner 127.0.0.1:\(owner.port) holds \(held) bytes for the paused server")
                #expect(held > 0, "the owning primary holds nothing for the paused sharded connection")
                blocker.signal()
                blocked = false
                for index in 0..<count {
                    let text = try await client.nextText()
                    let expected = #"42["n","\#(index) x"#
                    #expect(text.hasPrefix(expected), "emit \(index): \(text.prefix(40))")
                    if !text.hasPrefix(expected) { break }
                }
                for _ in 0..<500 where server.clusterHealth.sharded?.readingPaused != false {
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(server.clusterHealth.sharded?.readingPaused == false)
                #expect((server.clusterHealth.sharded?.readingPauses ?? 0) >= 1)
                await client.close()
            } catch {
                Issue.record("\(error)")
            }
            if blocked { blocker.signal() }
            await worker.shutdown(timeout: .seconds(1))
            try await server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    /// `/healthz` of a server in room-channel mode on the cluster carries `redis.sharded`; killing the primary
    /// that owns a user's channel makes the server degraded (a sharded connection down) until the replica took
    /// over and the channel is subscribed there, then it is healthy again.
    @Test func aDeadPrimaryMakesTheServerDegradedUntilTheFailover() async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = RoomChannelTests.channelName()
            let server = try await self.startServer(url: cluster.urlString, channel: channel)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                let client = try await self.connect(server, user: "h", group: group)
                let roomChannel = "\(channel)#/#user:h#"
                let owner = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(roomChannel)))
                // The health snapshot is recomputed on the subscriber's loop after the SSUBSCRIBE reply; the
                // CONNECT reply may reach the client first. Wait for it (bounded: 5 s) rather than race it.
                for _ in 0..<50
                where server.clusterHealth.sharded?.channelsSubscribed != 1
                    || server.clusterHealth.sharded?.channelsPending != 0
                {
                    try await Task.sleep(for: .milliseconds(100))
                }
                let before = try #require(server.clusterHealth.sharded)
                #expect(before.shards == 3)
                #expect(before.connectionsUp == 1)
                #expect(before.connectionsDown == 0)
                #expect(before.channelsSubscribed == 1)
                #expect(before.channelsPending == 0)
                #expect(before.topologyRefreshes >= 1)
                #expect(before.lastError == nil)
                #expect(server.clusterHealth.isHealthy)
                let json = server.clusterHealth.json.description
                #expect(json.contains(#""status":"ok""#), "\(json)")
                #expect(
                    json.contains(
                        #""sharded":{"shards":3,"connections_up":1,"connections_down":0,"channels_subscribed":1,"#
                            + #""channels_pending":0,"topology_refreshes":"#
                    ),
                    "\(json)"
                )

                // The classic subscriber is on one seed taken at random: the owner too, sometimes.
                // (Its common channel and its cluster request and response channels: `sub=3`.)
                let classicOnOwner = try await owner.cli(["CLIENT", "LIST"]).split(separator: "\n").contains {
                    $0.contains(" sub=") && !$0.contains(" sub=0 ")
                }
                await owner.crash()
                var degraded = false
                for _ in 0..<500 {
                    if !server.clusterHealth.isHealthy {
                        degraded = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(degraded, "the server stayed healthy with its sharded connection down")
                let down = try #require(server.clusterHealth.sharded)
                #expect(down.connectionsDown == 1)
                #expect(down.lastError != nil)
                if !classicOnOwner {
                    #expect(server.clusterHealth.redisConnected == true, "the classic connection is up meanwhile")
                }
                #expect(server.clusterHealth.json.description.contains(#""status":"degraded""#))

                // Healthy again once the replica owns the slot and the channel is subscribed there (bounded: 30 s).
                for _ in 0..<300
                where !server.clusterHealth.isHealthy || server.clusterHealth.sharded?.channelsPending != 0 {
                    try await Task.sleep(for: .milliseconds(100))
                }
                let after = try #require(server.clusterHealth.sharded)
                let state = server.clusterHealth.isHealthy ? "" : await cluster.describeState()
                #expect(server.clusterHealth.isHealthy, "\(state)")
                #expect(after.connectionsDown == 0)
                #expect(after.channelsSubscribed == 1)
                #expect(after.channelsPending == 0)
                #expect(after.lastError == nil)
                #expect(after.topologyRefreshes > before.topologyRefreshes)
                print("[sharded health] after the failover: \(server.clusterHealth.json)")
                await client.close()
            } catch {
                Issue.record("\(error)")
            }
            try await server.shutdown()
            try await group.shutdownGracefully()
        }
    }

    /// `/healthz` carries the sharded outboxes' counts (`redis.sharded.outbox_queued`, `dropped_from_outbox`): the
    /// primary owning a user's channel and its replica are killed, so nothing can take the slot over; five emits
    /// from the server to that user meet an outbox of two: two wait, the three oldest are dropped. The server's
    /// shutdown then tries to send the two for `publishTimeout` and logs them as unsent.
    @Test func healthReportsTheShardedOutboxCounts() async throws {
        try await RedisClusterProcess.with { cluster in
            let channel = RoomChannelTests.channelName()
            let lines = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
            let logger = Logger(label: "test.sharded-outbox-health") { _ in CapturingLogHandler(lines: lines) }
            let server = try await self.startServer(
                url: cluster.urlString,
                channel: channel,
                outboxCapacity: 2,
                logger: logger
            )
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            do {
                let client = try await self.connect(server, user: "o", group: group)
                let roomChannel = "\(channel)#/#user:o#"
                let owner = try #require(await cluster.primary(forSlot: RedisClusterSlot.of(roomChannel)))
                let replica = try #require(await cluster.replica(of: owner))
                for _ in 0..<50 where server.clusterHealth.sharded?.channelsSubscribed != 1 {
                    try await Task.sleep(for: .milliseconds(100))
                }
                let before = try #require(server.clusterHealth.sharded)
                #expect(before.channelsSubscribed == 1)
                #expect(before.outboxQueued == 0)
                #expect(before.droppedFromOutbox == 0)
                await replica.crash()
                await owner.crash()
                for index in 0..<5 {
                    _ = await server.gateway.emitToUser("o", event: "held", data: .int(Int64(index)))
                }
                // The snapshot follows within the sharded client's 50 ms tick (bounded: 5 s).
                for _ in 0..<500
                where server.clusterHealth.sharded?.outboxQueued != 2
                    || server.clusterHealth.sharded?.droppedFromOutbox != 3
                {
                    try await Task.sleep(for: .milliseconds(10))
                }
                let held = try #require(server.clusterHealth.sharded)
                #expect(held.outboxQueued == 2)
                #expect(held.droppedFromOutbox == 3)
                let json = server.clusterHealth.json.description
                #expect(json.contains(#""outbox_queued":2,"dropped_from_outbox":3,"#), "\(json)")
                await client.close()
            } catch {
                Issue.record("\(error)")
            }
            try await server.shutdown()
            let unsent = lines.withLockedValue { $0 }.first {
                $0.message == "sharded outboxes shut down with unsent messages"
            }
            #expect(unsent?.metadata.contains("redis.unsent=2") == true, "\(String(describing: unsent))")
            try await group.shutdownGracefully()
        }
    }
}
