public import Logging
import Metrics
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
package import SocketGatewayCore

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

/// What became of one publish. Delivered exactly once per publish, on the publisher's event loop.
public enum PublishProgress: Sendable {
    /// Redis accepted the PUBLISH; this many subscribers received it.
    case published(subscribers: Int)
    /// Redis is unreachable and the message waits in the outbox (outbox mode only); it is sent on reconnect
    /// and nothing more is reported about it.
    case queued(reason: String)
    /// The message was not (or may not have been) published.
    case failed(RedisError)
}

/// What became of a publish made with a deadline: its progress, or that the deadline passed first.
package enum PublishOutcome: Sendable {
    /// What `PublishProgress` says, reported before the deadline.
    case progress(PublishProgress)
    /// No answer (nor failure, nor queuing) before the deadline; nothing more is reported. The message may still
    /// be published.
    case timedOut
}

extension EmitResult {
    /// What an emit published with a deadline came to, as both gateways report it.
    /// - Parameters:
    ///   - outcome: The publish's outcome.
    ///   - timeout: The deadline's distance (named in the reason).
    ///   - outboxOn: Whether a timed-out message stays queued (outbox) or may be lost.
    ///   - localDeliveries: Clients reached on this host.
    package init(_ outcome: PublishOutcome, timeout: Duration, outboxOn: Bool, localDeliveries: Int = 0) {
        switch outcome {
        case .progress(.published(let subscribers)):
            self.init(outcome: .published, localDeliveries: localDeliveries, redisSubscribers: subscribers)
        case .progress(.queued(let reason)):
            self.init(
                outcome: .queued, localDeliveries: localDeliveries, reason: "Redis unreachable, held in the outbox: \(reason)")
        case .progress(.failed(let error)):
            self.init(outcome: .failed, localDeliveries: localDeliveries, reason: error.description)
        case .timedOut:
            self.init(
                outcome: outboxOn ? .queued : .failed, localDeliveries: localDeliveries,
                reason: "Redis did not answer within \(timeout)"
                    + (outboxOn ? "; the message stays queued" : "; it may still be published"))
        }
    }
}

/// Whom to tell what became of a publish.
enum PublishCallback {
    case none
    case progress(@Sendable (PublishProgress) -> Void)
    /// Also told `.timedOut` at `deadline` unless answered before (then nothing more).
    case timed(@Sendable (PublishOutcome) -> Void, deadline: NIODeadline)

    init(_ completion: (@Sendable (PublishProgress) -> Void)?) {
        self = completion.map { .progress($0) } ?? .none
    }

    var isSet: Bool {
        if case .none = self { return false }
        return true
    }

    func report(_ progress: PublishProgress) {
        switch self {
        case .none: break
        case .progress(let completion): completion(progress)
        case .timed(let completion, _): completion(.progress(progress))
        }
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

    private struct Request {
        var payload: ByteBuffer
        var completion: PublishCallback
    }

    private enum InFlightKind {
        case handshake(RedisConnector.HandshakeStep)
        case publish(Request)
        /// `PUBSUB NUMSUB channel`, sent while the outbox waits for subscribers after a reconnect.
        case subscriberCount
    }

    private struct InFlight {
        var kind: InFlightKind
        var sentAt: NIODeadline
    }

    private var state: State = .idle
    private var generation: UInt64 = 0
    private var queue = CircularBuffer<Request>()
    private var inFlight = CircularBuffer<InFlight>()
    private var outbound: ByteBuffer?
    private var flushScheduled = false
    private var backoff: ReconnectBackoff
    private var timer: RepeatedTask?
    private var closeReason: RedisError?
    private var everConnected = false
    private var drainWaiters: [(deadline: NIODeadline, promise: EventLoopPromise<Void>)] = []
    /// Subscribers the last PUBLISH reached.
    private var lastSubscribers = 0
    /// Set while the outbox is held after a reconnect, waiting for subscribers to come back (until this time).
    private var holdingOutboxUntil: NIODeadline?
    /// Publishes, handed to the loop in call order, framed, in batches.
    private let handoff: RedisPublishHandoff
    /// The payload of in-flight messages whose bytes are not kept (an empty buffer, shared).
    private let noPayload = ByteBuffer()
    /// Confined to the loop: `outbound` shares its storage with in-flight payloads (written as handed over), so
    /// appending to it would copy it; start a new buffer instead.
    private var outboundShared = false
    /// Confined to the loop: an `expireDeadlines()` is scheduled.
    private var deadlineArmed = false
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
        self.handoff = RedisPublishHandoff(channel: configuration.channel)
        let dimensions = [("channel", configuration.channel)]
        self.publishedCounter = Counter(label: "socketgateway_redis_published_total", dimensions: dimensions)
        self.failedCounter = Counter(label: "socketgateway_redis_publish_failures_total", dimensions: dimensions)
        self.droppedCounter = Counter(label: "socketgateway_redis_outbox_dropped_total", dimensions: dimensions)
        self.connectedGauge = Gauge(label: "socketgateway_redis_publisher_connected", dimensions: dimensions)
    }

