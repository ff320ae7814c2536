import Logging
import NIOConcurrencyHelpers
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// A `RoomChannelTransport` whose answers the test gives, in the order it chooses: the real one (a Redis Cluster)
/// cannot be made to hold a SUNSUBSCRIBE's answer while a SUBSCRIBE of the same channel overtakes it, nor to time a
/// confirmation out on demand. (`RoomChannelClusterTests` runs the real one.)
private final class HeldTransport: RoomChannelTransport {
    struct Request {
        var subscribe: Bool
        var channel: String
        var answer: @Sendable (Result<Void, RedisError>) -> Void
    }

    let requests = NIOLockedValueBox<[Request]>([])

    func subscribeRoomChannel(
        _ channel: String,
        timeout: Duration,
        confirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    ) {
        self.requests.withLockedValue { $0.append(Request(subscribe: true, channel: channel, answer: confirmed)) }
    }

    func unsubscribeRoomChannel(
        _ channel: String,
        timeout: Duration,
        confirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    ) {
        self.requests.withLockedValue { $0.append(Request(subscribe: false, channel: channel, answer: confirmed)) }
    }

    /// Waits (bounded: 5 s) until there are more than `count` requests; returns request number `count`.
    func request(_ count: Int) async throws -> Request {
        for _ in 0..<500 {
            if let request = self.requests.withLockedValue({ $0.count > count ? $0[count] : nil }) { return request }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RedisError(code: .timeout, message: "no request #\(count): \(self.requests.withLockedValue { $0.count })")
    }
}

/// A subscriber whose room channels go through a `RoomChannelTransport` (as on a Redis Cluster): the room machine's
/// decisions reach the transport one channel at a time, its answers reach the machine, and the order problems of
/// two independent confirmations are settled in the shell. The common channel is on a real redis-server.
@Suite(.serialized) struct RoomChannelTransportTests {
    let logger = Logger(label: "test.redis.room-transport")

    func activate(_ subscriber: RedisSubscriber, _ channel: String, wanted: Bool) async -> Bool {
        await withCheckedContinuation { continuation in
            subscriber.whenRoomChannelActive(channel, wanted: { wanted }, timeout: .seconds(10)) {
                continuation.resume(returning: $0)
            }
        }
    }

    /// Waits (bounded: 2 s) until the subscriber's health counts `count` room channels (it is updated just after
    /// the joins are completed).
    func roomChannels(_ subscriber: RedisSubscriber, become count: Int) async throws -> Bool {
        for _ in 0..<200 where subscriber.health.roomChannels != count {
            try await Task.sleep(for: .milliseconds(10))
        }
        return subscriber.health.roomChannels == count
    }

    /// A join waits for the transport's confirmation; an unconfirmed subscribe (timed out) is asked again and the
    /// join completes on the second answer. The room's last member leaving sends the unsubscribe after the delay;
    /// a member coming back before it is answered sends a subscribe at once, and the join completes on that
    /// subscribe's confirmation alone; the late answer of the superseded unsubscribe changes nothing.
    @Test func decisionsGoThroughTheTransportAndASubscribeOvertakesAnUnansweredUnsubscribe() async throws {
        let redis = try await RedisServerProcess.start()
        let transport = HeldTransport()
        let subscriber = RedisSubscriber(
            url: redis.url,
            channels: ["socketio"],
            configuration: .init(pingInterval: .milliseconds(100), roomUnsubscribeDelay: .milliseconds(100)),
            roomTransport: transport,
            logger: self.logger
        ) { _ in }
        subscriber.start()
        let room = "socketio#/#user:t#"
        do {
            async let firstJoin = self.activate(subscriber, room, wanted: true)
            let first = try await transport.request(0)
            #expect(first.subscribe && first.channel == room)
            first.answer(.failure(RedisError(code: .timeout, message: "SSUBSCRIBE not confirmed in time")))
            let again = try await transport.request(1)
            #expect(again.subscribe && again.channel == room, "an unconfirmed subscribe is asked again")
            again.answer(.success(()))
            #expect(await firstJoin)
            #expect(try await self.roomChannels(subscriber, become: 1))

            // The last member leaves: after the delay, the unsubscribe goes out; it is not answered yet.
            subscriber.updateRoomChannel(room) { false }
            let unsubscribe = try await transport.request(2)
            #expect(!unsubscribe.subscribe && unsubscribe.channel == room)
            // A member comes back: a subscribe at once, and the join completes on its confirmation alone.
            async let secondJoin = self.activate(subscriber, room, wanted: true)
            let resubscribe = try await transport.request(3)
            #expect(resubscribe.subscribe && resubscribe.channel == room)
            resubscribe.answer(.success(()))
            #expect(await secondJoin)
            // The superseded unsubscribe's answer arrives late: the channel stays active.
            unsubscribe.answer(.success(()))
            #expect(await self.activate(subscriber, room, wanted: true))
            #expect(try await self.roomChannels(subscriber, become: 1))
            #expect(transport.requests.withLockedValue { $0.count } == 4)
        } catch {
            Issue.record("\(error)")
        }
        await subscriber.shutdown()
        await redis.stop()
    }
}
