public import Logging
import Metrics
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

/// How a `RedisSubscriber` behaves.
public struct RedisSubscriberConfiguration: Sendable {
    /// How long a TCP or unix-socket connect may take.
    public var connectTimeout: Duration
    /// Reconnect backoff: the first retry comes after 50–100 ms by default, later ones at most 5 s apart.
    public var backoff: ReconnectBackoff
    /// How long the subscribed connection may be silent before it is pinged.
    public var pingInterval: Duration
    /// How long a ping, or the AUTH/SELECT/SUBSCRIBE of a new connection, may wait for its reply before the
    /// connection is dropped and reopened.
    public var pingTimeout: Duration
    /// How long a room channel (see ``RedisChannelMode/rooms``) stays subscribed after its room lost its last
    /// local member (default 30 s), so that members who come back soon cost no UNSUBSCRIBE/SUBSCRIBE pair.
    public var roomUnsubscribeDelay: Duration
    /// How long the subscribed connection holds its next read after a read that found messages arriving closely
    /// spaced (default 1 ms; `.zero` reads every message as it comes): what arrives meanwhile is read in one system
    /// call and handled in one wake-up. A message after a quiet spell is read at once; under load a message waits
    /// at most this much longer (see `RedisReadCoalescingStateMachine`).
    public var readCoalescing: Duration

    /// Creates a configuration. A dead connection is noticed within `pingInterval + pingTimeout`.
    public init(
        connectTimeout: Duration = .seconds(2),
        backoff: ReconnectBackoff = ReconnectBackoff(),
        pingInterval: Duration = .seconds(1),
        pingTimeout: Duration = .seconds(2),
        roomUnsubscribeDelay: Duration = .seconds(30),
        readCoalescing: Duration = Self.defaultReadCoalescing
    ) {
        self.connectTimeout = connectTimeout
        self.backoff = backoff
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.roomUnsubscribeDelay = roomUnsubscribeDelay
        self.readCoalescing = readCoalescing
    }

    /// The default ``readCoalescing``.
    public static let defaultReadCoalescing = Duration.milliseconds(1)
}

/// One message received on a subscribed channel.
public struct RedisPubSubMessage: Sendable {
    /// The channel it was published to.
    public var channel: String
    /// The published bytes.
    public var payload: ByteBuffer

    /// Creates a message.
    public init(channel: String, payload: ByteBuffer) {
        self.channel = channel
        self.payload = payload
    }
}

/// How a subscriber is doing, readable from any thread.
public struct RedisSubscriberHealth: Sendable, Hashable {
    /// Whether the connection is open and every channel is subscribed.
    public var connected: Bool
    /// Time since the last message arrived; `nil` before the first.
    public var lastMessageAge: Duration?
    /// Successful re-subscriptions after a lost connection.
    public var reconnects: Int
    /// Why the subscriber is not subscribed right now (the last connection error); `nil` while subscribed.
    /// Past errors are in the log, and `reconnects` counts the recoveries.
    public var lastError: String?
    /// Why the last subscribed connection ended (`livenessTimeout`, a reset, …); kept after the recovery and
    /// replaced only by the next loss, so a failed reconnect attempt does not hide what took the link down.
    public var lastDisconnect: String? = nil
    /// Whether reading from Redis is paused because the consumer is behind (see `RedisSubscriber.pauseReading`).
    public var readingPaused: Bool = false
    /// How many times reading was paused since start.
    public var pauses: Int = 0
    /// Room channels subscribed now (``RedisChannelMode/rooms``; the lingering ones included).
    public var roomChannels: Int = 0
}

/// Subscribes to Redis channels and delivers their messages, reconnecting and resubscribing on its own.
///
/// Reconnects with exponential backoff and jitter. While subscribed it pings the connection when it has been
/// silent for `pingInterval` and drops it when the ping is not answered within `pingTimeout`, so a connection
/// that died without a FIN (a stopped VM, a dropped NAT entry) is noticed within seconds. Messages published
/// while the subscriber is away are lost: Redis Pub/Sub is at-most-once.
///
/// Health is exposed as `health` and as metrics: `socketgateway_redis_subscriber_connected` (gauge, 0/1),
/// `socketgateway_redis_subscriber_reconnects_total` (counter),
/// `socketgateway_redis_subscriber_last_message_age_seconds` (gauge), `socketgateway_redis_received_total`.
public final class RedisSubscriber: @unchecked Sendable {
    // All mutable state below is confined to `eventLoop`.