    /// Connection state and counters, readable from any thread.
    public var currentStatus: RedisPublisherStatus { self.status.withLockedValue { $0 } }

    /// Publishes `payload`; `completion` (if any) is called once on the publisher's event loop.
    ///
    /// Safe to call from any thread; calls from one thread are published in call order.
    /// - Parameters:
    ///   - payload: The message bytes.
    ///   - completion: Told what became of the message; `nil` for fire-and-forget.
    public func publish(_ payload: ByteBuffer, completion: (@Sendable (PublishProgress) -> Void)?) {
        let schedule = payload.withUnsafeReadableBytes { self.handoff.hand(PublishCallback(completion), payload: $0) }
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
        if self.handoff.hand(PublishCallback(completion), writePayload: writePayload) {
            self.eventLoop.execute { self.takeIncoming() }
        }
    }

    /// Like ``publish(completion:writePayload:)``, but `completion` is told `.timedOut` at `deadline` unless
    /// Redis answered (or the publish failed or was queued) before; either way it is called exactly once.
    package func publish(
        deadline: NIODeadline, completion: @escaping @Sendable (PublishOutcome) -> Void,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        if self.handoff.hand(.timed(completion, deadline: deadline), writePayload: writePayload) {
            self.eventLoop.execute { self.takeIncoming() }
        }
    }

    /// Submits what was handed over since the last call, in order (on the loop). When the connection is ready
    /// and nothing waits before them, the framed bytes go to the socket as they are.
    private func takeIncoming() {
        self.handoff.withNextBatch { bytes, batch in
            if case .ready(let channel) = self.state, self.queue.isEmpty, self.holdingOutboxUntil == nil,
                self.inFlight.count + batch.count <= self.configuration.maxInFlight
            {
                let now = NIODeadline.now()
                // Only the outbox sends an in-flight message again (after a reconnect); otherwise its bytes need
                // not be kept, and the batch's buffer can be reused once written.
                let keepPayloads = self.isOutboxMode
                for entry in batch {
                    let payload =
                        keepPayloads
                        ? bytes.getSlice(at: entry.payloadOffset, length: entry.payloadLength)! : self.noPayload
                    self.inFlight.append(
                        InFlight(kind: .publish(Request(payload: payload, completion: entry.completion)), sentAt: now))
                    self.armDeadline(for: entry.completion)
                }
                if let pending = self.outbound.take(), pending.readableBytes > 0 {
                    channel.write(pending, promise: nil)
                }
                if keepPayloads {
                    self.outbound = bytes
                    self.outboundShared = true
                } else {
                    let written = channel.eventLoop.makePromise(of: Void.self)
                    channel.write(bytes, promise: written)
                    written.futureResult.whenSuccess { self.handoff.recycle(bytes) }
                }
                self.scheduleFlush()
                return
            }
            for entry in batch {
                let payload = bytes.getSlice(at: entry.payloadOffset, length: entry.payloadLength)!
                self.submit(Request(payload: payload, completion: entry.completion))
            }
        }
    }

