import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayServer
import SocketGatewayWorker
import Testing

/// Clustered servers against a real redis-server: two servers on one channel, a worker, Redis outages and
/// killed subscribers. Clients are raw Engine.IO/Socket.IO WebSocket clients, so every frame is checked.
@Suite(.serialized) struct ClusterTests {
    /// A clustered server with a recorder of its connections, on its own channel.
    struct Node {
        let server: SocketServer
        let port: Int
        let recorder: Recorder
    }

    static func logger() -> Logger {
        var logger = Logger(label: "socket-gateway.cluster-test")
        logger.logLevel = .critical
        return logger
    }

    /// `publishTimeout`: a test that asserts what a publish came to (not how fast) gives a loaded machine's slow
    /// Redis answer time, so `.published` does not turn into `.queued`.
    func startNode(redisURL: String, channel: String, publishTimeout: Duration = .seconds(2)) async throws -> Node {
        try await self.startNode(
            redis: SocketServerRedisConfiguration(url: redisURL, channel: channel, publishTimeout: publishTimeout)
        )
    }

    /// An anonymous server clustered through `redis`, started on a free port; its clients are welcomed with their
    /// sid (`welcome`), and their connects and disconnects recorded.
    func startNode(redis: SocketServerRedisConfiguration, eventLoopThreads: Int = 2) async throws -> Node {
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: eventLoopThreads, redis: redis)
                .anonymous,
            logger: Self.logger()
        )
        let recorder = Recorder()
        server.namespace("/").onConnect { connection in
            recorder.connected(connection)
            connection.emit("welcome", .string(connection.id))
        }
        server.namespace("/").onDisconnect { connection, reason in recorder.disconnected(connection.id, reason) }
        try await server.start()
        return Node(server: server, port: try #require(server.localPort), recorder: recorder)
    }

    /// Connects a WebSocket client to `/`; returns it and its Socket.IO sid once the server registered it.
    func connect(_ node: Node, group: any EventLoopGroup) async throws -> (TestWebSocketClient, String) {
        let (client, sid) = try await TestWebSocketClient.connectWelcomed(port: node.port, group: group)
        try await node.recorder.waitUntil { $0.connection(sid) != nil }
        return (client, sid)
    }

    /// Waits (bounded) until every server's subscriber is subscribed.
    func waitSubscribed(_ nodes: [Node]) async throws {
        for _ in 0..<500 {
            if nodes.allSatisfy({ $0.server.clusterHealth.redisConnected == true }) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestClientError(description: "subscribers not connected: \(nodes.map { $0.server.clusterHealth })")
    }

    static func channelName() -> String { "socketio-test-\(UUID().uuidString.prefix(8))" }

    @Test func twoServersShareEmitsRoomChangesAcksAndDisconnects() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let a = try await self.startNode(redisURL: redis.urlString, channel: channel, publishTimeout: .seconds(30))
        let b = try await self.startNode(redisURL: redis.urlString, channel: channel, publishTimeout: .seconds(30))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await self.waitSubscribed([a, b])
            let (clientA, sidA) = try await self.connect(a, group: group)
            let (clientB, sidB) = try await self.connect(b, group: group)

            // A broadcast on A reaches both servers' clients.
            let result = await a.server.gateway.broadcast(event: "hi", data: 1)
            #expect(result.outcome == .published)
            #expect(result.localDeliveries == 1)
            #expect(result.redisSubscribers == 2)
            #expect(try await clientA.nextText() == #"42["hi",1]"#)
            #expect(try await clientB.nextText() == #"42["hi",1]"#)

            // And the other way round, to a sid room on the other server.
            await b.server.gateway.emitToRoom(sidA, event: "direct", data: "to-a")
            #expect(try await clientA.nextText() == #"42["direct","to-a"]"#)

            // joinRoom for a client on the other server is published and applied there.
            let joined = await a.server.gateway.joinRoom(sidB, room: "team")
            #expect(joined.outcome == .published)
            let connectionB = try #require(b.recorder.connection(sidB))
            for _ in 0..<500 where !(await connectionB.rooms().contains("team")) {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await connectionB.rooms().contains("team"))
            await a.server.gateway.emitToRoom("team", event: "team", data: "t1")
            #expect(try await clientB.nextText() == #"42["team","t1"]"#)

            // Exclusions travel in skip_sid and are applied as rooms by the other server.
            await a.server.gateway.broadcast(event: "news", data: 1, excluding: ["team"])
            await a.server.gateway.broadcast(event: "news", data: 2)
            #expect(try await clientA.nextText() == #"42["news",1]"#)
            #expect(try await clientA.nextText() == #"42["news",2]"#)
            #expect(try await clientB.nextText() == #"42["news",2]"#)

            // leaveRoom for a remote client.
            await a.server.gateway.leaveRoom(sidB, room: "team")
            for _ in 0..<500 where await connectionB.rooms().contains("team") {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(!(await connectionB.rooms().contains("team")))

            // A server emits with an ack to a client on the other server: python-socketio's callback message.
            async let answer = a.server.gateway.emitWithAck(
                "ask",
                arguments: [.int(7)],
                to: sidB,
                timeout: .seconds(10)
            )
            let asked = try await clientB.nextText()
            #expect(asked.hasPrefix("42") && asked.hasSuffix(#"["ask",7]"#), "got \(asked)")
            let ackID = asked.dropFirst(2).prefix(while: { $0.isNumber })
            try await clientB.send("43\(ackID)[\"yes\",{\"n\":7}]")
            #expect(try await answer == [.string("yes"), ["n": 7]])

            // Disconnect a client connected to the other server.
            let disconnected = await a.server.gateway.disconnect(sidB, namespace: "/")
            #expect(disconnected.outcome == .published)
            #expect(try await clientB.nextText() == "41")
            try await b.recorder.waitUntil { $0.disconnectReason(sidB) != nil }

            await clientA.close()
            await clientB.close()
        } catch {
            try? await a.server.shutdown()
            try? await b.server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await a.server.shutdown()
        try await b.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func workerEmitsReachClientsIncludingBinaryAndExclusions() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redisURL: redis.urlString, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            emitTimeout: .seconds(10),
            logger: Self.logger()
        )
        do {
            try await self.waitSubscribed([node])
            let (first, firstSid) = try await self.connect(node, group: group)
            let (second, _) = try await self.connect(node, group: group)
            await node.server.gateway.joinRoom(firstSid, room: "sheet:1")
            // Messages that are not python-socketio's format are logged and skipped; the next one is applied.
            for garbage in [
                "not json", #"{"method":"emit"}"#, #"{"event":"x"}"#, #"{"method":"emit","event":"x","data":"no"}"#,
            ] {
                #expect(try await redis.cli(["PUBLISH", channel, garbage]) == "1")
            }

            var result = await worker.emitToRoom("sheet:1", event: "progress", data: ["percent": 50])
            #expect(result.outcome == .published)
            #expect(try await first.nextText() == #"42["progress",{"percent":50}]"#)

            result = await worker.broadcast(event: "all", data: "x", excluding: [firstSid])
            #expect(result.outcome == .published)
            #expect(try await second.nextText() == #"42["all","x"]"#)

            var bytes = ByteBuffer()
            bytes.writeBytes([1, 2, 3])
            result = await worker.emit(
                "file",
                arguments: [["name": "a.bin", "data": .binary(bytes)]],
                to: .broadcast,
                options: .init()
            )
            #expect(result.outcome == .published)
            for client in [first, second] {
                #expect(
                    try await client.nextText()
                        == #"451-["file",{"name":"a.bin","data":{"_placeholder":true,"num":0}}]"#
                )
                #expect(try await client.next() == .binary([1, 2, 3]))
            }
            // The excluded client got nothing but the room emit and the binary one.
            #expect(first.hasNoPendingFrames())
            await first.close()
            await second.close()
        } catch {
            await worker.shutdown(timeout: .seconds(1))
            try? await node.server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        await worker.shutdown(timeout: .seconds(1))
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func redisOutageLosesNothingWithTheOutboxAndDeliveriesResume() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redisURL: redis.urlString, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            outboxCapacity: 100,
            emitTimeout: .milliseconds(500),
            logger: Self.logger()
        )
        do {
            try await self.waitSubscribed([node])
            let (client, _) = try await self.connect(node, group: group)
            // The worker connects lazily: on a loaded machine the first emit may outlast its 500 ms and be reported
            // queued; it is sent all the same, and arrives.
            let before = await worker.broadcast(event: "before", data: 0)
            #expect(before.outcome == .published || before.outcome == .queued, "\(before)")
            #expect(try await client.nextText() == #"42["before",0]"#)

            await redis.stop()
            let outageStart = ContinuousClock.now
            // Emits during the outage return (within their timeout) and are held in the outbox.
            for index in 1...3 {
                let result = await worker.broadcast(event: "during", data: .int(Int64(index)))
                #expect(result.outcome == .queued, "emit \(index): \(result)")
            }
            // Local clients keep getting the server's own emits.
            let local = await node.server.gateway.broadcast(event: "local", data: "still here")
            #expect(local.localDeliveries == 1)
            #expect(local.outcome != .published)
            #expect(try await client.nextText() == #"42["local","still here"]"#)
            // A 3-second outage.
            let elapsed = ContinuousClock.now - outageStart
            if elapsed < .seconds(3) { try await Task.sleep(for: .seconds(3) - elapsed) }
            try await redis.restart()

            // Subscribed again, then every emit held during the outage arrives, in order.
            for _ in 0..<1000 where node.server.clusterHealth.redisConnected != true {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(node.server.clusterHealth.redisConnected == true)
            #expect(node.server.clusterHealth.reconnects >= 1)
            // The worker may still be reconnecting (its backoff is its own): queued or published, never lost.
            let after = await worker.broadcast(event: "after", data: 4)
            #expect(after.outcome == .published || after.outcome == .queued, "\(after)")
            var received: [String] = []
            for _ in 0..<4 {
                guard case .text(let text) = try await client.next(attempts: 1500) else { break }
                received.append(text)
            }
            #expect(
                received == [#"42["during",1]"#, #"42["during",2]"#, #"42["during",3]"#, #"42["after",4]"#],
                "received \(received)"
            )
            await client.close()
        } catch {
            await worker.shutdown(timeout: .seconds(1))
            try? await node.server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        await worker.shutdown(timeout: .seconds(1))
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func subscriberKilledByRedisComesBackAndHealthzSaysSo() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = Self.channelName()
        let node = try await self.startNode(redisURL: redis.urlString, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            emitTimeout: .seconds(10),
            logger: Self.logger()
        )
        do {
            try await self.waitSubscribed([node])
            let before = try await httpRequest(port: node.port, method: "GET", path: "/healthz", group: group)
            #expect(before.status == 200)
            #expect(
                before.body.contains(#""mode":"redis""#) && before.body.contains(#""reconnects":0"#)
                    && before.body.contains(#""last_disconnect":null"#),
                "\(before.body)"
            )

            let killed = try await redis.cli(["CLIENT", "KILL", "TYPE", "pubsub"])
            #expect(killed == "1", "CLIENT KILL replied \(killed)")
            for _ in 0..<1000 {
                let health = node.server.clusterHealth
                if health.redisConnected == true && health.reconnects >= 1 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(node.server.clusterHealth.reconnects == 1)
            let after = try await httpRequest(port: node.port, method: "GET", path: "/healthz", group: group)
            #expect(after.status == 200)
            #expect(
                after.body.contains(#""connected":true"#) && after.body.contains(#""reconnects":1"#)
                    && after.body.contains(#""last_error":null"#) && !after.body.contains(#""last_disconnect":null"#),
                "\(after.body)"
            )
            #expect(node.server.clusterHealth.lastDisconnect != nil, "the kill is remembered after the recovery")

            let (client, _) = try await self.connect(node, group: group)
            #expect(await worker.broadcast(event: "back", data: true).outcome == .published)
            #expect(try await client.nextText() == #"42["back",true]"#)
            await client.close()

            // With Redis gone, /healthz answers 503.
            await redis.stop()
            for _ in 0..<1000 where node.server.clusterHealth.redisConnected == true {
                try await Task.sleep(for: .milliseconds(10))
            }
            let down = try await httpRequest(port: node.port, method: "GET", path: "/healthz", group: group)
            #expect(down.status == 503)
            #expect(down.body.contains(#""status":"degraded""#), "\(down.body)")
        } catch {
            await worker.shutdown(timeout: .seconds(1))
            try? await node.server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        await worker.shutdown(timeout: .seconds(1))
        try await node.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func localOnlyHealthAndConfigurationFromEnvironment() async throws {
        let configuration = try SocketServerConfiguration(environment: [
            "HOST": "0.0.0.0", "PORT": "8080", "REDIS_URL": "redis://cache:6379/2", "SOCKET_REDIS_CHANNEL": "jobs",
            "SOCKET_TOKEN_SECRET": "s3cret", "SOCKET_CORS_ORIGINS": "https://a.example, https://b.example",
        ])
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 8080)
        #expect(configuration.redis == SocketServerRedisConfiguration(url: "redis://cache:6379/2", channel: "jobs"))
        #expect(configuration.tokenSecret == "s3cret")
        #expect(configuration.cors == .origins(["https://a.example", "https://b.example"]))
        #expect(try SocketServerConfiguration(environment: ["SOCKET_CORS_ORIGINS": "*"]).cors == .any)
        #expect(try SocketServerConfiguration(environment: [:]).redis == nil)
        #expect(throws: SocketServerConfigurationError.self) {
            try SocketServerConfiguration(environment: ["PORT": "99999"])
        }

        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous,
            logger: Self.logger()
        )
        try await server.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let health = try await httpRequest(
            port: try #require(server.localPort),
            method: "GET",
            path: "/healthz",
            group: group
        )
        #expect(health.status == 200)
        #expect(health.body == "{\"status\":\"ok\",\"mode\":\"local-only\"}\n")
        let missing = try await httpRequest(
            port: try #require(server.localPort),
            method: "GET",
            path: "/nothing",
            group: group
        )
        #expect(missing.status == 404)
        #expect(server.clusterHealth == ClusterHealth(mode: .localOnly))
        try await server.shutdown()
        try await group.shutdownGracefully()

        let broken = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1, redis: .init(url: "http://nope"))
                .anonymous,
            logger: Self.logger()
        )
        await #expect(throws: SocketServerConfigurationError.self) { try await broken.start() }
        try await broken.shutdown()
    }
}
