public import Logging
import Metrics
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

/// How a `RedisPublisher` behaves.
public struct RedisPublisherConfiguration: Sendable {
    /// The channel every message is published to.
    public var channel: String
    /// How long a TCP or unix-socket connect may take.
    public var connectTimeout: Duration
    /// How long the oldest unanswered command may wait before the connection is considered stuck and dropped.
    public var replyTimeout: Duration
    /// The most PUBLISH commands written and not yet answered; more wait in the queue (back-pressure).
    public var maxInFlight: Int
    /// When 0, publishes made while Redis is unreachable fail at once. When positive, they are held in an outbox
    /// of this many messages (the oldest dropped and counted on overflow) and sent in order on reconnect.
    public var outboxCapacity: Int
    /// The most messages waiting for an in-flight slot when there is no outbox; beyond it publishes fail with
    /// `.overloaded`.
    public var maxQueued: Int
    /// Reconnect backoff after a failed connect.
    public var backoff: ReconnectBackoff
    /// After a reconnect, how long the outbox waits (polling `PUBSUB NUMSUB`) for the channel to have as many
    /// subscribers as the last PUBLISH reached before the outage, so that servers reconnecting at the same time
    /// do not miss what was held. Then it is sent anyway. `.zero` sends at once.
    public var outboxSubscriberWait: Duration

    /// Creates a configuration.
    public init(
        channel: String = "socketio",
        connectTimeout: Duration = .seconds(2),
        replyTimeout: Duration = .seconds(5),
        maxInFlight: Int = 10_000,
        outboxCapacity: Int = 0,
        maxQueued: Int = 100_000,
        backoff: ReconnectBackoff = ReconnectBackoff(),
        outboxSubscriberWait: Duration = .seconds(10)
    ) {
        precondition(maxInFlight > 0 && maxQueued > 0 && outboxCapacity >= 0)
        self.channel = channel
        self.connectTimeout = connectTimeout
        self.replyTimeout = replyTimeout
        self.maxInFlight = maxInFlight
        self.outboxCapacity = outboxCapacity
        self.maxQueued = maxQueued
        self.backoff = backoff
        self.outboxSubscriberWait = outboxSubscriberWait
    }
}

/// A point-in-time view of a publisher, readable from any thread.
public struct RedisPublisherStatus: Sendable, Hashable {
    /// Whether a connection is open and past AUTH/SELECT.
    public var connected: Bool
    /// Messages dropped from a full outbox since the publisher was created.
    public var droppedFromOutbox: Int
    /// Connections established after the first one.
    public var reconnects: Int
}

/// Publishes messages to one Redis channel over a single pipelined connection, reconnecting as needed.
///
/// Publishes from any thread are framed as RESP `PUBLISH` commands, back to back, into one buffer that the loop
/// takes as a batch and writes as it is (one `execute` and one `write` per batch; batch buffers are reused);
/// replies are matched to requests in order. A publish carries an optional completion stored in the pending
/// ring, so the fire-and-forget path allocates nothing per message. At most `maxInFlight` commands are unanswered
/// at once; the rest wait in order. Connects lazily, on the first publish. A stuck connection (no reply within
/// `replyTimeout`) is dropped and replaced. Once used, the publisher keeps a light timer (every ≤ 250 ms) on its
/// event loop until `shutdown` (or `beginShutdown`) is called: call it when done.
///
/// Three parts: `RedisPublishHandoff` carries publishes from any thread to the loop; `RedisOutbox` (a pure value)
/// decides what becomes of each message (queue, in flight, capacity, the hold until subscribers return,
/// deadlines, the shutdown drain); this class is the shell that owns the connection, reads the clock once per
/// event, feeds both and carries out what the outbox returns.
public final class RedisPublisher: @unchecked Sendable {
    // All mutable state below is confined to `eventLoop`.

    /// The server this publisher talks to.
    public let url: RedisURL
    /// The configuration it was created with.
    public let configuration: RedisPublisherConfiguration
    /// The event loop that owns the connection and all state.
    public let eventLoop: any EventLoop
    private let logger: Logger

    // The connection: the machine decides (connect, AUTH/SELECT, backoff, generations); this class does the I/O.
    var machine: RedisConnectionStateMachine
    /// The connection of the machine's current attempt, once open (handshaking or ready).
    var channel: (any Channel)?
    private var timer: RepeatedTask?