    /// Schedules `expireDeadlines()` for `completion`'s deadline, unless one is scheduled (on the loop).
    ///
    /// Deadlines come in the order publishes are made (every timed publish of a gateway has the same timeout), so
    /// one scheduled check at a time, for the oldest unanswered one, expires them all.
    @inline(__always)
    private func armDeadline(for completion: PublishCallback) {
        guard !self.deadlineArmed, case .timed(_, let deadline) = completion else { return }
        self.deadlineArmed = true
        self.eventLoop.scheduleTask(deadline: deadline) { self.expireDeadlines() }
    }

    /// Tells every timed publish whose deadline passed `.timedOut` (it is told nothing more); schedules itself
    /// for the next unexpired one (on the loop).
    private func expireDeadlines() {
        self.deadlineArmed = false
        let now = NIODeadline.now()
        var expired: [@Sendable (PublishOutcome) -> Void] = []
        var next: NIODeadline?
        /// Expires `request` if due; returns false at the first timed request not yet due.
        func visit(_ request: inout Request) -> Bool {
            guard case .timed(let completion, let deadline) = request.completion else { return true }
            if deadline > now {
                next = deadline
                return false
            }
            request.completion = .none
            expired.append(completion)
            return true
        }
        var pending = true
        for index in self.inFlight.indices where pending {
            guard case .publish(var request) = self.inFlight[index].kind else { continue }
            pending = visit(&request)
            self.inFlight[index].kind = .publish(request)
        }
        for index in self.queue.indices where pending {
            pending = visit(&self.queue[index])
        }
        if let next {
            self.deadlineArmed = true
            self.eventLoop.scheduleTask(deadline: next) { self.expireDeadlines() }
        }
        for completion in expired {
            completion(.timedOut)
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
            self.drainWaiters.append((deadline, promise))
            if self.holdingOutboxUntil != nil {
                // Shutting down: send what is held now rather than wait for subscribers.
                self.holdingOutboxUntil = nil
                self.drainQueue()
            }
            if self.queue.isEmpty && self.inFlight.isEmpty || deadline <= .now() {
                self.finishDrains(force: true)
            } else {
                self.startTimerIfNeeded()
                if case .idle = self.state { self.connect() }
            }
        }
        try? await promise.futureResult.get()
        return (try? await self.eventLoop.submit { self.closeForShutdown() }.get()) ?? 0
    }

    // MARK: - Event-loop confined

    private var isOutboxMode: Bool { self.configuration.outboxCapacity > 0 }

    private func submit(_ request: Request) {
        self.eventLoop.preconditionInEventLoop()
        self.armDeadline(for: request.completion)
        switch self.state {
        case .shutdown:
            request.completion.report(.failed(self.error(.shutdown, "the publisher was shut down")))
        case .ready(let channel):
            if self.queue.isEmpty && self.inFlight.count < self.configuration.maxInFlight {
                self.write(request, on: channel)
            } else {
                self.enqueue(request)
            }
        case .connecting, .handshaking:
            self.enqueue(request)
        case .idle:
            self.enqueue(request)
            self.connect()
        case .waiting(_, let lastError):
            if self.isOutboxMode {
                var request = request
                let completion = request.completion
                request.completion = .none
                if self.enqueue(request) {
                    completion.report(.queued(reason: lastError.message))
                } else {
                    completion.report(.failed(self.error(.overloaded, "the outbox is full")))
                }
            } else {
                self.failedCounter.increment()
                request.completion.report(.failed(lastError))
            }
        }
    }

