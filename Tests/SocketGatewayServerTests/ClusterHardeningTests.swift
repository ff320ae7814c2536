import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayRedisTestKit
import SocketGatewayWorker
import Testing

@testable import SocketGatewayServer

/// What a process with access to Redis can do to a server through the channel: with a signing secret it can no
/// longer inject room changes or emits, and asking every client for an ack is bounded.
@Suite(.serialized) struct ClusterHardeningTests {
    static let secret = "0123456789abcdef0123456789abcdef-cluster"
    static let host = "0b5e6f1d2c3a4b5c6d7e8f9a0b1c2d3e"

    static func logger() -> Logger {
        var logger = Logger(label: "socket-gateway.cluster-hardening-test")
        logger.logLevel = .critical
        return logger
    }

    func startServer(
        _ redis: RedisServerProcess,
        _ configuration: SocketServerRedisConfiguration
    ) async throws
        -> SocketServer
    {
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 2, redis: configuration).anonymous,
            logger: Self.logger()
        )
        server.namespace("/")
        try await server.start()
        for _ in 0..<500 where server.clusterHealth.redisConnected != true {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.clusterHealth.redisConnected == true)
        return server
    }

    func connect(_ server: SocketServer, group: any EventLoopGroup) async throws -> (TestWebSocketClient, String) {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(
            port: try #require(server.localPort),
            group: group
        )
        try await client.send("40")
        let reply = try await client.nextText()
        #expect(reply.hasPrefix("40{\"sid\":\""), "CONNECT reply: \(reply)")
        return (client, String(reply.dropFirst(10).dropLast(2)))
    }

    @Test func withASigningSecretOnlySignedMessagesAreApplied() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-signed-\(UUID().uuidString.prefix(8))"
        let server = try await self.startServer(
            redis,
            SocketServerRedisConfiguration(url: redis.urlString, channel: channel, signingSecret: Self.secret)
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let signedWorker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            emitTimeout: .seconds(10),
            signingSecret: Self.secret,
            logger: Self.logger()
        )
        let strangerWorker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            emitTimeout: .seconds(10),
            logger: Self.logger()
        )
        do {
            let (mallory, malloryID) = try await self.connect(server, group: group)
            // Forged by a process without the secret: put mallory into alice's user room, then emit to it.
            let enter =
                #"{"method": "enter_room", "sid": "\#(malloryID)", "room": "user:alice", "namespace": "/", "#
                + #""host_id": "\#(Self.host)"}"#
            #expect(try await redis.cli(["PUBLISH", channel, enter]) == "1")
            #expect(await strangerWorker.emitToUser("alice", event: "secret", data: "unsigned").outcome == .published)
            // Signed by a worker that has it: applied.
            #expect(await signedWorker.joinRoom(malloryID, room: "signed-room").outcome == .published)
            #expect(
                await signedWorker.emitToRoom("signed-room", event: "to-room", data: "signed").outcome == .published
            )
            #expect(try await mallory.nextText() == #"42["to-room","signed"]"#)
            // The forged messages were skipped, counted, and never reached the client.
            #expect(server.clusterHealth.unverified == 2)
            #expect(server.clusterHealth.json.description.contains(#""unverified":2"#))
            #expect(await signedWorker.emitToUser("alice", event: "for-alice", data: 1).outcome == .published)
            #expect(await signedWorker.emitToRoom("signed-room", event: "fence", data: 2).outcome == .published)
            #expect(try await mallory.nextText() == #"42["fence",2]"#, "mallory is not in user:alice")
            #expect(mallory.hasNoPendingFrames())
            await mallory.close()
        } catch {
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        _ = await signedWorker.shutdown()
        _ = await strangerWorker.shutdown()
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func aSecretTooShortIsAConfigurationErrorNotSilentlyUnsigned() async throws {
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                redis: SocketServerRedisConfiguration(url: "redis://127.0.0.1:1", signingSecret: "short")
            ).anonymous,
            logger: Self.logger()
        )
        do {
            try await server.start()
            Issue.record("a server with a 5-byte signing secret started")
        } catch let error as SocketServerConfigurationError {
            #expect(error.variable == "redis.signingSecret", "\(error)")
            #expect(error.message.contains("at least 32") && !error.message.contains("short"), "\(error)")
        }
        try? await server.shutdown()
        let worker = WorkerSocketGateway(redisURL: "redis://127.0.0.1:1", signingSecret: "short", logger: Self.logger())
        let result = await worker.broadcast(event: "e", data: 1)
        #expect(result.outcome == .failed)
        #expect(result.reason?.contains("at least 32") == true, "\(result)")
        let environment = try SocketServerConfiguration(
            environment: ["REDIS_URL": "redis://h", "SOCKET_REDIS_SIGNING_SECRET": Self.secret]
        )
        #expect(environment.redis?.signingSecret == Self.secret)
    }

    @Test func remoteEmitsAskingEveryClientForAnAckAreBounded() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-acks-\(UUID().uuidString.prefix(8))"
        let server = try await self.startServer(
            redis,
            SocketServerRedisConfiguration(url: redis.urlString, channel: channel, maxPendingRemoteAcks: 1)
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let (first, _) = try await self.connect(server, group: group)
            let (second, _) = try await self.connect(server, group: group)
            // A broadcast with a callback: every recipient would owe an ack, each held for a minute.
            let ask =
                #"{"method": "emit", "event": "ask", "data": [1], "namespace": "/", "room": null, "#
                + #""skip_sid": null, "callback": ["x", "/", 7], "host_id": "\#(Self.host)"}"#
            #expect(try await redis.cli(["PUBLISH", channel, ask]) == "1")
            let frames = [try await first.nextText(), try await second.nextText()]
            // One client is asked for an ack (an id before the payload); the other gets the event without one.
            #expect(frames.filter { $0 == #"42["ask",1]"# }.count == 1, "\(frames)")
            #expect(
                frames.filter { $0.hasPrefix("42") && $0.hasSuffix(#"["ask",1]"#) && $0.count > 11 }.count == 1,
                "\(frames)"
            )
            await first.close()
            await second.close()
        } catch {
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// A client that never answers a remote ack holds its slot only until `timings.remoteAckTimeout`: then the slot
    /// is back, and the next remote emit with a callback asks for an ack again.
    @Test func aRemoteAckNeverAnsweredGivesItsSlotBackAtTheTimeout() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-acks-\(UUID().uuidString.prefix(8))"
        var configuration = SocketServerRedisConfiguration(
            url: redis.urlString,
            channel: channel,
            maxPendingRemoteAcks: 1
        )
        // Long enough that the second ask (a redis-cli process, slow to start on a loaded machine) surely comes
        // while the first still holds the slot; the loop below waits for the slot's return, bounded.
        configuration.timings.remoteAckTimeout = .seconds(3)
        let server = try await self.startServer(redis, configuration)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        func ask(_ number: Int) async throws {
            let message =
                #"{"method": "emit", "event": "ask", "data": [\#(number)], "namespace": "/", "room": null, "#
                + #""skip_sid": null, "callback": ["x", "/", \#(number)], "host_id": "\#(Self.host)"}"#
            #expect(try await redis.cli(["PUBLISH", channel, message]) == "1")
        }
        do {
            let (silent, _) = try await self.connect(server, group: group)
            try await ask(1)
            // Asked for an ack (an id before the payload), which it never sends.
            #expect(try await silent.nextText() != #"42["ask",1]"#)
            try await ask(2)
            // The one slot is taken: the event arrives without an ack id.
            #expect(try await silent.nextText() == #"42["ask",2]"#)
            // Bounded: once the first ack timed out, an ask carries an ack id again.
            var askedAgain = false
            for number in 3..<150 where !askedAgain {
                try await Task.sleep(for: .milliseconds(100))
                try await ask(number)
                askedAgain = try await silent.nextText() != #"42["ask",\#(number)]"#
            }
            #expect(askedAgain, "the slot of the unanswered ack never came back")
            await silent.close()
        } catch {
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// A server whose event loop is behind stops reading Redis (Redis holds the rest) instead of queueing without
    /// bound, keeps its subscription alive meanwhile, and delivers everything in order once it caught up.
    /// The inbox bound by count, and by bytes (200 events of about 40 bytes against a 1 KiB bound).
    static let inboxBounds: [(messages: Int, bytes: Int)] = [(8, 32 << 20), (1 << 20, 1 << 10)]

    @Test(arguments: Self.inboxBounds)
    func readingRedisIsPacedByWhatTheEventLoopsCanApply(_ bound: (messages: Int, bytes: Int)) async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-paced-\(UUID().uuidString.prefix(8))"
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 1,
                redis: SocketServerRedisConfiguration(
                    url: redis.urlString,
                    channel: channel,
                    maxQueuedMessagesPerLoop: bound.messages,
                    maxQueuedBytesPerLoop: bound.bytes
                )
            ).anonymous,
            logger: Self.logger()
        )
        server.namespace("/")
        try await server.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            emitTimeout: .seconds(10),
            logger: Self.logger()
        )
        let blocker = DispatchSemaphore(value: 0)
        var blocked = false
        do {
            for _ in 0..<500 where server.clusterHealth.redisConnected != true {
                try await Task.sleep(for: .milliseconds(10))
            }
            let (client, _) = try await self.connect(server, group: group)
            // The only event loop is busy (a handler that blocks it, or a burst it cannot keep up with).
            let loop = try #require(server.gateway.shards.all.first).eventLoop
            loop.execute { blocker.wait() }
            blocked = true
            let count = 200
            for index in 0..<count {
                #expect(await worker.broadcast(event: "n", data: .int(Int64(index))).outcome == .published)
            }
            for _ in 0..<500 where !server.clusterHealth.readingPaused {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(server.clusterHealth.readingPaused)
            #expect(server.clusterHealth.json.description.contains(#""reading_paused":true"#))
            // Longer than the liveness check's ping interval plus timeout (1 s + 1 s): the subscription stays up.
            try await Task.sleep(for: .milliseconds(2500))
            #expect(server.clusterHealth.reconnects == 0)
            blocker.signal()
            blocked = false
            for index in 0..<count {
                #expect(try await client.nextText() == #"42["n",\#(index)]"#)
            }
            for _ in 0..<500 where server.clusterHealth.readingPaused {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(!server.clusterHealth.readingPaused)
            #expect(server.clusterHealth.readingPauses >= 1)
            #expect(server.clusterHealth.reconnects == 0)
            await client.close()
        } catch {
            if blocked { blocker.signal() }
            _ = await worker.shutdown()
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        _ = await worker.shutdown()
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// A server given a password Redis refuses reports the failure in /healthz and its log without the password,
    /// whatever characters the password holds.
    @Test func healthAndLogsNeverCarryTheRedisPassword() async throws {
        let redis = try await RedisServerProcess.start(extraArguments: ["--requirepass", "the-right-one"])
        let wrong = "wr0ng/pa?ss#word@x"
        let encoded = "wr0ng%2Fpa%3Fss%23word%40x"
        let lines = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        var logger = Logger(label: "socket-gateway.password-test") { _ in CapturingLogHandler(lines: lines) }
        logger.logLevel = .debug
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 1,
                redis: SocketServerRedisConfiguration(url: "redis://:\(encoded)@127.0.0.1:\(redis.port)/0")
            ).anonymous,
            logger: logger
        )
        server.namespace("/")
        try await server.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            for _ in 0..<500 where server.clusterHealth.lastError == nil {
                try await Task.sleep(for: .milliseconds(10))
            }
            let health = try await httpRequest(
                port: try #require(server.localPort),
                method: "GET",
                path: "/healthz",
                group: group
            )
            #expect(health.status == 503)
            #expect(health.body.contains("***"), "\(health.body)")
            let everything = health.body + lines.withLockedValue { $0.map(\.text).joined(separator: "\n") }
            for secret in [wrong, encoded, "wr0ng", "pa%3Fss", "word%40x"] {
                #expect(!everything.contains(secret), "\(secret) printed")
            }
            #expect(!lines.withLockedValue { $0 }.isEmpty, "the failure was logged")
        } catch {
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    /// Emits for a namespace this server does not have, and a large valid one: nothing breaks, the large one
    /// arrives whole.
    @Test func unknownNamespacesAndLargeEmitsFromOtherHosts() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-odd-\(UUID().uuidString.prefix(8))"
        let server = try await self.startServer(
            redis,
            SocketServerRedisConfiguration(url: redis.urlString, channel: channel)
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let worker = WorkerSocketGateway(
            redisURL: redis.urlString,
            channel: channel,
            emitTimeout: .seconds(10),
            logger: Self.logger()
        )
        do {
            let (client, _) = try await self.connect(server, group: group)
            for namespace in ["/nope", "/", "no-slash", ""] where namespace != "/" {
                let result = await worker.emit(
                    "ghost",
                    arguments: [1],
                    to: .broadcast,
                    options: .init(namespace: namespace)
                )
                #expect(result.outcome == .published)
            }
            let large = String(repeating: "y", count: 2 << 20)
            #expect(await worker.broadcast(event: "large", data: .string(large)).outcome == .published)
            #expect(try await client.nextText() == #"42["large",""# + large + #""]"#)
            #expect(client.hasNoPendingFrames())
            #expect(server.clusterHealth.undecodable == 0)
            await client.close()
        } catch {
            _ = await worker.shutdown()
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        _ = await worker.shutdown()
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }
}