    /// The server this subscriber talks to.
    public let url: RedisURL
    /// The channels it subscribes to.
    public let channels: [String]
    /// The configuration it was created with.
    public let configuration: RedisSubscriberConfiguration
    /// The event loop that owns the connection; `onMessage` is called on it.
    public let eventLoop: any EventLoop
    private let logger: Logger
    private let onMessage: @Sendable (RedisPubSubMessage) -> Void

    /// Decides connect, handshake (AUTH, SELECT, SUBSCRIBE), backoff and liveness; this class does the I/O.
    var machine: RedisConnectionStateMachine
    /// The connection of the machine's current attempt, once open.
    var channel: (any Channel)?
    private var ticker: RepeatedTask?
    private var subscribedWaiters: [EventLoopPromise<Void>] = []
    /// Which room channels the connection holds (room-channel mode); decided there, done here.
    private var rooms: RoomSubscriptionStateMachine
    /// Joins waiting for a room channel to become active, by channel.
    private var roomWaiters: [String: [RoomWaiter]] = [:]
    /// What carries the room channels' subscriptions instead of this connection (`nil`: this connection).
    private let roomTransport: (any RoomChannelTransport)?
    /// Room-channel requests sent through `roomTransport` and not answered yet, by channel (a token each, so that
    /// a late answer to a superseded request is ignored).
    private var transportSubscribes: [String: UInt64] = [:]
    private var transportUnsubscribes: [String: UInt64] = [:]
    private var nextTransportToken: UInt64 = 0
    private var nextRoomWaiterID: UInt64 = 0
    private var lastMessageAt: NIODeadline?
    /// The `lastMessageAt` last written to `shared`: written again at most once per millisecond, not per message.
    private var sharedLastMessageAt: NIODeadline?
    /// The channel name of the latest message, kept to be handed on again while messages come on that channel.
    private var lastChannelName = ""
    /// Whether the consumer asked to stop reading (the subscribed channel's autoRead is off).
    private var readingPaused = false
    private struct Shared {
        var connected = false
        var lastMessageAt: NIODeadline?
        var reconnects = 0
        var lastError: String?
        var lastDisconnect: String?
        var readingPaused = false
        var pauses = 0
        var roomChannels = 0
    }
    private let shared = NIOLockedValueBox(Shared())

    private let connectedGauge: Gauge
    private let reconnectCounter: Counter
    private let ageGauge: Gauge
    private let receivedCounter: Counter

    /// Creates a subscriber; call `start()` to connect.
    /// - Parameters:
    ///   - url: Where Redis is.
    ///   - channels: The channels to subscribe to (at least one).
    ///   - configuration: Timeouts, backoff and liveness check.
    ///   - eventLoop: The loop that owns the connection; `nil` picks one of NIO's shared loops.
    ///   - logger: Where connection changes are logged (the URL redacted).
    ///   - onMessage: Called on `eventLoop` for every message, in arrival order. Keep it short.
    public convenience init(
        url: RedisURL,
        channels: [String],
        configuration: RedisSubscriberConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil,
        logger: Logger,
        onMessage: @escaping @Sendable (RedisPubSubMessage) -> Void
    ) {
        self.init(
            url: url,
            channels: channels,
            configuration: configuration,
            eventLoop: eventLoop,
            logger: logger,
            onShutdown: nil,
            onMessage: onMessage
        )
    }

    /// Creates a subscriber whose room channels (``updateRoomChannel(_:wanted:)``) are subscribed through
    /// `roomTransport` instead of its own connection (see ``RoomChannelTransport``).
    package convenience init(
        url: RedisURL,
        channels: [String],
        configuration: RedisSubscriberConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil,
        roomTransport: (any RoomChannelTransport)?,
        logger: Logger,
        onMessage: @escaping @Sendable (RedisPubSubMessage) -> Void
    ) {
        self.init(
            url: url,
            channels: channels,
            configuration: configuration,
            eventLoop: eventLoop,
            logger: logger,
            onShutdown: nil,
            roomTransport: roomTransport,
            onMessage: onMessage
        )
    }