    // The messages.
    private var outbox: RedisOutbox<PublishCallback>
    /// `shutdown` calls waiting for the outbox to drain.
    private var drainWaiters: [EventLoopPromise<Void>] = []
    /// Publishes, handed to the loop in call order, framed, in batches.
    private let handoff: RedisPublishHandoff

    // Writing.
    private var outbound: ByteBuffer?
    private var flushScheduled = false
    /// `outbound` shares its storage with in-flight payloads (written as handed over), so appending to it would
    /// copy it; start a new buffer instead.
    private var outboundShared = false
    /// The payload of in-flight messages whose bytes are not kept (an empty buffer, shared).
    private let noPayload = ByteBuffer()

    private let status = NIOLockedValueBox(RedisPublisherStatus(connected: false, droppedFromOutbox: 0, reconnects: 0))
    private let publishedCounter: Counter
    private let failedCounter: Counter
    private let droppedCounter: Counter
    private let connectedGauge: Gauge
    /// Messages waiting in the outbox (not yet written to Redis).
    private let queuedGauge: Gauge

    /// Creates a publisher. Nothing connects until the first publish.
    /// - Parameters:
    ///   - url: Where Redis is.
    ///   - configuration: Channel, timeouts, in-flight bound, outbox.
    ///   - eventLoop: The loop that owns the connection; `nil` picks one of NIO's shared loops.
    ///   - logger: Where connection changes and failures are logged (the URL is logged redacted).
    public init(
        url: RedisURL,
        configuration: RedisPublisherConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil,
        logger: Logger
    ) {
        self.url = url
        self.configuration = configuration
        self.eventLoop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        var logger = logger
        logger[metadataKey: "redis.url"] = "\(url.redacted)"
        logger[metadataKey: "redis.channel"] = "\(configuration.channel)"
        self.logger = logger
        self.machine = RedisConnectionStateMachine(
            configuration: .init(
                handshake: RedisHandshakeStep.handshake(for: url),
                redactedURL: url.redacted,
                backoff: configuration.backoff,
                handshakeTimeout: TimeAmount(configuration.replyTimeout),
                afterConnectFailure: .reconnectAfterBackoff,
                afterHandshakeRefused: .reconnectAfterBackoff,
                // As the outbox's modes expect: outbox mode holds messages while it waits for the backoff; direct
                // mode failed what was in flight and reconnects at once when more waits.
                afterConnectionLost: configuration.outboxCapacity > 0 ? .reconnectAfterBackoff : .becomeIdle
            )
        )
        self.outbox = RedisOutbox(
            limits: .init(
                maxInFlight: configuration.maxInFlight,
                outboxCapacity: configuration.outboxCapacity,
                maxQueued: configuration.maxQueued,
                subscriberWait: TimeAmount(configuration.outboxSubscriberWait)
            ),
            redactedURL: url.redacted,
            channel: configuration.channel
        )
        self.handoff = RedisPublishHandoff(channel: configuration.channel)
        let dimensions = [("channel", configuration.channel)]
        self.publishedCounter = Counter(label: "socketgateway_redis_published_total", dimensions: dimensions)
        self.failedCounter = Counter(label: "socketgateway_redis_publish_failures_total", dimensions: dimensions)
        self.droppedCounter = Counter(label: "socketgateway_redis_outbox_dropped_total", dimensions: dimensions)
        self.connectedGauge = Gauge(label: "socketgateway_redis_publisher_connected", dimensions: dimensions)
        self.queuedGauge = Gauge(label: "socketgateway_redis_outbox_queued", dimensions: dimensions)
    }

    /// Connection state and counters, readable from any thread.
    public var currentStatus: RedisPublisherStatus { self.status.withLockedValue { $0 } }

    // MARK: - Publishing (any thread)

    /// Publishes `payload`; `completion` (if any) is called once on the publisher's event loop.
    ///
    /// Safe to call from any thread; calls from one thread are published in call order.
    /// - Parameters:
    ///   - payload: The message bytes.
    ///   - completion: Told what became of the message; `nil` for fire-and-forget.
    public func publish(_ payload: ByteBuffer, completion: (@Sendable (PublishProgress) -> Void)?) {
        let schedule = payload.withUnsafeReadableBytes {
            self.handoff.hand(completion.map { .progress($0) }, deadline: nil, payload: $0)
        }
        if schedule { self.eventLoop.execute { self.takeIncoming() } }
    }

