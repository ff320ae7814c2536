package import Logging
import Metrics
import NIOConcurrencyHelpers
package import NIOCore
import NIOPosix
package import SocketGatewayCore

/// python-socketio's Redis channel as a server sees it: a publisher, a subscriber that reads every message,
/// and this server's host id.
///
/// An `emit` is handed over with its arguments as published (``PubSubReceivedEmit``): its target is read, its
/// `data` is checked but not decoded, so a server with no member of the addressed rooms pays little for it.
///
/// With `onEmit`, an emit is first read up to its target only (``PubSubEmitTarget``) and handed over with a way to
/// read the rest: one the callback drops without reading (nobody here) costs no more, and a malformed one is then
/// not undecodable; one it reads is checked whole, its target not read twice.
///
/// Messages this host published itself are skipped (as python-socketio does), except `callback` messages
/// addressed to it. Messages that cannot be decoded are counted (`socketgateway_redis_undecodable_total`,
/// ``undecodableMessages``) and skipped; they never stop the subscription. They are logged at most once per
/// `undecodableLogInterval` (with the number suppressed since the previous line), their bytes escaped, so a flood
/// of garbage on the channel cannot flood the log.
package final class SocketIOPubSubChannel: Sendable {
    /// This server's id, written as `host_id` into everything it publishes.
    package let hostID: String
    /// The common channel's name, `socketio` by default.
    package var channel: String { self.layout.channel }
    /// The common channel and, in room-channel mode, the rooms' channels.
    package let layout: PubSubChannelLayout
    /// The pipelined publisher (connects on first use).
    package let publisher: RedisPublisher
    /// The subscriber (connects on `start()`).
    package let subscriber: RedisSubscriber
    /// Room channels on a Redis Cluster (`redis+cluster://` in ``RedisChannelMode/rooms``): `SPUBLISH` and
    /// `SSUBSCRIBE` on the shard that owns each room's channel; `nil` otherwise (classic PUBLISH/SUBSCRIBE).
    package let sharded: RedisClusterPubSub?
    private let undecodable = NIOLockedValueBox(0)
    private let unverified = NIOLockedValueBox(0)
    private let writer: PubSubMessageWriter
    /// Which of `publisher` and `sharded` each message goes to.
    private let route: PubSubPublishRoute

    /// Creates the channel; call `start()` to subscribe.
    /// - Parameters:
    ///   - url: Where Redis is.
    ///   - channel: The pub/sub channel shared with the other servers and workers.
    ///   - mode: `.rooms` publishes emits to one room on that room's channel (see ``RedisChannelMode``) and lets
    ///     ``updateRoom(namespace:room:wanted:)`` subscribe room channels; `.python` (the default) uses `channel`
    ///     alone.
    ///   - hostID: This server's id; random by default.
    ///   - publisherConfiguration: Timeouts and limits of the publisher (its `channel` is replaced by `channel`).
    ///   - subscriberConfiguration: Backoff and liveness check of the subscriber.
    ///   - eventLoop: The loop for both connections; `nil` picks one of NIO's shared loops.
    ///   - logger: Where connection changes and undecodable messages are logged.
    ///   - undecodableLogInterval: At most one log line per interval for messages that cannot be decoded, and
    ///     for messages refused by the signature check (default 10 s); every one is counted.
    ///   - signingKey: When set, every message published is signed and every message received must carry a
    ///     valid signature of this key (see ``PubSubSigningKey``); others are counted and skipped.
    ///   - ownChannels: Channels of this project's own (not python-socketio's format) to subscribe to as well;
    ///     their messages, signature-checked like the others, go to `onOwnMessage` undecoded.
    ///   - onOwnMessage: Called on the subscriber's event loop with each message of `ownChannels`.
    ///   - onEmit: Called on the subscriber's event loop, in arrival order with the other messages, with the
    ///     target of each emit from another host, read from its bytes before anything else of it
    ///     (``PubSubEmitTarget``), and `read`, which reads the rest as ``PubSubMessage/read(_:scanned:)`` does:
    ///     the emit, or `nil` when it cannot be decoded (counted and logged here as undecodable). Not calling
    ///     `read` drops the message unchecked beyond its target (a malformed one is then not counted as
    ///     undecodable). Such an emit goes to `onEmit` only, not to `onMessage`. Own emits whose target can be
    ///     read are dropped unchecked too. `nil` (the default) reads every message whole first.
    ///   - onMessage: Called on the subscriber's event loop with each message meant for this host (but the emits
    ///     `onEmit` takes), in arrival order; an emit's arguments are decoded only if it asks for them.
    package init(
        url: RedisURL,
        channel: String = "socketio",
        mode: RedisChannelMode = .python,
        hostID: String = PubSubHostID.generate(),
        publisherConfiguration: RedisPublisherConfiguration = .init(),
        subscriberConfiguration: RedisSubscriberConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil,
        logger: Logger,
        undecodableLogInterval: Duration = .seconds(10),
        signingKey: PubSubSigningKey? = nil,
        ownChannels: [String] = [],
        onOwnMessage: (@Sendable (RedisPubSubMessage) -> Void)? = nil,
        onEmit: (@Sendable (PubSubEmitTarget, _ read: () -> PubSubReceivedEmit?) -> Void)? = nil,
        onMessage: @escaping @Sendable (PubSubReceived) -> Void
    ) {
        self.hostID = hostID
        self.layout = PubSubChannelLayout(channel: channel, mode: mode)
        var publisherConfiguration = publisherConfiguration
        publisherConfiguration.channel = channel
        self.publisher = RedisPublisher(
            url: url,
            configuration: publisherConfiguration,
            eventLoop: eventLoop,
            logger: logger
        )
        let undecodableCounter = Counter(
            label: "socketgateway_redis_undecodable_total",
            dimensions: [("channel", channel)]
        )
        let undecodable = self.undecodable
        let undecodableWarning = RateLimitedWarning(interval: undecodableLogInterval)
        let unverified = self.unverified
        let unverifiedWarning = RateLimitedWarning(interval: undecodableLogInterval)
        let unverifiedCounter = Counter(
            label: "socketgateway_redis_signature_rejected_total",
            dimensions: [("channel", channel)]
        )
        let writer = PubSubMessageWriter(signingKey: signingKey)
        self.writer = writer
        let signer = writer.signer
        let ownChannelSet = Set(ownChannels)
        // Messages of the common channel and of sharded room channels take the same path, on the same loop.
        let handle: @Sendable (RedisPubSubMessage) -> Void = { raw in
            if let signer {
                let check = signer.check(raw.payload, now: PubSubSigner.wallClockMilliseconds())
                guard check == .valid else {
                    unverifiedCounter.increment()
                    unverified.withLockedValue { $0 += 1 }
                    var metadata: Logger.Metadata {
                        var metadata: Logger.Metadata = [
                            "reason": "\(check.reason)",
                            "message": "\(LogSafe.excerpt(raw.payload.readableBytesView, limit: 200))",
                        ]
                        if case .outOfWindow(let age) = check { metadata["age_ms"] = "\(age)" }
                        return metadata
                    }
                    unverifiedWarning.log(
                        logger,
                        "skipped a pub/sub message that is not signed with this cluster's key",
                        metadata: metadata
                    )
                    return
                }
            }
            if let onOwnMessage, raw.channel != channel, ownChannelSet.contains(raw.channel) {
                onOwnMessage(raw)
                return
            }
            func refused(_ error: any Error) {
                undecodableCounter.increment()
                undecodable.withLockedValue { $0 += 1 }
                // The error's excerpt of the message is escaped (LogSafe): one line, no terminal escapes.
                undecodableWarning.log(logger, "skipped an unreadable pub/sub message", metadata: ["error": "\(error)"])
            }
            // An emit is first read up to its target only: one for nobody here stops at that, and one for someone
            // here is read on from it.
            if let onEmit, let target = PubSubEmitTarget.scan(raw.payload) {
                if target.isSent(byHost: hostID, in: raw.payload) { return }
                onEmit(target) {
                    do {
                        return try PubSubMessage.read(raw.payload, scanned: target)
                    } catch {
                        refused(error)
                        return nil
                    }
                }
                return
            }
            let message: PubSubReceived
            do {
                message = try PubSubMessage.read(raw.payload)
            } catch {
                refused(error)
                return
            }
            guard message.isRelevant(toHost: hostID) else { return }
            onMessage(message)
        }
        let subscriberLoop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        self.sharded = Self.shardedRoomChannels(
            url: url,
            mode: mode,
            publishTimeout: publisherConfiguration.replyTimeout,
            outboxCapacity: publisherConfiguration.outboxCapacity,
            outboxSubscriberWait: publisherConfiguration.outboxSubscriberWait,
            subscriberConfiguration: subscriberConfiguration,
            eventLoop: subscriberLoop,
            logger: logger,
            onMessage: handle
        )
        self.subscriber = RedisSubscriber(
            url: url,
            channels: [channel] + ownChannels,
            configuration: subscriberConfiguration,
            eventLoop: subscriberLoop,
            roomTransport: self.sharded,
            logger: logger,
            onMessage: handle
        )
        self.route = PubSubPublishRoute(
            layout: self.layout,
            publisher: self.publisher,
            sharded: self.sharded,
            writer: writer
        )
    }

    /// The sharded pub/sub client for room channels when `url` is a Redis Cluster and `mode` is
    /// ``RedisChannelMode/rooms``; `nil` otherwise. `outboxCapacity` and `outboxSubscriberWait` are the
    /// publisher's, so that sharded publishes queue, drop and hold as the classic ones do.
    package static func shardedRoomChannels(
        url: RedisURL,
        mode: RedisChannelMode,
        publishTimeout: Duration,
        outboxCapacity: Int = 0,
        outboxSubscriberWait: Duration = .seconds(10),
        subscriberConfiguration: RedisSubscriberConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil,
        logger: Logger,
        onMessage: @escaping @Sendable (RedisPubSubMessage) -> Void = { _ in }
    ) -> RedisClusterPubSub? {
        guard mode == .rooms, case .cluster = url.endpoint else { return nil }
        return RedisClusterPubSub(
            url: url,
            configuration: .init(
                connectTimeout: subscriberConfiguration.connectTimeout,
                publishTimeout: publishTimeout,
                pingInterval: subscriberConfiguration.pingInterval,
                pingTimeout: subscriberConfiguration.pingTimeout,
                outboxCapacity: outboxCapacity,
                outboxSubscriberWait: outboxSubscriberWait,
                readCoalescing: subscriberConfiguration.readCoalescing
            ),
            eventLoop: eventLoop,
            logger: logger,
            onMessage: onMessage
        )
    }

    /// Publishes bytes of this project's own format on `channel` (one of the `ownChannels` of some server),
    /// signed like every other message when signing; `completion` is called exactly once on the publisher's
    /// event loop, `.timedOut` at `deadline` if Redis has not answered by then.
    package func publishOwn(
        channel: String,
        deadline: NIODeadline,
        completion: @escaping @Sendable (PublishOutcome) -> Void,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        let signer = self.writer.signer
        self.publisher.publish(channel: channel, deadline: deadline, completion: completion) { buffer in
            let start = buffer.writerIndex
            writePayload(&buffer)
            signer?.sign(&buffer, from: start, now: PubSubSigner.wallClockMilliseconds())
        }
    }

    /// Subscribes (and keeps resubscribing after connection losses).
    package func start() {
        self.route.startSharded()
        self.subscriber.start()
    }

    /// Publishes `message`; `completion` (if any) is called once on the publisher's event loop (on the sharded
    /// client's loop for a room channel on a Redis Cluster).
    package func publish(_ message: PubSubMessage, completion: (@Sendable (PublishProgress) -> Void)?) {
        self.route.publish(message, completion: completion)
    }

    /// Publishes `message`; `completion` is called exactly once on the publisher's event loop (on the sharded
    /// client's loop for a room channel on a Redis Cluster): with the outcome, or `.timedOut` at `deadline` if
    /// Redis has not answered by then (a sharded publish without an outbox fails with the reason instead).
    package func publish(
        _ message: PubSubMessage,
        deadline: NIODeadline,
        completion: @escaping @Sendable (PublishOutcome) -> Void
    ) {
        self.route.publish(message, deadline: deadline, completion: completion)
    }

    /// Room-channel mode: keeps the channel of `room` in `namespace` subscribed while `wanted()` (read on the
    /// subscriber's loop) is true, and drops it after the subscriber's `roomUnsubscribeDelay` once it is false.
    /// Any thread; calls may arrive out of order (each reads `wanted()` anew).
    package func updateRoom(namespace: String, room: String, wanted: @escaping @Sendable () -> Bool) {
        self.subscriber.updateRoomChannel(self.layout.roomChannel(namespace: namespace, room: room), wanted: wanted)
    }

    /// Room-channel mode: as ``updateRoom(namespace:room:wanted:)``, then `completion(true)` (on the subscriber's
    /// loop) once Redis confirmed the room's channel, or `completion(false)` after `timeout`.
    package func whenRoomActive(
        namespace: String,
        room: String,
        wanted: @escaping @Sendable () -> Bool,
        timeout: Duration,
        _ completion: @escaping @Sendable (Bool) -> Void
    ) {
        self.subscriber.whenRoomChannelActive(
            self.layout.roomChannel(namespace: namespace, room: room),
            wanted: wanted,
            timeout: timeout,
            completion
        )
    }

    /// Messages on the channel that could not be decoded and were skipped, since start.
    package var undecodableMessages: Int { self.undecodable.withLockedValue { $0 } }

    /// Whether messages are signed and checked with a ``PubSubSigningKey``.
    package var isSigning: Bool { self.writer.signer != nil }

    /// Messages skipped because their signature was missing, wrong or outside the time window, since start
    /// (always 0 without a signing key).
    package var unverifiedMessages: Int { self.unverified.withLockedValue { $0 } }

    /// Subscriber health (connected, last message age, reconnects).
    package var health: RedisSubscriberHealth { self.subscriber.health }

    /// Stops the subscriber and closes the publisher and the sharded client after at most `drainTimeout` of
    /// sending what their outboxes hold (both at once, within the same bound).
    package func shutdown(drainTimeout: Duration = .seconds(2)) async {
        await self.subscriber.shutdown()
        let deadline = NIODeadline.now() + TimeAmount(drainTimeout)
        async let sharded: Int? = self.sharded?.shutdown(deadline: deadline)
        await self.publisher.shutdown(deadline: deadline)
        _ = await sharded
    }
}