    private init(
        url: RedisURL,
        channels: [String],
        configuration: RedisSubscriberConfiguration,
        eventLoop: (any EventLoop)?,
        logger: Logger,
        onShutdown: (@Sendable () -> Void)?,
        roomTransport: (any RoomChannelTransport)? = nil,
        onMessage: @escaping @Sendable (RedisPubSubMessage) -> Void
    ) {
        self.onShutdown = onShutdown
        self.roomTransport = roomTransport
        precondition(!channels.isEmpty, "a subscriber needs at least one channel")
        self.url = url
        self.channels = channels
        self.configuration = configuration
        self.eventLoop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        var logger = logger
        logger[metadataKey: "redis.url"] = "\(url.redacted)"
        logger[metadataKey: "redis.channels"] = "\(channels.joined(separator: ","))"
        self.logger = logger
        self.onMessage = onMessage
        self.rooms = RoomSubscriptionStateMachine(unsubscribeDelay: TimeAmount(configuration.roomUnsubscribeDelay))
        self.machine = RedisConnectionStateMachine(
            configuration: .init(
                handshake: RedisHandshakeStep.handshake(for: url) + [.subscribe(channels: channels)],
                redactedURL: url.redacted,
                backoff: configuration.backoff,
                // A reply may take `pingTimeout`, the handshake's replies included.
                handshakeTimeout: TimeAmount(configuration.pingTimeout),
                liveness: (TimeAmount(configuration.pingInterval), TimeAmount(configuration.pingTimeout)),
                // A subscriber always wants its subscription: every failure, AUTH refused included, is retried.
                afterConnectFailure: .reconnectAfterBackoff,
                afterHandshakeRefused: .reconnectAfterBackoff,
                afterConnectionLost: .reconnectAfterBackoff
            )
        )
        // Named by its first channel: a server's later ones (its cluster request and response channels, whose
        // names hold its host id) would make a label per server start.
        let dimensions = [("channel", channels[0])]
        self.connectedGauge = Gauge(label: "socketgateway_redis_subscriber_connected", dimensions: dimensions)
        self.reconnectCounter = Counter(
            label: "socketgateway_redis_subscriber_reconnects_total",
            dimensions: dimensions
        )
        self.ageGauge = Gauge(label: "socketgateway_redis_subscriber_last_message_age_seconds", dimensions: dimensions)
        self.receivedCounter = Counter(label: "socketgateway_redis_received_total", dimensions: dimensions)
        // A channel the transport resubscribes by itself (a failover) is not active meanwhile: joins wait for it.
        roomTransport?.observeRoomChannelActivity { [weak self] activity in
            guard let self else { return }
            self.eventLoop.execute { self.transportReported(activity) }
        }
    }

    /// Creates a subscriber whose messages arrive as an `AsyncStream`, buffering at most `bufferSize` of them
    /// (the oldest are dropped beyond that). Call `start()` on the subscriber.
    public static func makeStream(
        url: RedisURL,
        channels: [String],
        configuration: RedisSubscriberConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil,
        bufferSize: Int = 100_000,
        logger: Logger
    ) -> (subscriber: RedisSubscriber, messages: AsyncStream<RedisPubSubMessage>) {
        let (stream, continuation) = AsyncStream.makeStream(
            of: RedisPubSubMessage.self,
            bufferingPolicy: .bufferingNewest(bufferSize)
        )
        let subscriber = RedisSubscriber(
            url: url,
            channels: channels,
            configuration: configuration,
            eventLoop: eventLoop,
            logger: logger,
            onShutdown: { continuation.finish() },
            onMessage: { message in continuation.yield(message) }
        )
        return (subscriber, stream)
    }

    private let onShutdown: (@Sendable () -> Void)?

    /// Health, readable from any thread.
    public var health: RedisSubscriberHealth {
        let shared = self.shared.withLockedValue { $0 }
        return RedisSubscriberHealth(
            connected: shared.connected,
            lastMessageAge: shared.lastMessageAt.map { Duration.nanoseconds((NIODeadline.now() - $0).nanoseconds) },
            reconnects: shared.reconnects,
            lastError: shared.lastError,
            lastDisconnect: shared.lastDisconnect,
            readingPaused: shared.readingPaused,
            pauses: shared.pauses,
            roomChannels: shared.roomChannels
        )
    }