    /// Publishes the bytes `writePayload` appends (called at once, on the calling thread);
    /// `completion` (if any) is called once on the publisher's event loop.
    ///
    /// The payload is encoded into a buffer the calling thread reuses, then copied once, framed as a RESP
    /// `PUBLISH`, into the bytes the loop writes to the socket as they are. Safe to call from any thread; calls
    /// from one thread are published in call order.
    ///
    /// - Parameter channel: Where to publish; `nil` (the default): the configured `channel`.
    package func publish(
        channel: String? = nil,
        completion: (@Sendable (PublishProgress) -> Void)?,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        if self.handoff.hand(
            completion.map { .progress($0) },
            deadline: nil,
            channel: channel,
            writePayload: writePayload
        ) {
            self.eventLoop.execute { self.takeIncoming() }
        }
    }

    /// Like ``publish(completion:writePayload:)``, but `completion` is told `.timedOut` at `deadline` unless
    /// Redis answered (or the publish failed or was queued) before; either way it is called exactly once.
    package func publish(
        channel: String? = nil,
        deadline: NIODeadline,
        completion: @escaping @Sendable (PublishOutcome) -> Void,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        if self.handoff.hand(.timed(completion), deadline: deadline, channel: channel, writePayload: writePayload) {
            self.eventLoop.execute { self.takeIncoming() }
        }
    }

    /// Publishes `payload` and waits for Redis's answer.
    /// - Returns: The number of subscribers that received the message.
    /// - Throws: `RedisError`: `.connectionFailed`, `.connectionClosed`, `.timeout`, `.commandFailed`,
    ///   `.overloaded`, `.shutdown`. In outbox mode a message held for later throws `.connectionFailed` with a
    ///   message saying it was queued; it is still sent on reconnect.
    public func publish(_ payload: ByteBuffer) async throws(RedisError) -> Int {
        let progress = await withUnsafeContinuation { (continuation: UnsafeContinuation<PublishProgress, Never>) in
            self.publish(payload) { continuation.resume(returning: $0) }
        }
        switch progress {
        case .published(let subscribers):
            return subscribers
        case .failed(let error):
            throw error
        case .queued(let reason):
            throw RedisError(
                code: .connectionFailed,
                message: "held in the outbox until Redis is reachable: \(reason)",
                redactedURL: self.url.redacted,
                command: "PUBLISH",
                channel: self.configuration.channel
            )
        }
    }

    /// Waits until every queued and in-flight message has been answered, or `deadline` passes; then closes.
    /// - Returns: How many messages were still unsent (and are now failed with `.shutdown`).
    @discardableResult
    public func shutdown(deadline: NIODeadline = .now()) async -> Int {
        try? await self.drain(until: deadline).get()
        return (try? await self.eventLoop.submit { self.closeForShutdown() }.get()) ?? 0
    }

    /// Starts ``shutdown(deadline:)`` without waiting for it, for an owner that goes away without calling it (a
    /// `deinit`): what is queued is sent until `deadline`, then the connection and the timer are closed, and the
    /// publisher is released.
    package func beginShutdown(deadline: NIODeadline) {
        self.drain(until: deadline).whenComplete { _ in
            _ = self.closeForShutdown()
        }
    }

    /// Succeeds (on the loop) once every queued and in-flight message has been answered, or `deadline` passed.
    private func drain(until deadline: NIODeadline) -> EventLoopFuture<Void> {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.eventLoop.execute {
            if self.machine.phase == .closed {
                promise.succeed(())
                return
            }
            self.drainWaiters.append(promise)
            self.run(self.outbox.shutdownRequested(deadline: deadline, now: .now()))
            if !self.drainWaiters.isEmpty {
                self.startTimerIfNeeded()
                self.connectIfIdle()
            }
        }
        return promise.futureResult
    }

    // MARK: - Messages (event-loop confined)