    /// Appends to the queue; on overflow drops the oldest (outbox mode) or refuses the new one.
    @discardableResult
    private func enqueue(_ request: Request) -> Bool {
        let capacity = self.isOutboxMode ? self.configuration.outboxCapacity : self.configuration.maxQueued
        if self.queue.count >= capacity {
            if self.isOutboxMode {
                let dropped = self.queue.removeFirst()
                self.droppedCounter.increment()
                let total = self.status.withLockedValue { status -> Int in
                    status.droppedFromOutbox += 1
                    return status.droppedFromOutbox
                }
                self.logger.warning(
                    "Redis outbox full; dropped the oldest message",
                    metadata: ["redis.outbox.capacity": "\(capacity)", "redis.outbox.dropped_total": "\(total)"])
                dropped.completion.report(
                    .failed(self.error(.overloaded, "dropped from the full outbox (capacity \(capacity))")))
            } else {
                self.failedCounter.increment()
                request.completion.report(
                    .failed(self.error(.overloaded, "\(capacity) messages already wait for Redis")))
                return false
            }
        }
        self.queue.append(request)
        self.startTimerIfNeeded()
        return true
    }

    private func write(_ request: Request, on channel: any Channel) {
        self.inFlight.append(InFlight(kind: .publish(request), sentAt: .now()))
        let size = RESPCommand.publishSize(channel: self.configuration.channel, payloadBytes: request.payload.readableBytes)
        self.unshareOutbound(on: channel)
        if self.outbound == nil {
            self.outbound = channel.allocator.buffer(capacity: max(size, 4096))
        }
        RESPCommand.writePublish(channel: self.configuration.channel, payload: request.payload, into: &self.outbound!)
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

    private func drainQueue() {
        guard case .ready(let channel) = self.state, self.holdingOutboxUntil == nil else { return }
        while self.inFlight.count < self.configuration.maxInFlight, let request = self.queue.popFirst() {
            self.write(request, on: channel)
        }
        self.finishDrains(force: false)
    }

    private func connect() {
        self.state = .connecting
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
                    self.inFlight.append(InFlight(kind: .handshake(step), sentAt: now))
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
            reconnected ? "reconnected to Redis" : "connected to Redis", metadata: ["redis.queued": "\(self.queue.count)"])
        if reconnected, self.isOutboxMode, !self.queue.isEmpty, self.lastSubscribers > 0,
            self.configuration.outboxSubscriberWait > .zero, self.drainWaiters.isEmpty
        {
            self.holdingOutboxUntil = .now() + TimeAmount(self.configuration.outboxSubscriberWait)
            self.askSubscriberCount(on: channel)
            return
        }
        self.drainQueue()
    }

    /// Sends `PUBSUB NUMSUB channel` (the outbox is held until enough subscribers are back).
    private func askSubscriberCount(on channel: any Channel) {
        self.inFlight.append(InFlight(kind: .subscriberCount, sentAt: .now()))
        self.unshareOutbound(on: channel)
        if self.outbound == nil { self.outbound = channel.allocator.buffer(capacity: 64) }
        RESPCommand.write(["PUBSUB", "NUMSUB", self.configuration.channel], into: &self.outbound!)
        self.scheduleFlush()
    }

    /// A `PUBSUB NUMSUB` reply while the outbox is held: release it, or ask again shortly.
    private func subscriberCountArrived(_ value: RESPValue) {
        guard let until = self.holdingOutboxUntil, case .ready = self.state else { return }
        var count = 0
        if case .array(let items) = value, items.count == 2, case .integer(let number) = items[1] {
            count = Int(number)
        }
        let expired = NIODeadline.now() >= until || !self.drainWaiters.isEmpty
        if count >= self.lastSubscribers || expired {
            if count < self.lastSubscribers {
                self.logger.warning(
                    "sending the outbox with fewer subscribers than before the outage",
                    metadata: ["redis.subscribers": "\(count)", "redis.subscribers_before": "\(self.lastSubscribers)"])
            }
            self.holdingOutboxUntil = nil
            self.drainQueue()
            return
        }
        let generation = self.generation
        self.eventLoop.scheduleTask(in: .milliseconds(25)) {
            guard generation == self.generation, self.holdingOutboxUntil != nil, case .ready(let channel) = self.state
            else { return }
            self.askSubscriberCount(on: channel)
        }
    }