    /// Stops or resumes reading from Redis, for a consumer that cannot keep up (backpressure instead of an
    /// unbounded queue): while paused, what is published waits in Redis's output buffer for this connection
    /// (`client-output-buffer-limit pubsub`; Redis drops the connection when it overflows, and the subscriber then
    /// reconnects, as for any lost connection). The liveness check is suspended while paused.
    ///
    /// `shouldPause` is evaluated on the subscriber's loop when the call arrives, so calls from several threads
    /// always settle on the consumer's latest state. Safe to call from any thread.
    package func updateReading(shouldPause: @escaping @Sendable () -> Bool) {
        // The room channels a transport carries (sharded, on a Redis Cluster) pause and resume with this one.
        self.roomTransport?.updateRoomChannelReading(shouldPause: shouldPause)
        self.eventLoop.execute {
            let pause = shouldPause()
            guard pause != self.readingPaused else { return }
            self.readingPaused = pause
            self.shared.withLockedValue {
                $0.readingPaused = pause
                if pause { $0.pauses += 1 }
            }
            self.logger.debug(pause ? "paused reading from Redis" : "resumed reading from Redis")
            if pause { self.machine.suspendLiveness() } else { self.machine.resumeLiveness(now: .now()) }
            guard self.machine.isReady, let channel = self.channel else { return }
            channel.setOption(ChannelOptions.autoRead, value: !pause).whenComplete { _ in }
            if !pause { channel.read() }
        }
    }

    /// Starts connecting (once); later calls do nothing.
    public func start() {
        self.eventLoop.execute {
            guard self.machine.phase == .idle else { return }
            self.startTicker()
            // Room channels through a transport do not wait for this connection: they can go at once.
            if self.roomTransport != nil { self.runRooms(self.rooms.connectionRestored()) }
            self.run(self.machine.start(now: .now()))
        }
    }