    /// Submits what was handed over since the last call, in order. When the connection is ready and nothing
    /// waits before them, the framed bytes go to the socket as they are.
    private func takeIncoming() {
        self.handoff.withNextBatch { bytes, batch in
            let now = NIODeadline.now()
            if let channel = self.readyChannel {
                // Only the outbox sends an in-flight message again (after a reconnect); otherwise its bytes need
                // not be kept, and the batch's buffer can be reused once written.
                let keepPayloads = self.outbox.isOutboxMode
                let noPayload = self.noPayload
                let sent = self.outbox.sendDirectly(count: batch.count, now: now) { index in
                    let entry = batch[index]
                    let payload =
                        keepPayloads ? bytes.getSlice(at: entry.payloadOffset, length: entry.payloadLength)! : noPayload
                    return RedisOutbox.Entry(
                        payload: payload,
                        completion: entry.completion,
                        deadline: entry.deadline,
                        channel: entry.channel
                    )
                }
                if case .sent(let armDeadlineTimer) = sent {
                    if let armDeadlineTimer { self.armDeadlineTimer(at: armDeadlineTimer) }
                    self.writeBatch(bytes, keepingPayloads: keepPayloads, on: channel)
                    return
                }
            }
            for entry in batch {
                let payload = bytes.getSlice(at: entry.payloadOffset, length: entry.payloadLength)!
                self.run(
                    self.outbox.submit(
                        RedisOutbox.Entry(
                            payload: payload,
                            completion: entry.completion,
                            deadline: entry.deadline,
                            channel: entry.channel
                        ),
                        now: now
                    )
                )
            }
            if self.outbox.queuedCount > 0 {
                self.startTimerIfNeeded()
                self.connectIfIdle()
            }
        }
    }

    /// Carries out what the outbox decided.
    private func run(_ actions: RedisOutbox<PublishCallback>.Actions) {
        if !actions.writes.isEmpty, let channel = self.readyChannel {
            self.write(actions.writes, on: channel)
        }
        switch actions.subscriberCount {
        case .send:
            if let channel = self.readyChannel { self.askSubscriberCount(on: channel) }
        case .sendAt(let time):
            // The poll belongs to this connection: a later one has its own.
            let generation = self.machine.generation
            self.eventLoop.scheduleTask(deadline: time) {
                guard generation == self.machine.generation else { return }
                self.run(self.outbox.subscriberCountTimerFired(now: .now()))
            }
        case nil:
            break
        }
        if let armDeadlineTimer = actions.armDeadlineTimer {
            self.armDeadlineTimer(at: armDeadlineTimer)
        }
        self.queuedGauge.record(self.outbox.queuedCount)
        if actions.failures > 0 {
            self.failedCounter.increment(by: actions.failures)
        }
        if actions.dropped > 0 {
            self.droppedCounter.increment(by: actions.dropped)
            let total = self.status.withLockedValue { status -> Int in
                status.droppedFromOutbox += actions.dropped
                return status.droppedFromOutbox
            }
            self.logger.warning(
                "Redis outbox full; dropped the oldest message",
                metadata: [
                    "redis.outbox.capacity": "\(self.configuration.outboxCapacity)",
                    "redis.outbox.dropped": "\(actions.dropped)", "redis.outbox.dropped_total": "\(total)",
                ]
            )
        }
        if let short = actions.shortRelease {
            self.logger.warning(
                "sending the outbox with fewer subscribers than before the outage",
                metadata: ["redis.subscribers": "\(short.subscribers)", "redis.subscribers_before": "\(short.before)"]
            )
        }
        for report in actions.reports {
            report.completion.report(report.outcome)
        }
        if actions.drainFinished {
            let waiters = self.drainWaiters
            self.drainWaiters = []
            for waiter in waiters { waiter.succeed(()) }
        }
    }

    /// Tells the outbox, at `deadline`, that the deadline timer fired (it says when to fire next).
    private func armDeadlineTimer(at deadline: NIODeadline) {
        self.eventLoop.scheduleTask(deadline: deadline) {
            self.run(self.outbox.deadlineTimerFired(now: .now()))
        }
    }

    /// Writes a batch handed over from other threads, its `PUBLISH` commands framed as they are.
    private func writeBatch(_ bytes: ByteBuffer, keepingPayloads: Bool, on channel: any Channel) {
        if let pending = self.outbound.take(), pending.readableBytes > 0 {
            channel.write(pending, promise: nil)
        }
        if keepingPayloads {
            // In-flight payloads are slices of `bytes`: they are sent again after a reconnect.
            self.outbound = bytes
            self.outboundShared = true
        } else {
            let written = channel.eventLoop.makePromise(of: Void.self)
            channel.write(bytes, promise: written)
            written.futureResult.whenSuccess { self.handoff.recycle(bytes) }
        }
        self.scheduleFlush()
    }

