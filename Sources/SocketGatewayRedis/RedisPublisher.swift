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
        channel: String = "socketio", connectTimeout: Duration = .seconds(2), replyTimeout: Duration = .seconds(5),
        maxInFlight: Int = 10_000, outboxCapacity: Int = 0, maxQueued: Int = 100_000,
        backoff: ReconnectBackoff = ReconnectBackoff(), outboxSubscriberWait: Duration = .seconds(10)
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
/// event loop until `shutdown` is called: call it when done.
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

    private enum State {
        case idle
        case connecting
        case handshaking(any Channel)
        case ready(any Channel)
        /// A connect failed; the next attempt is at `until`.
        case waiting(until: NIODeadline, lastError: RedisError)
        case shutdown
    }

    // The connection.
    private var state: State = .idle
    private var generation: UInt64 = 0
    private var backoff: ReconnectBackoff
    private var timer: RepeatedTask?
    private var closeReason: RedisError?
    private var everConnected = false
    /// AUTH / SELECT written and not yet answered, oldest first (before the connection is ready).
    private var handshakeInFlight = CircularBuffer<(step: RedisConnector.HandshakeStep, sentAt: NIODeadline)>()

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

    /// Creates a publisher. Nothing connects until the first publish.
    /// - Parameters:
    ///   - url: Where Redis is.
    ///   - configuration: Channel, timeouts, in-flight bound, outbox.
    ///   - eventLoop: The loop that owns the connection; `nil` picks one of NIO's shared loops.
    ///   - logger: Where connection changes and failures are logged (the URL is logged redacted).
    public init(
        url: RedisURL, configuration: RedisPublisherConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil, logger: Logger
    ) {
        self.url = url
        self.configuration = configuration
        self.eventLoop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        var logger = logger
        logger[metadataKey: "redis.url"] = "\(url.redacted)"
        logger[metadataKey: "redis.channel"] = "\(configuration.channel)"
        self.logger = logger
        self.backoff = configuration.backoff
        self.outbox = RedisOutbox(
            limits: .init(
                maxInFlight: configuration.maxInFlight, outboxCapacity: configuration.outboxCapacity,
                maxQueued: configuration.maxQueued, subscriberWait: TimeAmount(configuration.outboxSubscriberWait)),
            redactedURL: url.redacted, channel: configuration.channel)
        self.handoff = RedisPublishHandoff(channel: configuration.channel)
        let dimensions = [("channel", configuration.channel)]
        self.publishedCounter = Counter(label: "socketgateway_redis_published_total", dimensions: dimensions)
        self.failedCounter = Counter(label: "socketgateway_redis_publish_failures_total", dimensions: dimensions)
        self.droppedCounter = Counter(label: "socketgateway_redis_outbox_dropped_total", dimensions: dimensions)
        self.connectedGauge = Gauge(label: "socketgateway_redis_publisher_connected", dimensions: dimensions)
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
    package func publish(
        completion: (@Sendable (PublishProgress) -> Void)?, writePayload: (inout ByteBuffer) -> Void
    ) {
        if self.handoff.hand(completion.map { .progress($0) }, deadline: nil, writePayload: writePayload) {
            self.eventLoop.execute { self.takeIncoming() }
        }
    }

    /// Like ``publish(completion:writePayload:)``, but `completion` is told `.timedOut` at `deadline` unless
    /// Redis answered (or the publish failed or was queued) before; either way it is called exactly once.
    package func publish(
        deadline: NIODeadline, completion: @escaping @Sendable (PublishOutcome) -> Void,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        if self.handoff.hand(.timed(completion), deadline: deadline, writePayload: writePayload) {
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
                code: .connectionFailed, message: "held in the outbox until Redis is reachable: \(reason)",
                redactedURL: self.url.redacted, command: "PUBLISH", channel: self.configuration.channel)
        }
    }

    /// Waits until every queued and in-flight message has been answered, or `deadline` passes; then closes.
    /// - Returns: How many messages were still unsent (and are now failed with `.shutdown`).
    @discardableResult
    public func shutdown(deadline: NIODeadline = .now()) async -> Int {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.eventLoop.execute {
            if case .shutdown = self.state {
                promise.succeed(())
                return
            }
            self.drainWaiters.append(promise)
            self.run(self.outbox.shutdownRequested(deadline: deadline, now: .now()))
            if !self.drainWaiters.isEmpty {
                self.startTimerIfNeeded()
                if case .idle = self.state { self.connect() }
            }
        }
        try? await promise.futureResult.get()
        return (try? await self.eventLoop.submit { self.closeForShutdown() }.get()) ?? 0
    }

    // MARK: - Messages (event-loop confined)

    /// Submits what was handed over since the last call, in order. When the connection is ready and nothing
    /// waits before them, the framed bytes go to the socket as they are.
    private func takeIncoming() {
        self.handoff.withNextBatch { bytes, batch in
            let now = NIODeadline.now()
            if case .ready(let channel) = self.state {
                // Only the outbox sends an in-flight message again (after a reconnect); otherwise its bytes need
                // not be kept, and the batch's buffer can be reused once written.
                let keepPayloads = self.outbox.isOutboxMode
                let noPayload = self.noPayload
                let sent = self.outbox.sendDirectly(count: batch.count, now: now) { index in
                    let entry = batch[index]
                    let payload =
                        keepPayloads ? bytes.getSlice(at: entry.payloadOffset, length: entry.payloadLength)! : noPayload
                    return RedisOutbox.Entry(payload: payload, completion: entry.completion, deadline: entry.deadline)
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
                        RedisOutbox.Entry(payload: payload, completion: entry.completion, deadline: entry.deadline),
                        now: now))
            }
            if self.outbox.queuedCount > 0 {
                self.startTimerIfNeeded()
                if case .idle = self.state { self.connect() }
            }
        }
    }

    /// Carries out what the outbox decided.
    private func run(_ actions: RedisOutbox<PublishCallback>.Actions) {
        if !actions.writes.isEmpty, case .ready(let channel) = self.state {
            self.write(actions.writes, on: channel)
        }
        switch actions.subscriberCount {
        case .send:
            if case .ready(let channel) = self.state { self.askSubscriberCount(on: channel) }
        case .sendAt(let time):
            let generation = self.generation
            self.eventLoop.scheduleTask(deadline: time) {
                guard generation == self.generation else { return }
                self.run(self.outbox.subscriberCountTimerFired(now: .now()))
            }
        case nil:
            break
        }
        if let armDeadlineTimer = actions.armDeadlineTimer {
            self.armDeadlineTimer(at: armDeadlineTimer)
        }
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
                ])
        }
        if let short = actions.shortRelease {
            self.logger.warning(
                "sending the outbox with fewer subscribers than before the outage",
                metadata: ["redis.subscribers": "\(short.subscribers)", "redis.subscribers_before": "\(short.before)"])
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

    /// Frames `payloads` as `PUBLISH` commands into `outbound`.
    private func write(_ payloads: [ByteBuffer], on channel: any Channel) {
        self.unshareOutbound(on: channel)
        if self.outbound == nil {
            var size = 0
            for payload in payloads {
                size += RESPCommand.publishSize(channel: self.configuration.channel, payloadBytes: payload.readableBytes)
            }
            self.outbound = channel.allocator.buffer(capacity: max(size, 4096))
        }
        for payload in payloads {
            RESPCommand.writePublish(channel: self.configuration.channel, payload: payload, into: &self.outbound!)
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
        switch self.state {
        case .ready(let channel), .handshaking(let channel):
            // Without `outbound`, a batch may still have been written unflushed (see `unshareOutbound`).
            if let bytes { channel.writeAndFlush(bytes, promise: nil) } else { channel.flush() }
        default:
            break
        }
    }

    // MARK: - The connection (event-loop confined)

    private func connect() {
        self.state = .connecting
        self.outbox.awaitingConnection()
        self.generation &+= 1
        let generation = self.generation
        self.startTimerIfNeeded()
        self.logger.debug("connecting to Redis")
        RedisConnector.connect(
            url: self.url, eventLoop: self.eventLoop, connectTimeout: TimeAmount(self.configuration.connectTimeout),
            delegate: self, generation: generation
        ).whenComplete { result in
            guard generation == self.generation, case .connecting = self.state else {
                if case .success(let channel) = result { channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let channel):
                let steps = RedisConnector.handshakeCommands(for: self.url)
                if steps.isEmpty {
                    self.becomeReady(channel)
                    return
                }
                self.state = .handshaking(channel)
                var buffer = channel.allocator.buffer(capacity: 128)
                let now = NIODeadline.now()
                for step in steps {
                    RESPCommand.write(step.arguments, into: &buffer)
                    self.handshakeInFlight.append((step, now))
                }
                channel.writeAndFlush(buffer, promise: nil)
            case .failure(let error):
                self.connectFailed(
                    RedisError(
                        code: .connectionFailed, message: "cannot connect to Redis", redactedURL: self.url.redacted,
                        underlying: error))
            }
        }
    }

    /// A handshake reply: the connection fails on an error, and is ready after the last one.
    private func handshakeReplied(_ value: RESPValue) {
        let sent = self.handshakeInFlight.removeFirst()
        if case .error(let message) = value {
            self.connectFailed(sent.step.error(message: message, url: self.url))
            return
        }
        if self.handshakeInFlight.isEmpty, case .handshaking(let channel) = self.state {
            self.becomeReady(channel)
        }
    }

    private func becomeReady(_ channel: any Channel) {
        self.state = .ready(channel)
        self.backoff.reset()
        let reconnected = self.everConnected
        self.everConnected = true
        self.status.withLockedValue {
            $0.connected = true
            if reconnected { $0.reconnects += 1 }
        }
        self.connectedGauge.record(1)
        self.logger.info(
            reconnected ? "reconnected to Redis" : "connected to Redis",
            metadata: ["redis.queued": "\(self.outbox.queuedCount)"])
        self.run(self.outbox.connectionReady(reconnected: reconnected, now: .now()))
    }

    private func connectFailed(_ error: RedisError) {
        if case .handshaking(let channel) = self.state {
            self.generation &+= 1
            channel.close(promise: nil)
        }
        self.handshakeInFlight.removeAll()
        let now = NIODeadline.now()
        let delay = self.backoff.nextDelay()
        self.state = .waiting(until: now + TimeAmount(delay), lastError: error)
        self.markDisconnected()
        self.logger.warning(
            "Redis unreachable; retrying",
            metadata: [
                "error": "\(error)", "redis.retry_in_ms": "\(ReconnectBackoff.nanoseconds(delay) / 1_000_000)",
                "redis.attempt": "\(self.backoff.attempts)", "redis.queued": "\(self.outbox.queuedCount)",
            ])
        let actions = self.outbox.connectFailed(error, now: now)
        self.scheduleReconnect(after: delay)
        self.run(actions)
    }

    private func connectionLost(_ error: RedisError) {
        self.generation &+= 1
        self.markDisconnected()
        self.outbound = nil
        self.outboundShared = false
        let now = NIODeadline.now()
        let (actions, unanswered) = self.outbox.connectionLost(error, now: now)
        self.logger.warning(
            "Redis connection lost", metadata: ["error": "\(error)", "redis.unanswered": "\(unanswered)"])
        if self.outbox.isOutboxMode {
            let delay = self.backoff.nextDelay()
            self.state = .waiting(until: now + TimeAmount(delay), lastError: error)
            self.scheduleReconnect(after: delay)
            self.run(actions)
        } else {
            self.state = .idle
            self.run(actions)
            if self.outbox.queuedCount > 0 { self.connect() }
        }
    }

    /// After `delay`, connects again if messages (or a shutdown) wait; otherwise goes idle until the next publish.
    private func scheduleReconnect(after delay: Duration) {
        let generation = self.generation
        self.eventLoop.scheduleTask(in: TimeAmount(delay)) {
            guard generation == self.generation, case .waiting = self.state else { return }
            if self.outbox.wantsConnection {
                self.connect()
            } else {
                self.state = .idle
                self.outbox.awaitingConnection()
            }
        }
    }

    private func markDisconnected() {
        self.status.withLockedValue { $0.connected = false }
        self.connectedGauge.record(0)
    }

    private func startTimerIfNeeded() {
        guard self.timer == nil else { return }
        let timeout = TimeAmount(self.configuration.replyTimeout)
        let period = max(TimeAmount.milliseconds(10), min(TimeAmount.nanoseconds(timeout.nanoseconds / 4), .milliseconds(250)))
        self.timer = self.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            self.tick()
        }
    }

    /// Liveness: a connection whose oldest command waits longer than `replyTimeout` is dropped. Also lets the
    /// outbox end a drain whose deadline passed.
    private func tick() {
        let now = NIODeadline.now()
        if let sentAt = self.handshakeInFlight.first?.sentAt ?? self.outbox.oldestUnansweredSince,
            now - sentAt > TimeAmount(self.configuration.replyTimeout)
        {
            switch self.state {
            case .ready(let channel), .handshaking(let channel):
                self.closeReason = self.error(.timeout, "Redis did not answer within \(self.configuration.replyTimeout)")
                channel.close(promise: nil)
            default:
                break
            }
        }
        self.run(self.outbox.tick(now: now))
    }

    private func closeForShutdown() -> Int {
        let open: (any Channel)?
        switch self.state {
        case .shutdown: return 0
        case .ready(let channel), .handshaking(let channel): open = channel
        default: open = nil
        }
        self.state = .shutdown
        self.generation &+= 1
        open?.close(promise: nil)
        self.timer?.cancel()
        self.timer = nil
        self.markDisconnected()
        self.handshakeInFlight.removeAll()
        let (actions, unsent) = self.outbox.close()
        self.run(actions)
        if unsent > 0 {
            self.logger.warning("Redis publisher shut down with unsent messages", metadata: ["redis.unsent": "\(unsent)"])
        }
        return unsent
    }

    private func error(_ code: RedisError.Code, _ message: String) -> RedisError {
        RedisError(
            code: code, message: message, redactedURL: self.url.redacted, command: "PUBLISH",
            channel: self.configuration.channel)
    }
}

extension RedisPublisher: RedisConnectionDelegate {
    func connection(_ generation: UInt64, received value: RESPValue) {
        guard generation == self.generation else { return }
        if !self.handshakeInFlight.isEmpty {
            self.handshakeReplied(value)
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
            self.closeReason = self.error(.protocolError, "Redis sent a reply nobody asked for: \(value)")
            self.closeCurrentChannel()
        }
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        guard generation == self.generation else { return }
        let reason =
            self.closeReason
            ?? (error as? RedisError)
            ?? RedisError(
                code: .connectionClosed, message: "Redis closed the connection", redactedURL: self.url.redacted,
                underlying: error)
        self.closeReason = nil
        switch self.state {
        case .handshaking, .connecting:
            self.connectFailed(reason)
        case .ready:
            self.connectionLost(reason)
        default:
            break
        }
    }

    private func closeCurrentChannel() {
        switch self.state {
        case .ready(let channel), .handshaking(let channel): channel.close(promise: nil)
        default: break
        }
    }
}