    /// Waits until every channel is subscribed, or `timeout` passes.
    /// - Returns: `true` when subscribed.
    public func waitUntilSubscribed(timeout: Duration) async -> Bool {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.eventLoop.execute {
            if self.machine.isReady {
                promise.succeed(())
                return
            }
            self.subscribedWaiters.append(promise)
            self.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                promise.fail(RedisError(code: .timeout, message: "not subscribed in time"))
            }
        }
        do {
            try await promise.futureResult.get()
            return true
        } catch {
            return false
        }
    }

    // MARK: - Room channels

    /// Subscribes `channel` while `wanted()` (evaluated on the subscriber's loop when the call arrives) is true,
    /// and unsubscribes it `roomUnsubscribeDelay` after it became false (see `RoomSubscriptionStateMachine`).
    /// Safe to call from any thread; calls may arrive in any order: each reads the current truth.
    package func updateRoomChannel(_ channel: String, wanted: @escaping @Sendable () -> Bool) {
        self.eventLoop.execute {
            self.reconcileRoom(channel, wanted: wanted())
        }
    }

    /// Like ``updateRoomChannel(_:wanted:)``, then calls `completion` (on the subscriber's loop) with `true` once
    /// Redis confirmed the channel's SUBSCRIBE (at once when it is active already), or with `false` after
    /// `timeout` (Redis unreachable or slow; the subscription still follows when it answers) or at shutdown.
    package func whenRoomChannelActive(
        _ channel: String,
        wanted: @escaping @Sendable () -> Bool,
        timeout: Duration,
        _ completion: @escaping @Sendable (Bool) -> Void
    ) {
        self.eventLoop.execute {
            self.reconcileRoom(channel, wanted: wanted())
            guard !self.rooms.isActive(channel) else {
                completion(true)
                return
            }
            guard self.machine.phase != .closed else {
                completion(false)
                return
            }
            self.nextRoomWaiterID &+= 1
            let id = self.nextRoomWaiterID
            self.roomWaiters[channel, default: []].append(RoomWaiter(id: id, completion: completion))
            self.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                guard let index = self.roomWaiters[channel]?.firstIndex(where: { $0.id == id }) else { return }
                let waiter = self.roomWaiters[channel]!.remove(at: index)
                if self.roomWaiters[channel]?.isEmpty == true { self.roomWaiters.removeValue(forKey: channel) }
                waiter.completion(false)
            }
        }
    }

    private func reconcileRoom(_ channel: String, wanted: Bool) {
        self.runRooms(wanted ? self.rooms.roomGained(channel) : self.rooms.roomLost(channel, now: .now()))
    }

    /// Performs what the room machine decided.
    private func runRooms(_ output: RoomSubscriptionStateMachine.Output) {
        if let transport = self.roomTransport {
            self.send(output, through: transport)
        } else if let channel = self.channel, self.machine.isReady {
            // Large batches (a reconnect with many rooms) go as several commands of bounded size.
            var commands: [[String]] = []
            for start in stride(from: 0, to: output.subscribe.count, by: 1000) {
                commands.append(["SUBSCRIBE"] + output.subscribe[start..<min(start + 1000, output.subscribe.count)])
            }
            for start in stride(from: 0, to: output.unsubscribe.count, by: 1000) {
                commands.append(
                    ["UNSUBSCRIBE"] + output.unsubscribe[start..<min(start + 1000, output.unsubscribe.count)]
                )
            }
            if !commands.isEmpty { RedisConnector.send(commands, on: channel) }
        }
        for ready in output.ready {
            for waiter in self.roomWaiters.removeValue(forKey: ready) ?? [] { waiter.completion(true) }
        }
        let count = self.rooms.subscribedCount
        self.shared.withLockedValue { $0.roomChannels = count }
    }

    /// Hands the room machine's decisions to `transport`, one request per channel, and feeds its answers back to
    /// the machine on this loop.
    private func send(_ output: RoomSubscriptionStateMachine.Output, through transport: any RoomChannelTransport) {
        for channel in output.subscribe {
            // A SUBSCRIBE after an UNSUBSCRIBE not answered yet: the transport wants the channel again at once and
            // confirms the SUBSCRIBE only (the channel is active once resubscribed); the machine, which expects the
            // two answers in order, is told the UNSUBSCRIBE is done.
            if self.transportUnsubscribes.removeValue(forKey: channel) != nil {
                _ = self.rooms.unsubscribeConfirmed(channel)
            }
            self.subscribe(channel, through: transport)
        }
        for channel in output.unsubscribe {
            self.nextTransportToken &+= 1
            let token = self.nextTransportToken
            self.transportUnsubscribes[channel] = token
            transport.unsubscribeRoomChannel(channel, timeout: Self.transportTimeout) { _ in
                // Confirmed or not (timed out), the channel is no longer wanted by the transport: the machine may
                // forget it.
                self.eventLoop.execute {
                    guard self.transportUnsubscribes[channel] == token else { return }
                    self.transportUnsubscribes.removeValue(forKey: channel)
                    self.runRooms(self.rooms.unsubscribeConfirmed(channel))
                }
            }
        }
    }

    /// What the transport reported about channels it resubscribes by itself.
    private func transportReported(_ activity: RoomChannelActivity) {
        for channel in activity.stopped { self.runRooms(self.rooms.transportInterrupted(channel)) }
        for channel in activity.resumed { self.runRooms(self.rooms.transportRestored(channel)) }
        self.logger.debug(
            "room channels stopped and resumed on the transport",
            metadata: ["redis.stopped": "\(activity.stopped.count)", "redis.resumed": "\(activity.resumed.count)"]
        )
    }

    /// How long one room-channel request through a transport may wait for its answer before it is asked again
    /// (subscribe) or taken as done (unsubscribe).
    private static let transportTimeout = Duration.seconds(10)

    private func subscribe(_ channel: String, through transport: any RoomChannelTransport) {
        self.nextTransportToken &+= 1
        let token = self.nextTransportToken
        self.transportSubscribes[channel] = token
        transport.subscribeRoomChannel(channel, timeout: Self.transportTimeout) { result in
            self.eventLoop.execute {
                guard self.transportSubscribes[channel] == token else { return }
                self.transportSubscribes.removeValue(forKey: channel)
                switch result {
                case .success:
                    self.runRooms(self.rooms.subscribeConfirmed(channel, now: .now()))
                case .failure(let error) where error.code != .shutdown && self.machine.phase != .closed:
                    // Not confirmed in time (a shard failing over): the machine still waits; ask again.
                    self.logger.debug(
                        "room channel not confirmed yet; asking again",
                        metadata: ["redis.room_channel": "\(channel)", "error": "\(error)"]
                    )
                    self.subscribe(channel, through: transport)
                case .failure:
                    break
                }
            }
        }
    }

    /// Unsubscribes by closing the connection and stops reconnecting.
    public func shutdown() async {
        let future = self.eventLoop.submit { () -> EventLoopFuture<Void> in
            let action = self.machine.shutdown()
            let channel = self.channel
            self.channel = nil
            self.ticker?.cancel()
            self.ticker = nil
            self.markDisconnected(error: nil)
            for waiter in self.subscribedWaiters {
                waiter.fail(RedisError(code: .shutdown, message: "the subscriber was shut down"))
            }
            self.subscribedWaiters.removeAll()
            _ = self.rooms.connectionLost()
            self.transportSubscribes.removeAll()
            self.transportUnsubscribes.removeAll()
            let roomWaiters = self.roomWaiters
            self.roomWaiters.removeAll()
            for waiter in roomWaiters.values.joined() { waiter.completion(false) }
            self.onShutdown?()
            guard case .shutDown(closeConnection: true) = action, let channel else {
                return self.eventLoop.makeSucceededVoidFuture()
            }
            return channel.close()
        }.flatMap { $0 }
        try? await future.get()
    }

    // MARK: - Event-loop confined

    /// Performs what the machine decided.
    func run(_ action: RedisConnectionStateMachine.Action) {
        switch action {
        case .nothing, .deliver, .discardConnection, .shutDown:
            break
        case .connect(let generation):
            self.openConnection(generation: generation)
        case .sendHandshake(let steps):
            guard let channel = self.channel else { return }
            RedisConnector.send(steps.lazy.map(\.arguments), on: channel)
        case .becomeReady(let isReconnect):
            self.becomeSubscribed(isReconnect: isReconnect)
        case .sendPing:
            guard let channel = self.channel else { return }
            RedisConnector.send([["PING"]], on: channel)
        case .connectFailed(let error, let closeConnection, let retry),
            .connectionLost(let error, let closeConnection, let retry):
            self.subscriptionDown(error, closeConnection: closeConnection, retry: retry)
        }
    }

    private func subscriptionDown(
        _ error: RedisError,
        closeConnection: Bool,
        retry: RedisConnectionStateMachine.Retry?
    ) {
        if closeConnection { self.channel?.close(promise: nil) }
        self.channel = nil
        // Room channels through a transport are not on this connection: they stay.
        if self.roomTransport == nil { self.runRooms(self.rooms.connectionLost()) }
        self.markDisconnected(error: error)
        if error.code == .livenessTimeout {
            self.logger.error(
                "Redis did not answer PING on the subscribed connection; reconnecting",
                metadata: ["redis.ping_timeout": "\(self.configuration.pingTimeout)"]
            )
        }
        guard let retry else { return }
        self.logger.warning(
            "Redis subscription down; reconnecting",
            metadata: [
                "error": "\(error)", "redis.retry_in_ms": "\(retry.delay.nanoseconds / 1_000_000)",
                "redis.attempt": "\(retry.attempt)",
            ]
        )
        self.eventLoop.scheduleTask(deadline: retry.at) {
            self.run(self.machine.reconnectTimerFired(generation: retry.generation, now: .now(), stillNeeded: true))
        }
    }

    private func becomeSubscribed(isReconnect reconnected: Bool) {
        self.shared.withLockedValue {
            $0.connected = true
            $0.lastError = nil
            if reconnected { $0.reconnects += 1 }
        }
        if reconnected { self.reconnectCounter.increment() }
        // From now on (the handshake's replies are in), closely spaced messages are read together.
        if let channel = self.channel {
            RedisReadCoalescingHandler.install(delay: TimeAmount(self.configuration.readCoalescing), on: channel)
        }
        if self.readingPaused {
            self.channel?.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
        self.connectedGauge.record(1)
        self.logger.info(reconnected ? "resubscribed to Redis" : "subscribed to Redis")
        for waiter in self.subscribedWaiters { waiter.succeed(()) }
        self.subscribedWaiters.removeAll()
        // The room channels are part of the subscription: subscribe every wanted one again (unless a transport
        // carries them).
        if self.roomTransport == nil { self.runRooms(self.rooms.connectionRestored()) }
    }

    private func markDisconnected(error: RedisError?) {
        self.shared.withLockedValue {
            if $0.connected { $0.lastDisconnect = error?.description ?? "closed" }
            $0.connected = false
            if let error { $0.lastError = error.description }
        }
        self.connectedGauge.record(0)
    }

    private func startTicker() {
        guard self.ticker == nil else { return }
        let shortest = min(self.configuration.pingInterval, self.configuration.pingTimeout)
        let period = max(TimeAmount.milliseconds(10), min(TimeAmount(shortest / 4), .milliseconds(250)))
        self.ticker = self.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            self.tick()
        }
    }

    private func tick() {
        let now = NIODeadline.now()
        if let last = self.lastMessageAt {
            self.ageGauge.record(Double((now - last).nanoseconds) / 1e9)
        }
        self.run(self.machine.tick(now: now))
        self.runRooms(self.rooms.tick(now: now))
    }

    private func handlePush(_ items: [RESPValue]) {
        // The hot case, every message, is told by its bytes: no `String` for its kind, nor for its channel while
        // that is the previous message's.
        if items.count == 3, items[0].isBulkString("message"), case .bulkString(let channelBytes) = items[1],
            case .bulkString(let payload) = items[2]
        {
            if !self.lastChannelName.utf8.elementsEqual(channelBytes.readableBytesView) {
                self.lastChannelName = String(buffer: channelBytes)
            }
            self.deliver(RedisPubSubMessage(channel: self.lastChannelName, payload: payload))
            return
        }
        guard let kind = items.first?.string else { return }
        switch kind {
        case "message":
            guard items.count == 3, let name = items[1].string, case .bulkString(let payload) = items[2] else {
                self.logger.warning("malformed pub/sub message from Redis; skipped")
                return
            }
            self.deliver(RedisPubSubMessage(channel: name, payload: payload))
        case "subscribe":
            guard let name = items.dropFirst().first?.string else { return }
            self.runRooms(self.rooms.subscribeConfirmed(name, now: .now()))
        case "unsubscribe":
            guard let name = items.dropFirst().first?.string else { return }
            self.runRooms(self.rooms.unsubscribeConfirmed(name))
        case "pong":
            break
        default:
            self.logger.debug("ignored pub/sub push", metadata: ["redis.push": "\(kind)"])
        }
    }
}