    private func connectFailed(_ error: RedisError) {
        if case .handshaking(let channel) = self.state {
            self.generation &+= 1
            channel.close(promise: nil)
        }
        self.inFlight.removeAll()
        let delay = self.backoff.nextDelay()
        self.state = .waiting(until: .now() + TimeAmount(delay), lastError: error)
        self.markDisconnected()
        self.logger.warning(
            "Redis unreachable; retrying",
            metadata: [
                "error": "\(error)", "redis.retry_in_ms": "\(ReconnectBackoff.nanoseconds(delay) / 1_000_000)",
                "redis.attempt": "\(self.backoff.attempts)", "redis.queued": "\(self.queue.count)",
            ])
        if self.isOutboxMode {
            for index in self.queue.indices where self.queue[index].completion.isSet {
                let completion = self.queue[index].completion
                self.queue[index].completion = .none
                completion.report(.queued(reason: error.message))
            }
        } else {
            while let request = self.queue.popFirst() {
                self.failedCounter.increment()
                request.completion.report(.failed(error))
            }
        }
        let generation = self.generation
        self.eventLoop.scheduleTask(in: TimeAmount(delay)) {
            guard generation == self.generation, case .waiting = self.state else { return }
            if self.queue.isEmpty && self.drainWaiters.isEmpty {
                self.state = .idle
            } else {
                self.connect()
            }
        }
        self.finishDrains(force: false)
    }

    private func markDisconnected() {
        self.holdingOutboxUntil = nil
        self.status.withLockedValue { $0.connected = false }
        self.connectedGauge.record(0)
    }

    private func connectionLost(_ error: RedisError) {
        self.generation &+= 1
        self.markDisconnected()
        self.outbound = nil
        self.outboundShared = false
        var unanswered = CircularBuffer<Request>()
        while let entry = self.inFlight.popFirst() {
            if case .publish(let request) = entry.kind { unanswered.append(request) }
        }
        self.logger.warning(
            "Redis connection lost", metadata: ["error": "\(error)", "redis.unanswered": "\(unanswered.count)"])
        if self.isOutboxMode {
            // At-least-once: unanswered messages go back to the front of the outbox, in order.
            while var request = unanswered.popLast() {
                let completion = request.completion
                request.completion = .none
                completion.report(.queued(reason: "connection lost before Redis answered: \(error.message)"))
                self.queue.prepend(request)
            }
            while self.queue.count > self.configuration.outboxCapacity {
                _ = self.queue.removeFirst()
                self.droppedCounter.increment()
                self.status.withLockedValue { $0.droppedFromOutbox += 1 }
            }
            let delay = self.backoff.nextDelay()
            self.state = .waiting(until: .now() + TimeAmount(delay), lastError: error)
            let generation = self.generation
            self.eventLoop.scheduleTask(in: TimeAmount(delay)) {
                guard generation == self.generation, case .waiting = self.state else { return }
                if self.queue.isEmpty && self.drainWaiters.isEmpty { self.state = .idle } else { self.connect() }
            }
        } else {
            let failure =
                error.code == .timeout
                ? error
                : RedisError(
                    code: .connectionClosed, message: "connection closed before Redis answered PUBLISH",
                    redactedURL: self.url.redacted, command: "PUBLISH", channel: self.configuration.channel,
                    underlying: error)
            for request in unanswered {
                self.failedCounter.increment()
                request.completion.report(.failed(failure))
            }
            self.state = .idle
            if !self.queue.isEmpty { self.connect() }
        }
        self.finishDrains(force: false)
    }

