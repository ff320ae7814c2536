import Logging
import NIOConcurrencyHelpers
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// A subscriber's dynamic room channels against a real redis-server: SUBSCRIBE on demand, confirmed before the join
/// completes, subscribed again after Redis restarts, and UNSUBSCRIBE once unwanted for the delay.
@Suite(.serialized) struct RoomChannelSubscriberTests {
    let logger = Logger(label: "test.redis.rooms")

    /// Waits for `whenRoomChannelActive`'s answer.
    func activate(
        _ subscriber: RedisSubscriber,
        _ channel: String,
        wanted: NIOLockedValueBox<Bool>
    ) async -> Bool {
        await withCheckedContinuation { continuation in
            subscriber.whenRoomChannelActive(channel, wanted: { wanted.withLockedValue { $0 } }, timeout: .seconds(10))
            {
                continuation.resume(returning: $0)
            }
        }
    }

    @Test func aRoomChannelIsSubscribedOnDemandKeptAcrossARestartAndDroppedAfterTheDelay() async throws {
        let redis = try await RedisServerProcess.start()
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(
            url: redis.url,
            channels: ["socketio"],
            configuration: .init(roomUnsubscribeDelay: .milliseconds(200)),
            logger: self.logger
        ) { recorder.record($0) }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let room = "socketio#/#user:1#"
        let wanted = NIOLockedValueBox(true)

        // Active means confirmed: a PUBLISH right after reaches it.
        #expect(await self.activate(subscriber, room, wanted: wanted))
        #expect(try await redis.cli(["PUBLISH", room, "one"]) == "1")
        #expect(await recorder.wait { $0 == ["one"] })
        #expect(subscriber.health.roomChannels == 1)

        // Redis restarts: the common channel and the room channel are subscribed again.
        await redis.stop()
        #expect(await eventually { !subscriber.health.connected })
        try await redis.restart()
        #expect(await eventually { (try? await redis.cli(["PUBSUB", "CHANNELS", "socketio#*"])) == room })
        #expect(await self.activate(subscriber, room, wanted: wanted))
        #expect(try await redis.cli(["PUBLISH", room, "two"]) == "1")
        #expect(await recorder.wait { $0 == ["one", "two"] })

        // Unwanted: unsubscribed once the delay has passed (the ticker checks it).
        wanted.withLockedValue { $0 = false }
        subscriber.updateRoomChannel(room) { wanted.withLockedValue { $0 } }
        #expect(await eventually { (try? await redis.cli(["PUBSUB", "CHANNELS", "socketio#*"])) == "" })
        #expect(await eventually { subscriber.health.roomChannels == 0 })
        #expect(try await redis.cli(["PUBSUB", "NUMSUB", "socketio"]) == "socketio\n1", "the common channel stays")
        await subscriber.shutdown()
        await redis.stop()
    }
}