extension RedisSubscriber {
    /// Notes the message's arrival (for liveness and health) and hands it on.
    private func deliver(_ message: RedisPubSubMessage) {
        let now = NIODeadline.now()
        self.lastMessageAt = now
        // Health's age of the last message, read from any thread: under the lock at most once per millisecond.
        if self.sharedLastMessageAt.map({ now - $0 >= .milliseconds(1) }) ?? true {
            self.sharedLastMessageAt = now
            self.shared.withLockedValue { $0.lastMessageAt = now }
        }
        self.receivedCounter.increment()
        self.onMessage(message)
    }
}

/// A join waiting for a room channel to become active.
private struct RoomWaiter {
    var id: UInt64
    var completion: @Sendable (Bool) -> Void
}

extension RedisSubscriber: RedisConnectionShell {
    var connectTimeout: Duration { self.configuration.connectTimeout }

    func connection(_ generation: UInt64, received value: RESPValue) {
        let action = self.machine.received(value, generation: generation, now: .now())
        guard case .deliver = action else {
            self.run(action)
            return
        }
        switch value {
        case .array(let items):
            self.handlePush(items)
        case .error(let message):
            self.logger.warning("Redis error on the subscribed connection", metadata: ["redis.error": "\(message)"])
        default:
            break
        }
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        self.run(self.machine.connectionClosed(generation: generation, error: error, now: .now()))
    }
}

extension RESPValue {
    /// Whether this is a bulk string of exactly `text`'s bytes (compared without making a `String`).
    fileprivate func isBulkString(_ text: StaticString) -> Bool {
        guard case .bulkString(let bytes) = self, bytes.readableBytes == text.utf8CodeUnitCount else { return false }
        return bytes.withUnsafeReadableBytes {
            $0.elementsEqual(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }
    }
}
