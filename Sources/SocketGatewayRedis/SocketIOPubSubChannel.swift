public import Logging
import Metrics
public import NIOCore
public import SocketGatewayCore

/// python-socketio's Redis channel as a server sees it: a publisher, a subscriber that decodes every message,
/// and this server's host id.
///
/// Messages this host published itself are skipped (as python-socketio does), except `callback` messages
/// addressed to it. Messages that cannot be decoded are logged, counted
/// (`socketgateway_redis_undecodable_total`) and skipped; they never stop the subscription.
public final class SocketIOPubSubChannel: Sendable {
    /// This server's id, written as `host_id` into everything it publishes.
    public let hostID: String
    /// The channel name, `socketio` by default.
    public let channel: String
    /// The pipelined publisher (connects on first use).
    public let publisher: RedisPublisher
    /// The subscriber (connects on `start()`).
    public let subscriber: RedisSubscriber

    /// Creates the channel; call `start()` to subscribe.
    /// - Parameters:
    ///   - url: Where Redis is.
    ///   - channel: The pub/sub channel shared with the other servers and workers.
    ///   - hostID: This server's id; random by default.
    ///   - publisherConfiguration: Timeouts and limits of the publisher (its `channel` is replaced by `channel`).
    ///   - subscriberConfiguration: Backoff and liveness check of the subscriber.
    ///   - eventLoop: The loop for both connections; `nil` picks one of NIO's shared loops.
    ///   - logger: Where connection changes and undecodable messages are logged.
    ///   - onMessage: Called on the subscriber's event loop with each message meant for this host.
    public init(
        url: RedisURL, channel: String = "socketio", hostID: String = PubSubHostID.generate(),
        publisherConfiguration: RedisPublisherConfiguration = .init(),
        subscriberConfiguration: RedisSubscriberConfiguration = .init(), eventLoop: (any EventLoop)? = nil,
        logger: Logger, onMessage: @escaping @Sendable (PubSubMessage) -> Void
    ) {
        self.hostID = hostID
        self.channel = channel
        var publisherConfiguration = publisherConfiguration
        publisherConfiguration.channel = channel
        self.publisher = RedisPublisher(
            url: url, configuration: publisherConfiguration, eventLoop: eventLoop, logger: logger)
        let undecodable = Counter(label: "socketgateway_redis_undecodable_total", dimensions: [("channel", channel)])
        self.subscriber = RedisSubscriber(
            url: url, channels: [channel], configuration: subscriberConfiguration, eventLoop: eventLoop, logger: logger
        ) { raw in
            let message: PubSubMessage
            do {
                message = try PubSubMessage.decode(raw.payload)
            } catch {
                undecodable.increment()
                logger.warning("skipped an unreadable pub/sub message", metadata: ["error": "\(error)"])
                return
            }
            guard message.isRelevant(toHost: hostID) else { return }
            onMessage(message)
        }
    }

    /// Subscribes (and keeps resubscribing after connection losses).
    public func start() {
        self.subscriber.start()
    }

    /// Publishes `message`; `completion` (if any) is called once on the publisher's event loop.
    public func publish(_ message: PubSubMessage, completion: (@Sendable (PublishProgress) -> Void)?) {
        self.publisher.publish(completion: completion) { message.encode(into: &$0) }
    }

    /// Publishes `message`; `completion` is called exactly once on the publisher's event loop: with the
    /// outcome, or `.timedOut` at `deadline` if Redis has not answered by then.
    package func publish(
        _ message: PubSubMessage, deadline: NIODeadline, completion: @escaping @Sendable (PublishOutcome) -> Void
    ) {
        self.publisher.publish(deadline: deadline, completion: completion) { message.encode(into: &$0) }
    }

    /// Subscriber health (connected, last message age, reconnects).
    public var health: RedisSubscriberHealth { self.subscriber.health }

    /// Stops the subscriber and closes the publisher after at most `drainTimeout` of sending what is queued.
    public func shutdown(drainTimeout: Duration = .seconds(2)) async {
        await self.subscriber.shutdown()
        await self.publisher.shutdown(deadline: .now() + TimeAmount(drainTimeout))
    }
}
