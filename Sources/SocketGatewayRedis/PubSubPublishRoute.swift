import NIOConcurrencyHelpers
package import NIOCore
package import SocketGatewayCore

/// Where a message is published, decided in one place for servers (``SocketIOPubSubChannel``) and workers
/// (`WorkerSocketGateway`): an emit to exactly one room in ``RedisChannelMode/rooms`` goes to that room's channel,
/// with `SPUBLISH` through ``RedisClusterPubSub`` on a Redis Cluster and with `PUBLISH` through the
/// ``RedisPublisher`` otherwise; everything else goes to the common channel through the publisher.
package struct PubSubPublishRoute: Sendable {
    /// The common channel and, in room-channel mode, the rooms' channels.
    package let layout: PubSubChannelLayout
    /// The pipelined publisher: the common channel, and room channels off a cluster.
    package let publisher: RedisPublisher
    /// Room channels on a Redis Cluster in room-channel mode; `nil` otherwise.
    package let sharded: RedisClusterPubSub?
    private let writer: PubSubMessageWriter
    private let shardedStarted = NIOLockedValueBox(false)

    /// Creates a route.
    /// - Parameters:
    ///   - layout: The channel names.
    ///   - publisher: The pipelined publisher.
    ///   - sharded: The sharded client for room channels, when there is one.
    ///   - writer: Encodes (and signs) each message into the publish's payload.
    package init(
        layout: PubSubChannelLayout,
        publisher: RedisPublisher,
        sharded: RedisClusterPubSub?,
        writer: PubSubMessageWriter
    ) {
        self.layout = layout
        self.publisher = publisher
        self.sharded = sharded
        self.writer = writer
    }

    /// Starts the sharded client, once (later calls do nothing); the first sharded publish starts it too.
    package func startSharded() {
        guard let sharded = self.sharded else { return }
        let start = self.shardedStarted.withLockedValue { started -> Bool in
            defer { started = true }
            return !started
        }
        if start { sharded.start() }
    }

    /// Publishes `message`; `completion` (if any) is called once on the publisher's event loop (on the sharded
    /// client's loop for a room channel on a Redis Cluster).
    package func publish(_ message: PubSubMessage, completion: (@Sendable (PublishProgress) -> Void)?) {
        let room = self.layout.roomChannel(for: message)
        if let room, let sharded = self.sharded {
            self.startSharded()
            sharded.publish(channel: room, completion: completion) { self.writer.write(message, into: &$0) }
            return
        }
        self.publisher.publish(channel: room, completion: completion) { self.writer.write(message, into: &$0) }
    }

    /// Publishes `message`; `completion` is called exactly once on the publisher's event loop (on the sharded
    /// client's loop for a room channel on a Redis Cluster): with the outcome, or `.timedOut` at `deadline` if
    /// Redis has not answered by then (a sharded publish without an outbox fails with the reason instead).
    package func publish(
        _ message: PubSubMessage,
        deadline: NIODeadline,
        completion: @escaping @Sendable (PublishOutcome) -> Void
    ) {
        let room = self.layout.roomChannel(for: message)
        if let room, let sharded = self.sharded {
            self.startSharded()
            sharded.publish(channel: room, deadline: deadline, completion: completion) {
                self.writer.write(message, into: &$0)
            }
            return
        }
        self.publisher.publish(channel: room, deadline: deadline, completion: completion) {
            self.writer.write(message, into: &$0)
        }
    }
}
