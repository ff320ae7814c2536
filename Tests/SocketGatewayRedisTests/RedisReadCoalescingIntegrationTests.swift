import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// Read coalescing on a real subscription connection: a long delay (200 ms) makes the held read cover what the
/// test publishes next, and what arrives meanwhile must come out whole and in order, with pause/resume intact.
@Suite(.serialized) struct RedisReadCoalescingIntegrationTests {
    let logger = Logger(label: "test.redis.coalescing")
    let configuration = RedisSubscriberConfiguration(readCoalescing: .milliseconds(200))

    /// Publishes `payloads` pipelined and waits until Redis accepted every one.
    func publish(_ payloads: [String], with publisher: RedisPublisher) async -> Bool {
        let accepted = NIOLockedValueBox(0)
        for payload in payloads {
            publisher.publish(ByteBuffer(string: payload)) { progress in
                if case .published = progress { accepted.withLockedValue { $0 += 1 } }
            }
        }
        return await eventually { accepted.withLockedValue { $0 } == payloads.count }
    }

    /// Two messages in quick succession: the second read found its data soon after it was armed, so the next read
    /// is held for the delay.
    func makeBusy(_ recorder: MessageRecorder, with publisher: RedisPublisher, tag: String) async -> Bool {
        let before = recorder.count
        guard await self.publish(["\(tag)-0"], with: publisher) else { return false }
        guard await recorder.wait(until: { $0.count == before + 1 }) else { return false }
        guard await self.publish(["\(tag)-1"], with: publisher) else { return false }
        return await recorder.wait(until: { $0.count == before + 2 })
    }

    @Test func aBurstArrivingWhileAReadIsHeldIsDeliveredWholeAndInOrder() async throws {
        let redis = try await RedisServerProcess.start()
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(
            url: redis.url,
            channels: ["socketio"],
            configuration: self.configuration,
            logger: self.logger
        ) { recorder.record($0) }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(url: redis.url, configuration: .init(maxInFlight: 1000), logger: self.logger)
        #expect(await self.makeBusy(recorder, with: publisher, tag: "warm"))
        // Published at once, while the next read is held: it waits in the socket, and is read when the timer
        // releases the read; then silence, so only the timer can bring the tail in.
        let burst = (0..<5000).map { "b\($0)" }
        #expect(await self.publish(burst, with: publisher))
        #expect(await recorder.wait(until: { $0.count >= 5002 }))
        #expect(recorder.messages == ["warm-0", "warm-1"] + burst)
        // After the burst and a quiet spell, a single message still arrives (the connection reads again).
        try await Task.sleep(for: .milliseconds(400))
        #expect(await self.publish(["after"], with: publisher))
        #expect(await recorder.wait(until: { $0.last == "after" }))
        #expect(subscriber.health.connected)
        #expect(subscriber.health.reconnects == 0)
        await publisher.shutdown()
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func pauseAndResumeStillWorkWithAHeldRead() async throws {
        let redis = try await RedisServerProcess.start()
        let recorder = MessageRecorder()
        let paused = NIOLockedValueBox(false)
        let subscriber = RedisSubscriber(
            url: redis.url,
            channels: ["socketio"],
            configuration: self.configuration,
            logger: self.logger
        ) { recorder.record($0) }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(url: redis.url, configuration: .init(maxInFlight: 1000), logger: self.logger)
        #expect(await self.makeBusy(recorder, with: publisher, tag: "warm"))
        // Paused while the next read is held: the held read's timer must not read.
        paused.withLockedValue { $0 = true }
        subscriber.updateReading { paused.withLockedValue { $0 } }
        #expect(await eventually { subscriber.health.readingPaused })
        let held = (0..<1000).map { "p\($0)" }
        #expect(await self.publish(held, with: publisher))
        // Past the held read's deadline (200 ms): still nothing read while paused.
        try await Task.sleep(for: .milliseconds(500))
        #expect(recorder.count == 2)
        paused.withLockedValue { $0 = false }
        subscriber.updateReading { paused.withLockedValue { $0 } }
        #expect(await recorder.wait(until: { $0.count >= 1002 }))
        #expect(recorder.messages == ["warm-0", "warm-1"] + held)
        #expect(subscriber.health.pauses == 1)
        // Busy again, paused and resumed before the held read's deadline: the resume reads, the timer adds nothing.
        #expect(await self.makeBusy(recorder, with: publisher, tag: "again"))
        paused.withLockedValue { $0 = true }
        subscriber.updateReading { paused.withLockedValue { $0 } }
        #expect(await self.publish(["q0", "q1", "q2"], with: publisher))
        paused.withLockedValue { $0 = false }
        subscriber.updateReading { paused.withLockedValue { $0 } }
        #expect(await recorder.wait(until: { $0.count >= 1007 }))
        #expect(Array(recorder.messages.suffix(5)) == ["again-0", "again-1", "q0", "q1", "q2"])
        #expect(subscriber.health.reconnects == 0)
        await publisher.shutdown()
        await subscriber.shutdown()
        await redis.stop()
    }
}
