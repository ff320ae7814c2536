import Foundation
import Logging
import NIOCore
import NIOPosix
import SocketGatewayRedisTestKit
import SocketGatewayServer
import SocketGatewayWorker
import Testing

/// Accepts a client whose CONNECT payload is `{"user":"<id>"}` as that user (room `user:<id>`).
private struct UserFromAuth: SocketAuthenticator {
    func authenticate(auth: JSONValue?, handshake: SocketHandshake) async -> AuthenticatedUser? {
        guard let user = auth?["user"]?.stringValue else { return nil }
        return AuthenticatedUser(id: user)
    }
}

/// Room-channel mode (`SOCKET_REDIS_MODE=rooms`) against a real redis-server: user-targeted emits travel on the
/// room's own channel, which a server subscribes to only while the room has members there.
@Suite(.serialized) struct RoomChannelTests {
    struct Node {
        let server: SocketServer
        let port: Int
        let recorder: Recorder
    }

    static func logger() -> Logger {
        var logger = Logger(label: "socket-gateway.room-channel-test")
        logger.logLevel = .critical
        return logger
    }

    static func channelName() -> String { "socketio-rooms-\(UUID().uuidString.prefix(8))" }

    func startNode(
        redis: RedisServerProcess,
        channel: String,
        unsubscribeDelay: Duration = .seconds(30),
        subscribeTimeout: Duration = .seconds(10)
    ) async throws -> Node {
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 2,
                redis: SocketServerRedisConfiguration(
                    url: redis.urlString,
                    channel: channel,
                    mode: .rooms,
                    roomUnsubscribeDelay: unsubscribeDelay,
                    roomSubscribeTimeout: subscribeTimeout
                )
            ),
            authenticator: UserFromAuth(),
            logger: Self.logger()
        )
        let recorder = Recorder()
        server.namespace("/").onConnect { connection in recorder.connected(connection) }
        server.namespace("/").onDisconnect { connection, reason in recorder.disconnected(connection.id, reason) }
        try await server.start()
        for _ in 0..<500 where server.clusterHealth.redisConnected != true {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.clusterHealth.redisConnected == true)
        return Node(server: server, port: try #require(server.localPort), recorder: recorder)
    }

    /// Connects a WebSocket client as `user`; returns once the client got its CONNECT reply, with its sid.
    func connect(_ node: Node, user: String, group: any EventLoopGroup) async throws -> (TestWebSocketClient, String) {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(port: node.port, group: group)
        try await client.send(#"40{"user":"\#(user)"}"#)
        let reply = try await client.nextText()
        guard reply.hasPrefix("40{\"sid\":\"") else { throw TestClientError(description: "CONNECT reply: \(reply)") }
        return (client, String(reply.dropFirst(10).dropLast(2)))
    }

    func worker(_ redis: RedisServerProcess, channel: String) -> WorkerSocketGateway {
        WorkerSocketGateway(redisURL: redis.urlString, channel: channel, mode: .rooms, logger: Self.logger())
    }

    /// `PUBSUB CHANNELS <channel>#*`, sorted.
    func roomChannels(_ redis: RedisServerProcess, channel: String) async throws -> [String] {
        try await redis.cli(["PUBSUB", "CHANNELS", "\(channel)#*"]).split(separator: "\n").map(String.init).sorted()
    }

    /// How many times Redis ran `command` (`INFO commandstats`), 0 before the first.
    func calls(_ redis: RedisServerProcess, _ command: String) async throws -> Int {
        let stats = try await redis.cli(["INFO", "commandstats"])
        guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }),
            let calls = line.split(separator: "=").dropFirst().first?.split(separator: ",").first
        else { return 0 }
        return Int(calls) ?? 0
    }

    /// A worker emits to the user the moment its client saw CONNECT, for 40 different users (each connect needs a
    /// new SUBSCRIBE): every emit is published to the room channel while this server is subscribed to it (one
    /// subscriber), and every client gets its event. Without the CONNECT reply waiting for Redis's SUBSCRIBE
    /// confirmation, an emit could reach Redis before the subscription and be lost.
    @Test func anEmitRightAfterConnectIsNeverLost() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redis: redis, channel: channel)
        let worker = self.worker(redis, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var lost: [Int] = []
        do {
            for index in 0..<40 {
                let (client, _) = try await self.connect(node, user: "u\(index)", group: group)
                let result = await worker.emitToUser("u\(index)", event: "hello", data: .int(Int64(index)))
                if result.redisSubscribers != 1 { lost.append(index) }
                #expect(try await client.nextText() == "42[\"hello\",\(index)]")
                await client.close()
            }
            #expect(lost == [], "published while no server was subscribed to the room channel")
            #expect(try await self.roomChannels(redis, channel: channel).count == 40)
            #expect(node.server.clusterHealth.roomChannels == 40)
        } catch {
            Issue.record("\(error)")
        }
        await worker.shutdown()
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// A user who leaves and comes back within the unsubscribe delay costs no UNSUBSCRIBE and no new SUBSCRIBE
    /// (Redis's own command counts); once the delay passes without members, the channel is gone from Redis.
    @Test func rejoiningWithinTheDelayKeepsTheChannelAndItGoesAfterIt() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redis: redis, channel: channel, unsubscribeDelay: .seconds(3))
        let worker = self.worker(redis, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let roomChannel = "\(channel)#/#user:h#"
        do {
            let (first, sid) = try await self.connect(node, user: "h", group: group)
            #expect(try await self.roomChannels(redis, channel: channel) == [roomChannel])
            let subscribes = try await self.calls(redis, "subscribe")
            let unsubscribes = try await self.calls(redis, "unsubscribe")
            await first.close()
            try await node.recorder.waitUntil { $0.disconnectReason(sid) != nil }

            let (second, secondSid) = try await self.connect(node, user: "h", group: group)
            #expect(try await self.calls(redis, "subscribe") == subscribes, "a new SUBSCRIBE for a lingering channel")
            #expect(try await self.calls(redis, "unsubscribe") == unsubscribes, "an UNSUBSCRIBE within the delay")
            #expect(try await self.roomChannels(redis, channel: channel) == [roomChannel])
            let result = await worker.emitToUser("h", event: "back", data: true)
            #expect(result.redisSubscribers == 1)
            #expect(try await second.nextText() == #"42["back",true]"#)
            await second.close()
            try await node.recorder.waitUntil { $0.disconnectReason(secondSid) != nil }

            // Bounded wait (the delay is 3 s): the channel is unsubscribed, once.
            // A while loop: `for … where` would ask redis-cli 200 times whatever the answers.
            var checks = 0
            while checks < 200, try await !self.roomChannels(redis, channel: channel).isEmpty {
                checks += 1
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await self.roomChannels(redis, channel: channel) == [])
            #expect(try await self.calls(redis, "unsubscribe") == unsubscribes + 1)
            for _ in 0..<100 where node.server.clusterHealth.roomChannels != 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(node.server.clusterHealth.roomChannels == 0)
            #expect(await worker.emitToUser("h", event: "gone", data: true).redisSubscribers == 0)
        } catch {
            Issue.record("\(error)")
        }
        await worker.shutdown()
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// Two servers in room-channel mode; the user is connected to A only. A worker's user-targeted emits reach A
    /// (one subscriber each) and B's subscriber receives nothing at all; a broadcast (common channel) reaches B.
    @Test func aUserTargetedEmitReachesOnlyTheServerWithTheUser() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let a = try await self.startNode(redis: redis, channel: channel)
        let b = try await self.startNode(redis: redis, channel: channel)
        let worker = self.worker(redis, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let (client, sid) = try await self.connect(a, user: "only-a", group: group)
            for index in 0..<20 {
                let result = await worker.emitToUser("only-a", event: "n", data: .int(Int64(index)))
                #expect(result.redisSubscribers == 1)
            }
            for index in 0..<20 {
                #expect(try await client.nextText() == "42[\"n\",\(index)]")
            }
            #expect(b.server.clusterHealth.lastMessageAge == nil, "B's subscriber received a message")

            // A server-side join on A waits for the room's channel: an emit right after it is not lost.
            await a.server.gateway.joinRoom(sid, room: "team")
            let team = await worker.emitToRoom("team", event: "team", data: "t")
            #expect(team.redisSubscribers == 1)
            #expect(try await client.nextText() == #"42["team","t"]"#)
            #expect(b.server.clusterHealth.lastMessageAge == nil, "B's subscriber received a message")

            // Control: the common channel still reaches both servers.
            let broadcast = await worker.broadcast(event: "all", data: 1)
            #expect(broadcast.redisSubscribers == 2)
            #expect(try await client.nextText() == #"42["all",1]"#)
            for _ in 0..<500 where b.server.clusterHealth.lastMessageAge == nil {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(b.server.clusterHealth.lastMessageAge != nil)
            #expect(b.server.clusterHealth.roomChannels == 0)
            #expect(a.server.clusterHealth.json["channel_mode"] == "rooms")
        } catch {
            Issue.record("\(error)")
        }
        await worker.shutdown()
        try await a.server.shutdown()
        try await b.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// While Redis is down the room's channel cannot be confirmed: the client's CONNECT reply waits (here up to
    /// 20 s) and comes once Redis is back and the resubscription (the common channel, then every wanted room
    /// channel) is confirmed; an emit right after it is delivered.
    @Test func theConnectReplyWaitsForRedisToConfirmTheUsersChannel() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redis: redis, channel: channel, subscribeTimeout: .seconds(20))
        let worker = self.worker(redis, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            await redis.stop()
            for _ in 0..<500 where node.server.clusterHealth.redisConnected != false {
                try await Task.sleep(for: .milliseconds(10))
            }
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: node.port, group: group)
            try await client.send(#"40{"user":"w"}"#)
            // Give the server time to answer if it would (it must not: the channel is not confirmed).
            try await Task.sleep(for: .milliseconds(500))
            #expect(client.hasNoPendingFrames(), "CONNECT answered while the user's channel could not be subscribed")
            try await redis.restart()
            let reply = try await client.nextText()
            #expect(reply.hasPrefix("40{\"sid\":\""), "CONNECT reply: \(reply)")
            #expect(try await self.roomChannels(redis, channel: channel) == ["\(channel)#/#user:w#"])
            let result = await worker.emitToUser("w", event: "after", data: 1)
            #expect(result.redisSubscribers == 1)
            #expect(try await client.nextText() == #"42["after",1]"#)
        } catch {
            Issue.record("\(error)")
        }
        await worker.shutdown()
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// The wait is bounded: with Redis down the connect proceeds after `roomSubscribeTimeout`, and the user's
    /// channel is subscribed when Redis comes back, so later emits reach the client.
    @Test func theConnectProceedsAfterTheTimeoutAndTheChannelFollowsWhenRedisReturns() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redis: redis, channel: channel, subscribeTimeout: .milliseconds(300))
        let worker = self.worker(redis, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            await redis.stop()
            for _ in 0..<500 where node.server.clusterHealth.redisConnected != false {
                try await Task.sleep(for: .milliseconds(10))
            }
            let (client, _) = try await self.connect(node, user: "late", group: group)
            try await redis.restart()
            var checks = 0
            while checks < 500, try await self.roomChannels(redis, channel: channel).isEmpty {
                checks += 1
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await self.roomChannels(redis, channel: channel) == ["\(channel)#/#user:late#"])
            let result = await worker.emitToUser("late", event: "later", data: 2)
            #expect(result.redisSubscribers == 1)
            #expect(try await client.nextText() == #"42["later",2]"#)
        } catch {
            Issue.record("\(error)")
        }
        await worker.shutdown()
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// python-socketio's AsyncRedisManager publishes everything on the common channel: a server in room-channel
    /// mode still delivers it.
    @Test func aPythonPublisherStillReachesARoomChannelServer() async throws {
        let python = try await PythonPeer.interpreter(importing: ["socketio", "redis"])
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redis: redis, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let (client, _) = try await self.connect(node, user: "py", group: group)
            let script = """
                import asyncio, sys, socketio
                async def main():
                    manager = socketio.AsyncRedisManager(sys.argv[1], channel=sys.argv[2], write_only=True)
                    await manager.emit("from-python", {"n": 1}, room="user:py", namespace="/")
                asyncio.run(main())
                """
            let published = try await ChildProcess.run(python, ["-c", script, redis.urlString, channel])
            #expect(published.status == 0, "the python publisher failed: \(published.output)")
            #expect(try await client.nextText() == #"42["from-python",{"n":1}]"#)
        } catch {
            Issue.record("\(error)")
        }
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }
}