    /// Frames `writes` as `PUBLISH` commands into `outbound`.
    private func write(_ writes: [RedisOutbox<PublishCallback>.Write], on channel: any Channel) {
        self.unshareOutbound(on: channel)
        if self.outbound == nil {
            var size = 0
            for write in writes {
                size += RESPCommand.publishSize(
                    channel: write.channel ?? self.configuration.channel,
                    payloadBytes: write.payload.readableBytes
                )
            }
            self.outbound = channel.allocator.buffer(capacity: max(size, 4096))
        }
        for write in writes {
            RESPCommand.writePublish(
                channel: write.channel ?? self.configuration.channel,
                payload: write.payload,
                into: &self.outbound!
            )
        }
        self.scheduleFlush()
    }

    /// Sends `PUBSUB NUMSUB channel` (the outbox is held until enough subscribers are back).
    private func askSubscriberCount(on channel: any Channel) {
        self.unshareOutbound(on: channel)
        if self.outbound == nil { self.outbound = channel.allocator.buffer(capacity: 64) }
        RESPCommand.write(["PUBSUB", "NUMSUB", self.configuration.channel], into: &self.outbound!)
        self.scheduleFlush()
    }

    /// When `outbound` shares storage with in-flight payloads, hands it to the channel (unflushed) so that what
    /// follows goes into a buffer of its own rather than a copy of it.
    private func unshareOutbound(on channel: any Channel) {
        guard self.outboundShared else { return }
        self.outboundShared = false
        if let pending = self.outbound.take(), pending.readableBytes > 0 {
            channel.write(pending, promise: nil)
        }
    }

    private func scheduleFlush() {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        self.eventLoop.execute { self.flush() }
    }

    private func flush() {
        self.flushScheduled = false
        self.outboundShared = false
        let bytes = self.outbound.take()
        guard let channel = self.channel else { return }
        // Without `outbound`, a batch may still have been written unflushed (see `unshareOutbound`).
        if let bytes { channel.writeAndFlush(bytes, promise: nil) } else { channel.flush() }
    }

    // MARK: - The connection (event-loop confined)

    /// The connection, when it is ready for publishes.
    private var readyChannel: (any Channel)? { self.machine.isReady ? self.channel : nil }

    /// Connects unless a connection is open, coming, or waiting for its backoff (messages or a shutdown wait).
    private func connectIfIdle() {
        guard self.machine.phase == .idle else { return }
        self.run(self.machine.start(now: .now()))
    }

    /// Carries out what the connection machine decided.
    func run(_ action: RedisConnectionStateMachine.Action) {
        switch action {
        case .nothing, .deliver, .discardConnection, .sendPing, .shutDown:
            break
        case .connect(let generation):
            self.connect(generation: generation)
        case .sendHandshake(let steps):
            guard let channel = self.channel else { return }
            RedisConnector.send(steps.lazy.map(\.arguments), on: channel)
        case .becomeReady(let isReconnect):
            self.becomeReady(reconnected: isReconnect)
        case .connectFailed(let error, let closeConnection, let retry):
            if closeConnection { self.channel?.close(promise: nil) }
            self.channel = nil
            self.connectFailed(error, retry: retry)
        case .connectionLost(let error, let closeConnection, let retry):
            if closeConnection { self.channel?.close(promise: nil) }
            self.channel = nil
            self.connectionLost(error, retry: retry)
        }
    }

    private func connect(generation: UInt64) {
        self.outbox.awaitingConnection()
        self.startTimerIfNeeded()
        self.logger.debug("connecting to Redis")
        self.openConnection(generation: generation)
    }

    private func becomeReady(reconnected: Bool) {
        self.status.withLockedValue {
            $0.connected = true
            if reconnected { $0.reconnects += 1 }
        }
        self.connectedGauge.record(1)
        self.logger.info(
            reconnected ? "reconnected to Redis" : "connected to Redis",
            metadata: ["redis.queued": "\(self.outbox.queuedCount)"]
        )
        self.run(self.outbox.connectionReady(reconnected: reconnected, now: .now()))
    }

    private func connectFailed(_ error: RedisError, retry: RedisConnectionStateMachine.Retry?) {
        let now = NIODeadline.now()
        self.markDisconnected()
        self.logger.warning(
            "Redis unreachable; retrying",
            metadata: [
                "error": "\(error)", "redis.retry_in_ms": "\((retry?.delay.nanoseconds ?? 0) / 1_000_000)",
                "redis.attempt": "\(retry?.attempt ?? 0)", "redis.queued": "\(self.outbox.queuedCount)",
            ]
        )
        let actions = self.outbox.connectFailed(error, now: now)
        if let retry { self.scheduleReconnect(retry) }
        self.run(actions)
    }

