import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// Collects what a subscriber receives, thread-safely.
final class MessageRecorder: Sendable {
    private let box = NIOLockedValueBox<[String]>([])
    func record(_ message: RedisPubSubMessage) {
        self.box.withLockedValue { $0.append(String(buffer: message.payload)) }
    }
    var messages: [String] { self.box.withLockedValue { $0 } }
    var count: Int { self.box.withLockedValue { $0.count } }

    /// Waits (bounded: `limit`) until `condition` holds.
    func wait(limit: Duration = .seconds(20), until condition: @Sendable ([String]) -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + limit
        while clock.now < end {
            if self.box.withLockedValue({ condition($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return self.box.withLockedValue { condition($0) }
    }
}

func eventually(limit: Duration = .seconds(20), _ condition: @Sendable () async -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + limit
    while clock.now < end {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

@Suite(.serialized) struct RedisIntegrationTests {
    let logger = Logger(label: "test.redis")

    @Test func publishSubscribeRoundTrip() async throws {
        let redis = try await RedisServerProcess.start()
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: redis.url, channels: ["socketio"], logger: self.logger) {
            recorder.record($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(url: redis.url, logger: self.logger)
        let count = try await publisher.publish(ByteBuffer(string: #"{"method":"emit"}"#))
        #expect(count == 1)
        #expect(await recorder.wait { $0 == [#"{"method":"emit"}"#] })
        #expect(subscriber.health.connected)
        #expect(subscriber.health.lastMessageAge != nil)
        #expect(publisher.currentStatus.connected)
        await publisher.shutdown()
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func messagesAsAnAsyncSequence() async throws {
        let redis = try await RedisServerProcess.start()
        let (subscriber, messages) = RedisSubscriber.makeStream(
            url: redis.url,
            channels: ["a", "b"],
            logger: self.logger
        )
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisherA = RedisPublisher(url: redis.url, configuration: .init(channel: "a"), logger: self.logger)
        let publisherB = RedisPublisher(url: redis.url, configuration: .init(channel: "b"), logger: self.logger)
        #expect(try await publisherA.publish(ByteBuffer(string: "1")) == 1)
        #expect(try await publisherB.publish(ByteBuffer(string: "2")) == 1)
        var received: [String] = []
        for await message in messages {
            received.append("\(message.channel):\(String(buffer: message.payload))")
            if received.count == 2 { break }
        }
        #expect(received == ["a:1", "b:2"])
        await subscriber.shutdown()
        var more = 0
        for await _ in messages { more += 1 }  // the stream ends on shutdown
        #expect(more == 0)
        await publisherA.shutdown()
        await publisherB.shutdown()
        await redis.stop()
    }

    @Test func authAndSelectWithPassword() async throws {
        let redis = try await RedisServerProcess.start(extraArguments: ["--requirepass", "pa ss@word"])
        let good = try RedisURL(parsing: "redis://:pa%20ss%40word@127.0.0.1:\(redis.port)/3")
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: good, channels: ["c"], logger: self.logger) { recorder.record($0) }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(url: good, configuration: .init(channel: "c"), logger: self.logger)
        #expect(try await publisher.publish(ByteBuffer(string: "x")) == 1)
        #expect(await recorder.wait { $0 == ["x"] })

        let bad = try RedisURL(parsing: "redis://:wrong@127.0.0.1:\(redis.port)/0")
        let refused = RedisPublisher(url: bad, configuration: .init(channel: "c"), logger: self.logger)
        do {
            _ = try await refused.publish(ByteBuffer(string: "y"))
            Issue.record("publish with a wrong password succeeded")
        } catch {
            #expect(error.code == .authenticationFailed)
            #expect(!error.description.contains("wrong"))
        }
        let outOfRange = try RedisURL(parsing: "redis://:pa%20ss%40word@127.0.0.1:\(redis.port)/999")
        let badSelect = RedisPublisher(url: outOfRange, configuration: .init(channel: "c"), logger: self.logger)
        do {
            _ = try await badSelect.publish(ByteBuffer(string: "y"))
            Issue.record("publish to db 999 succeeded")
        } catch {
            #expect(error.code == .selectFailed)
        }
        await refused.shutdown()
        await badSelect.shutdown()
        await publisher.shutdown()
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func pipelinedPublishesArriveInOrder() async throws {
        let redis = try await RedisServerProcess.start()
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: redis.url, channels: ["socketio"], logger: self.logger) {
            recorder.record($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(
            url: redis.url,
            configuration: .init(maxInFlight: 1000),
            logger: self.logger
        )
        let total = 10_000
        let results = NIOLockedValueBox<[Int]>([])
        for index in 0..<total {
            publisher.publish(ByteBuffer(string: "m\(index)")) { progress in
                if case .published(let subscribers) = progress {
                    results.withLockedValue { $0.append(subscribers) }
                }
            }
        }
        #expect(await eventually { results.withLockedValue { $0.count } == total })
        #expect(results.withLockedValue { $0.allSatisfy { $0 == 1 } })
        #expect(await recorder.wait { $0.count >= total })
        #expect(recorder.messages == (0..<total).map { "m\($0)" })
        await publisher.shutdown()
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func subscriberReconnectsAfterClientKill() async throws {
        let redis = try await RedisServerProcess.start()
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: redis.url, channels: ["socketio"], logger: self.logger) {
            recorder.record($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        #expect(subscriber.health.reconnects == 0)
        let killed = try await redis.cli(["CLIENT", "KILL", "TYPE", "pubsub"])
        #expect(killed == "1")
        #expect(await eventually { subscriber.health.reconnects == 1 && subscriber.health.connected })
        #expect(try await redis.cli(["PUBSUB", "NUMSUB", "socketio"]).hasSuffix("1"))
        let publisher = RedisPublisher(url: redis.url, logger: self.logger)
        #expect(try await publisher.publish(ByteBuffer(string: "after")) == 1)
        #expect(await recorder.wait { $0 == ["after"] })
        await publisher.shutdown()
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func subscriberNoticesAFrozenServerThroughPing() async throws {
        let redis = try await RedisServerProcess.start()
        let subscriber = RedisSubscriber(
            url: redis.url,
            channels: ["socketio"],
            configuration: .init(pingInterval: .milliseconds(200), pingTimeout: .milliseconds(400)),
            logger: self.logger
        ) { _ in }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        // Freeze the server: the TCP connection stays open but nothing is answered.
        guard let pid = redis.pid else {
            Issue.record("redis-server is not running")
            return
        }
        kill(pid, SIGSTOP)
        #expect(await eventually { !subscriber.health.connected })
        // Why the link went down; `lastError` may already name a reconnect attempt the frozen server never answers.
        #expect(subscriber.health.lastDisconnect?.contains("livenessTimeout") == true)
        kill(pid, SIGCONT)
        #expect(await eventually { subscriber.health.connected && subscriber.health.reconnects >= 1 })
        #expect(subscriber.health.lastError == nil)
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func subscriberGivesUpAHandshakeThatIsNeverAnswered() async throws {
        let redis = try await RedisServerProcess.start()
        guard let pid = redis.pid else {
            Issue.record("redis-server is not running")
            return
        }
        // Frozen before the subscriber connects: the kernel accepts the connection, nobody answers SUBSCRIBE.
        kill(pid, SIGSTOP)
        let subscriber = RedisSubscriber(
            url: redis.url,
            channels: ["socketio"],
            configuration: .init(pingInterval: .milliseconds(200), pingTimeout: .milliseconds(300)),
            logger: self.logger
        ) { _ in }
        subscriber.start()
        #expect(await eventually { subscriber.health.lastError?.contains("did not answer SUBSCRIBE") == true })
        #expect(!subscriber.health.connected)
        kill(pid, SIGCONT)
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        #expect(subscriber.health.lastError == nil)
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func backPressureRefusesBeyondTheQueueBound() async throws {
        let redis = try await RedisServerProcess.start()
        let publisher = RedisPublisher(
            url: redis.url,
            configuration: .init(maxInFlight: 1, maxQueued: 3),
            logger: self.logger
        )
        let results = NIOLockedValueBox<[Int: PublishProgress]>([:])
        // All ten are submitted in one event-loop tick, before the connection exists: three fit in the queue.
        publisher.eventLoop.execute {
            for index in 0..<10 {
                publisher.publish(ByteBuffer(string: "\(index)")) { progress in
                    results.withLockedValue { $0[index] = progress }
                }
            }
        }
        #expect(await eventually { results.withLockedValue { $0.count } == 10 })
        let outcome = results.withLockedValue { $0 }
        for index in 0..<10 {
            switch outcome[index] {
            case .published?: #expect(index < 3, "\(index) published")
            case .failed(let error)?: #expect(index >= 3 && error.code == .overloaded, "\(index): \(error)")
            default: Issue.record("\(index): \(String(describing: outcome[index]))")
            }
        }
        await publisher.shutdown()
        await redis.stop()
    }

    @Test func aStuckConnectionTimesOutAndIsReplaced() async throws {
        let redis = try await RedisServerProcess.start()
        let publisher = RedisPublisher(
            url: redis.url,
            configuration: .init(replyTimeout: .milliseconds(300)),
            logger: self.logger
        )
        #expect(try await publisher.publish(ByteBuffer(string: "warm")) == 0)
        guard let pid = redis.pid else {
            Issue.record("redis-server is not running")
            return
        }
        kill(pid, SIGSTOP)
        do {
            _ = try await publisher.publish(ByteBuffer(string: "stuck"))
            Issue.record("publish to a frozen Redis succeeded")
        } catch {
            #expect(error.code == .timeout, "\(error)")
        }
        kill(pid, SIGCONT)
        var recovered = false
        for _ in 0..<100 where !recovered {
            recovered = (try? await publisher.publish(ByteBuffer(string: "again"))) != nil
            if !recovered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(recovered)
        #expect(publisher.currentStatus.reconnects >= 1)
        await publisher.shutdown()
        await redis.stop()
    }

    @Test func publisherFailsFastWhenRedisIsDown() async throws {
        let redis = try await RedisServerProcess.start()
        let url = redis.url
        await redis.stop()
        let publisher = RedisPublisher(url: url, logger: self.logger)
        do {
            _ = try await publisher.publish(ByteBuffer(string: "x"))
            Issue.record("publish succeeded with Redis down")
        } catch {
            #expect(error.code == .connectionFailed)
        }
        try await redis.restart()
        // After the backoff window the next publish reconnects.
        var published = false
        for _ in 0..<100 where !published {
            published = (try? await publisher.publish(ByteBuffer(string: "y"))) != nil
            if !published { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(published)
        await publisher.shutdown()
        await redis.stop()
    }
}

@Suite(.serialized) struct SocketIOPubSubChannelTests {
    let logger = Logger(label: "test.channel")

    @Test func deliversDecodedMessagesFromOthersAndSkipsItsOwn() async throws {
        let redis = try await RedisServerProcess.start()
        let received = NIOLockedValueBox<[PubSubMessage]>([])
        let server = SocketIOPubSubChannel(url: redis.url, logger: self.logger) { message in
            // An emit's arguments are read lazily: decoded here, they are what was published.
            received.withLockedValue { $0.append(try! message.decoded()) }
        }
        server.start()
        #expect(await server.subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let other = RedisPublisher(url: redis.url, logger: self.logger)
        // Our own emit: skipped. Garbage: skipped. A callback addressed to us: delivered. Another host's emit: delivered.
        let own = PubSubMessage.emit("e", arguments: [1], to: .broadcast, options: .init(), hostID: server.hostID)
        let theirs = PubSubMessage.emit("e", arguments: [2], to: .room("r"), options: .init(), hostID: "other")
        let callback = PubSubMessage.callback(hostID: server.hostID, sid: "s", namespace: "/", id: 3, arguments: ["ok"])
        let notOurs = PubSubMessage.callback(hostID: "other", sid: "s", namespace: "/", id: 4, arguments: [])
        #expect(try await other.publish(own.encoded()) == 1)
        #expect(try await other.publish(ByteBuffer(string: "not json")) == 1)
        #expect(try await other.publish(notOurs.encoded()) == 1)
        #expect(try await other.publish(callback.encoded()) == 1)
        let progress = await withCheckedContinuation { continuation in
            server.publish(theirs) { continuation.resume(returning: $0) }
        }
        guard case .published(let subscribers) = progress else {
            Issue.record("not published: \(progress)")
            return
        }
        #expect(subscribers == 1)
        #expect(try await other.publish(theirs.encoded()) == 1)
        #expect(await eventually { received.withLockedValue { $0.count } >= 2 })
        try await Task.sleep(for: .milliseconds(100))
        // `theirs` published by the server itself carries host "other", so it comes back too.
        #expect(received.withLockedValue { $0 } == [callback, theirs, theirs])
        #expect(server.health.connected)
        await other.shutdown()
        await server.shutdown()
        await redis.stop()
    }

    /// A flood of garbage on the channel: every message counted and skipped, a bounded number of log lines with
    /// escaped bytes, and the next real message still delivered.
    @Test func garbageIsCountedSkippedAndLoggedAtABoundedRate() async throws {
        let redis = try await RedisServerProcess.start()
        let lines = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        let logger = Logger(label: "test.garbage") { _ in CapturingLogHandler(lines: lines) }
        let received = NIOLockedValueBox<[PubSubMessage]>([])
        let server = SocketIOPubSubChannel(url: redis.url, logger: logger, undecodableLogInterval: .seconds(3600)) {
            message in received.withLockedValue { $0.append(try! message.decoded()) }
        }
        server.start()
        #expect(await server.subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let other = RedisPublisher(url: redis.url, logger: self.logger)
        let garbage: [ByteBuffer] = [
            ByteBuffer(string: "not json\n\u{1B}[2J fake log line"),
            ByteBuffer(bytes: [0x80, 0xFF, 0x0A, 0x41]),
            ByteBuffer(string: #"{"method": "emit", "event": 7}"#),
            ByteBuffer(string: #"{"method": "explode"}"#),
            ByteBuffer(string: "[" + String(repeating: "[", count: 10_000)),
            ByteBuffer(string: #"{"method": "emit", "event": "e", "data": "not a list"}"#),
        ]
        let rounds = 200
        for _ in 0..<rounds {
            for message in garbage {
                #expect(try await other.publish(message) == 1)
            }
        }
        // One huge message (8 MiB, not JSON): read, skipped and counted like the others.
        #expect(try await other.publish(ByteBuffer(repeating: UInt8(ascii: "x"), count: 8 << 20)) == 1)
        let real = PubSubMessage.emit("e", arguments: ["after"], to: .broadcast, options: .init(), hostID: "other")
        #expect(try await other.publish(real.encoded()) == 1)
        #expect(await eventually { received.withLockedValue { $0.count } == 1 })
        #expect(received.withLockedValue { $0 } == [real])
        #expect(server.undecodableMessages == rounds * garbage.count + 1)
        let warnings = lines.withLockedValue { $0.map(\.text).filter { $0.contains("unreadable pub/sub message") } }
        #expect(warnings.count == 1, "one line per interval, not one per message: \(warnings.count)")
        for line in warnings {
            #expect(!line.contains("\n") && !line.contains("\u{1B}"), "escaped: \(line)")
        }
        await other.shutdown()
        await server.shutdown()
        await redis.stop()
    }
}