    private func startTimerIfNeeded() {
        guard self.timer == nil else { return }
        let timeout = TimeAmount(self.configuration.replyTimeout)
        let period = max(TimeAmount.milliseconds(10), min(TimeAmount.nanoseconds(timeout.nanoseconds / 4), .milliseconds(250)))
        self.timer = self.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            self.tick()
        }
    }

    private func tick() {
        let now = NIODeadline.now()
        if let head = self.inFlight.first, now - head.sentAt > TimeAmount(self.configuration.replyTimeout) {
            switch self.state {
            case .ready(let channel), .handshaking(let channel):
                self.closeReason = self.error(.timeout, "Redis did not answer within \(self.configuration.replyTimeout)")
                channel.close(promise: nil)
            default:
                break
            }
        }
        self.finishDrains(force: false)
    }

    private func finishDrains(force: Bool) {
        guard !self.drainWaiters.isEmpty else { return }
        let idle = self.queue.isEmpty && self.inFlight.isEmpty
        let now = NIODeadline.now()
        var remaining: [(deadline: NIODeadline, promise: EventLoopPromise<Void>)] = []
        for waiter in self.drainWaiters {
            if force || idle || waiter.deadline <= now {
                waiter.promise.succeed(())
            } else {
                remaining.append(waiter)
            }
        }
        self.drainWaiters = remaining
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
        var unsent = 0
        let error = self.error(.shutdown, "the publisher was shut down before this message was sent")
        while let entry = self.inFlight.popFirst() {
            if case .publish(let request) = entry.kind {
                unsent += 1
                request.completion.report(.failed(error))
            }
        }
        while let request = self.queue.popFirst() {
            unsent += 1
            request.completion.report(.failed(error))
        }
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
        guard let entry = self.inFlight.popFirst() else {
            self.closeReason = self.error(.protocolError, "Redis sent a reply nobody asked for: \(value)")
            self.closeCurrentChannel()
            return
        }
        switch entry.kind {
        case .handshake(let step):
            if case .error(let message) = value {
                self.connectFailed(step.error(message: message, url: self.url))
                return
            }
            if self.inFlight.isEmpty, case .handshaking(let channel) = self.state {
                self.becomeReady(channel)
            }
        case .publish(let request):
            switch value {
            case .integer(let subscribers):
                self.publishedCounter.increment()
                self.lastSubscribers = Int(subscribers)
                request.completion.report(.published(subscribers: Int(subscribers)))
            case .error(let message):
                self.failedCounter.increment()
                request.completion.report(.failed(self.error(.commandFailed, "Redis refused PUBLISH: \(message)")))
            default:
                self.failedCounter.increment()
                request.completion.report(.failed(self.error(.protocolError, "unexpected reply to PUBLISH: \(value)")))
            }
            // A slot is free: send what waits for one, and let `shutdown` know when all is answered.
            if !self.queue.isEmpty || !self.drainWaiters.isEmpty {
                self.drainQueue()
            }
        case .subscriberCount:
            self.subscriberCountArrived(value)
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

extension RESPCommand {
    /// Appends `*3\r\n$7\r\nPUBLISH\r\n$<n>\r\n<channel>\r\n$`: a `PUBLISH` up to its payload's length digits.
    static func writePublishPrefix(channel: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*3\r\n$7\r\nPUBLISH\r\n$")
        Self.writeDecimal(channel.utf8.count, into: &buffer)
        buffer.writeStaticString("\r\n")
        buffer.writeString(channel)
        buffer.writeStaticString("\r\n$")
    }

    /// Appends a `PUBLISH` whose framing up to the payload's length is `prefix` (see `writePublishPrefix`), in
    /// one copy per piece.
    /// - Returns: The writer index at which the payload starts.
    static func writePublish(
        prefix: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, into buffer: inout ByteBuffer
    ) -> Int {
        DecimalText.withDigits(of: Int64(payload.count)) { length in
            let total = prefix.count + length.count + 2 + payload.count + 2
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { free in
                var at = 0
                func put(_ bytes: UnsafeRawBufferPointer) {
                    guard let source = bytes.baseAddress, bytes.count > 0 else { return }
                    (free.baseAddress! + at).copyMemory(from: source, byteCount: bytes.count)
                    at += bytes.count
                }
                let crlf: StaticString = "\r\n"
                let crlfBytes = UnsafeRawBufferPointer(start: crlf.utf8Start, count: 2)
                put(prefix)
                put(length)
                put(crlfBytes)
                put(payload)
                put(crlfBytes)
                return at
            }
        }
        return buffer.writerIndex - payload.count - 2
    }
}