    private func connectionLost(_ error: RedisError, retry: RedisConnectionStateMachine.Retry?) {
        self.markDisconnected()
        self.outbound = nil
        self.outboundShared = false
        let now = NIODeadline.now()
        let (actions, unanswered) = self.outbox.connectionLost(error, now: now)
        self.logger.warning(
            "Redis connection lost",
            metadata: ["error": "\(error)", "redis.unanswered": "\(unanswered)"]
        )
        if let retry {
            self.scheduleReconnect(retry)
            self.run(actions)
        } else {
            self.run(actions)
            if self.outbox.queuedCount > 0 { self.connectIfIdle() }
        }
    }

    /// After the backoff, connects again if messages (or a shutdown) wait; otherwise goes idle until the next
    /// publish.
    private func scheduleReconnect(_ retry: RedisConnectionStateMachine.Retry) {
        self.eventLoop.scheduleTask(deadline: retry.at) {
            let action = self.machine.reconnectTimerFired(
                generation: retry.generation,
                now: .now(),
                stillNeeded: self.outbox.wantsConnection
            )
            if self.machine.phase == .idle { self.outbox.awaitingConnection() }
            self.run(action)
        }
    }

    private func markDisconnected() {
        self.status.withLockedValue { $0.connected = false }
        self.connectedGauge.record(0)
    }

    private func startTimerIfNeeded() {
        guard self.timer == nil else { return }
        let timeout = TimeAmount(self.configuration.replyTimeout)
        let period = max(
            TimeAmount.milliseconds(10),
            min(TimeAmount.nanoseconds(timeout.nanoseconds / 4), .milliseconds(250))
        )
        self.timer = self.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            self.tick()
        }
    }

    /// Liveness: a connection whose oldest command waits longer than `replyTimeout` is dropped. Also lets the
    /// outbox end a drain whose deadline passed.
    private func tick() {
        let now = NIODeadline.now()
        let replyTimeout = TimeAmount(self.configuration.replyTimeout)
        if let sentAt = self.outbox.oldestUnansweredSince, now - sentAt > replyTimeout {
            let error = self.error(.timeout, "Redis did not answer within \(self.configuration.replyTimeout)")
            self.run(self.machine.abandon(error, now: now))
        }
        // The handshake's replies have the same timeout (the machine's).
        self.run(self.machine.tick(now: now))
        self.run(self.outbox.tick(now: now))
    }

    private func closeForShutdown() -> Int {
        guard case .shutDown(let closeConnection) = self.machine.shutdown() else { return 0 }
        if closeConnection { self.channel?.close(promise: nil) }
        self.channel = nil
        self.timer?.cancel()
        self.timer = nil
        self.markDisconnected()
        let (actions, unsent) = self.outbox.close()
        self.run(actions)
        if unsent > 0 {
            self.logger.warning(
                "Redis publisher shut down with unsent messages",
                metadata: ["redis.unsent": "\(unsent)"]
            )
        }
        return unsent
    }

    private func error(_ code: RedisError.Code, _ message: String) -> RedisError {
        RedisError(
            code: code,
            message: message,
            redactedURL: self.url.redacted,
            command: "PUBLISH",
            channel: self.configuration.channel
        )
    }
}

extension RedisPublisher: RedisConnectionShell {
    var connectTimeout: Duration { self.configuration.connectTimeout }

    func connection(_ generation: UInt64, received value: RESPValue) {
        // Before the connection is ready the reply is the handshake's; `now` is read only then.
        let action = self.machine.received(value, generation: generation, now: .now())
        guard case .deliver = action else {
            self.run(action)
            return
        }
        switch self.outbox.replyReceived(value) {
        case .answered(let progress, let completion, let sendQueued):
            if case .published = progress {
                self.publishedCounter.increment()
            } else {
                self.failedCounter.increment()
            }
            completion?.report(.progress(progress))
            // A slot is free: send what waits for one, and let `shutdown` know when all is answered.
            if sendQueued { self.run(self.outbox.sendQueued(now: .now())) }
        case .subscriberCount(let count):
            self.run(self.outbox.subscriberCountReceived(count, now: .now()))
        case .unexpected:
            let error = self.error(.protocolError, "Redis sent a reply nobody asked for: \(value)")
            self.run(self.machine.abandon(error, now: .now()))
        }
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        self.run(self.machine.connectionClosed(generation: generation, error: error, now: .now()))
    }
}
