public import Logging
import Metrics
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix
import SocketGatewayCore

/// How a `RedisClusterPubSub` behaves.
public struct RedisClusterPubSubConfiguration: Sendable {
    /// How long a TCP connect to a node may take.
    public var connectTimeout: Duration
    /// How long a publish may take in all, redirections, topology refreshes and retries after a lost node included.
    public var publishTimeout: Duration
    /// How long a subscription connection may be silent before it is pinged, and how long the ping (or the AUTH
    /// of a new connection) may wait for its reply before the connection is dropped.
    public var pingInterval: Duration
    /// See `pingInterval`.
    public var pingTimeout: Duration
    /// How often the topology is refreshed when nothing asks for it (`CLUSTER SHARDS`).
    public var periodicRefresh: Duration
    /// When 0 (the default), a publish is retried on the slot's primary (redirections, lost nodes, failovers)
    /// until `publishTimeout`, then fails with the reason. When positive, publishes to a primary that cannot be
    /// reached wait in that primary's outbox of this many messages (the oldest dropped and counted on overflow),
    /// as ``RedisPublisherConfiguration/outboxCapacity``; when a failover gives its slots to another primary, what
    /// it held moves to the new owner's outbox.
    public var outboxCapacity: Int
    /// Outbox mode: after a reconnect, or after the messages of a failed-over primary moved to its successor, how
    /// long they wait (polling `PUBSUB SHARDNUMSUB` of the channel last published) for as many subscribers as the
    /// last publish reached; then they are sent anyway. `.zero` sends at once.
    public var outboxSubscriberWait: Duration
    /// Outbox mode: the most `SPUBLISH` commands written to one primary and not yet answered.
    public var maxInFlight: Int
    /// How long a subscription connection holds its next read while messages arrive closely spaced (see
    /// ``RedisSubscriberConfiguration/readCoalescing``; `.zero` reads every message as it comes).
    public var readCoalescing: Duration

    /// Creates a configuration.
    public init(
        connectTimeout: Duration = .seconds(2),
        publishTimeout: Duration = .seconds(5),
        pingInterval: Duration = .seconds(1),
        pingTimeout: Duration = .seconds(2),
        periodicRefresh: Duration = .seconds(5),
        outboxCapacity: Int = 0,
        outboxSubscriberWait: Duration = .seconds(10),
        maxInFlight: Int = 10_000,
        readCoalescing: Duration = RedisSubscriberConfiguration.defaultReadCoalescing
    ) {
        precondition(outboxCapacity >= 0 && maxInFlight > 0)
        self.readCoalescing = readCoalescing
        self.connectTimeout = connectTimeout
        self.publishTimeout = publishTimeout
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.periodicRefresh = periodicRefresh
        self.outboxCapacity = outboxCapacity
        self.outboxSubscriberWait = outboxSubscriberWait
        self.maxInFlight = maxInFlight
    }
}

/// What a `RedisClusterPubSub` holds right now.
public struct RedisClusterPubSubHealth: Sendable, Hashable {
    /// The primaries of the latest topology (0 before the first `CLUSTER SHARDS` answered).
    public var primaries: Int
    /// Open or opening subscription connections (one per primary with wanted channels).
    public var subscriptionConnections: Int
    /// Channels the client wants.
    public var wantedChannels: Int
    /// Wanted channels confirmed on the primary that owns them now; fewer than `wantedChannels` while a channel
    /// moves, a primary fails over, or a confirmation is on its way.
    public var activeChannels: Int
    /// Subscription connections that finished their handshake.
    public var connectionsUp = 0
    /// Primaries owning a wanted channel whose subscription connection was lost or refused and is not back (a
    /// dead primary until the cluster fails it over); a connection being opened for the first time is not down.
    public var connectionsDown = 0
    /// `wantedChannels - activeChannels`.
    public var pendingChannels = 0
    /// Topology refreshes answered (`CLUSTER SHARDS` / `CLUSTER SLOTS`) since start.
    public var topologyRefreshes = 0
    /// The latest lost connection or failed topology refresh while a connection is down or a channel pending;
    /// `nil` once every wanted channel is active on a connection that is up.
    public var lastError: String?
    /// Whether the subscription connections stopped reading (see `RedisClusterPubSub.updateReading`).
    public var readingPaused = false
    /// How many times reading was paused since start.
    public var readingPauses = 0
    /// Outbox mode: messages waiting in the primaries' outboxes (or for a first topology).
    public var outboxQueued = 0
    /// Outbox mode: messages dropped from full outboxes since start.
    public var droppedFromOutbox = 0
}

/// Sharded pub/sub on a Redis Cluster: `SPUBLISH` to the primary that owns a channel's slot, `SSUBSCRIBE` on a
/// connection per primary, channels added and removed at any time.
///
/// The topology comes from the URL's seed nodes (`CLUSTER SHARDS`, falling back to `CLUSTER SLOTS`) and is refreshed
/// after every `MOVED`, lost node or unrequested `sunsubscribe`, and every `periodicRefresh`; `RedisClusterRouter`
/// decides when and where. A publish follows `MOVED` (the map is updated) and `ASK` (a one-shot `ASKING`), and is
/// retried on another node after a lost connection or `CLUSTERDOWN`, until `publishTimeout`. Subscriptions are
/// reconciled by `RedisShardedSubscriptions` after every change: when a slot migrates or a primary fails over, each
/// affected channel is subscribed again on its new owner. Messages published while a channel is moving are lost
/// (Redis pub/sub is at-most-once).
///
/// Publish payloads are sent as UTF-8 text (the gateway's messages are JSON).
public final class RedisClusterPubSub: @unchecked Sendable {
    // All mutable state below is confined to `eventLoop`.

    /// The cluster's URL (`RedisURL.Endpoint.cluster`).
    public let url: RedisURL
    /// The configuration it was created with.
    public let configuration: RedisClusterPubSubConfiguration
    /// The loop that owns every connection; `onMessage` and the confirmations are called on it.
    public let eventLoop: any EventLoop
    private let logger: Logger
    private let onMessage: @Sendable (RedisPubSubMessage) -> Void

    var router: RedisClusterRouter
    var subscriptions = RedisShardedSubscriptions()
    /// Command connections (SPUBLISH, CLUSTER SHARDS), one per node asked.
    private var clients: [RedisClusterAddress: RedisCommandClient] = [:]
    /// Subscription connections, one per primary with wanted channels.
    private var shards: [RedisClusterAddress: RedisShardConnection] = [:]
    private var waiters: [Waiter] = []
    private var ticker: RepeatedTask?
    /// Whether topology refreshes ask `CLUSTER SLOTS` (a node did not know `CLUSTER SHARDS`, or a test asked).
    private(set) var useClusterSlots = false
    /// Lost and refused subscription connections are logged at most once per 10 s (a dead primary is retried every
    /// 250 ms until it is failed over).
    private var lossLog = LogRateLimiter(interval: .seconds(10))
    /// Failed topology refreshes are logged at most once per 10 s.
    private var refreshLog = LogRateLimiter(interval: .seconds(10))
    private var isShutDown = false
    /// Outbox mode: one outbox per primary that publishes went to (see `ShardOutbox`).
    private var outboxes: [RedisClusterAddress: ShardOutbox] = [:]
    /// Outbox mode: publishes waiting for a first topology (its link stays pending: they wait without a word).
    private var unrouted: RedisOutbox<PublishCallback>
    /// Messages dropped from full outboxes are logged at most once per 10 s.
    private var dropLog = LogRateLimiter(interval: .seconds(10))
    private var droppedFromOutbox = 0
    /// Outbox mode: set once a shutdown waits for the outboxes to empty, to the earliest deadline asked for.
    private var drainDeadline: NIODeadline?
    /// Shutdowns waiting for the drain to end (everything answered, or `drainDeadline` passed).
    /// Told when wanted channels stop and resume delivering by themselves (see `RoomChannelTransport`).
    private var activityHandler: (@Sendable (RoomChannelActivity) -> Void)?
    private var drainWaiters: [EventLoopPromise<Void>] = []
    /// Whether the consumer asked to stop reading (every subscription connection's autoRead is off).
    fileprivate private(set) var readingPaused = false
    private var readingPauses = 0
    private var topologyRefreshes = 0
    private var lastError: String?
    /// The latest `subscriptions.summary`, with the generation and topology it was counted at: the 50 ms tick
    /// counts the wanted channels again only after a change.
    private var summaryCache: SummaryCache?

    private struct SummaryCache {
        var generation: UInt64
        var topology: RedisClusterTopology?
        var summary: RedisShardedSubscriptions.Summary
    }
    /// `health` as of the latest change, readable from any thread.
    private let snapshot = NIOLockedValueBox(
        RedisClusterPubSubHealth(primaries: 0, subscriptionConnections: 0, wantedChannels: 0, activeChannels: 0)
    )
    private let connectionsUpGauge = Gauge(label: "socketgateway_redis_sharded_connections_up")
    private let connectionsDownGauge = Gauge(label: "socketgateway_redis_sharded_connections_down")
    private let pendingGauge = Gauge(label: "socketgateway_redis_sharded_channels_pending")
    private let pausedGauge = Gauge(label: "socketgateway_redis_sharded_reading_paused")
    private let refreshCounter = Counter(label: "socketgateway_redis_sharded_topology_refreshes_total")

    private struct Waiter {
        var channels: [String]
        var subscribing: Bool
        var deadline: NIODeadline
        var callback: @Sendable (Result<Void, RedisError>) -> Void
    }

    /// Creates the client; call `start()` to discover the topology and subscribe.
    /// - Parameters:
    ///   - url: A cluster URL (`redis+cluster://host:port,…`; a `redis://host:port` URL counts as one seed); user
    ///     and password apply to every node. Must not be a unix-socket URL.
    ///   - configuration: Timeouts and refresh interval.
    ///   - eventLoop: The loop that owns the connections; `nil` picks one of NIO's shared loops.
    ///   - logger: Where topology and connection changes are logged.
    ///   - onMessage: Called on `eventLoop` for every message on a subscribed channel. Keep it short.
    public init(
        url: RedisURL,
        configuration: RedisClusterPubSubConfiguration = .init(),
        eventLoop: (any EventLoop)? = nil,
        logger: Logger,
        onMessage: @escaping @Sendable (RedisPubSubMessage) -> Void
    ) {
        // `if case` rather than a `switch`, so that endpoint kinds added later (Sentinel) need no case here.
        let seeds: [RedisClusterAddress]
        if case .cluster(let list) = url.endpoint {
            seeds = list
        } else if case .tcp(let host, let port) = url.endpoint {
            seeds = [RedisClusterAddress(host: host, port: port)]
        } else {
            preconditionFailure("a Redis Cluster is reached through TCP seed nodes, not \(url.redacted)")
        }
        self.url = url
        self.configuration = configuration
        self.eventLoop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        var logger = logger
        logger[metadataKey: "redis.url"] = "\(url.redacted)"
        self.logger = logger
        self.onMessage = onMessage
        self.unrouted = RedisOutbox(
            limits: Self.outboxLimits(configuration),
            redactedURL: url.redacted,
            channel: "(sharded)"
        )
        self.router = RedisClusterRouter(
            configuration: .init(
                seeds: seeds,
                refreshTimeout: TimeAmount(configuration.pingTimeout),
                periodicRefresh: TimeAmount(configuration.periodicRefresh)
            )
        )
    }

    /// Asks `CLUSTER SLOTS` for the topology from the start, as it does once a node did not know `CLUSTER SHARDS`
    /// (Redis < 7): for tests of that path. Call before `start()`.
    package func preferClusterSlots() {
        self.eventLoop.execute { self.useClusterSlots = true }
    }

    /// Starts discovering the topology (once); later calls do nothing.
    public func start() {
        self.eventLoop.execute {
            guard self.ticker == nil, !self.isShutDown else { return }
            self.ticker = self.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(50)) { _ in
                self.tick(now: .now())
            }
        }
    }

    /// Publishes `payload` to the sharded channel `channel` (`SPUBLISH`), retried on the slot's primary until
    /// `publishTimeout` (never through the outbox: an awaited publish wants a receiver count or an error).
    /// - Returns: How many clients of the owning shard received it.
    /// - Throws: `RedisError`: `.timeout` when no primary took it within `publishTimeout`, `.commandFailed` for an
    ///   error reply or too many redirections, `.shutdown`.
    @discardableResult
    public func publish(channel: String, payload: ByteBuffer) async throws(RedisError) -> Int {
        let future = self.publish(channel: channel, text: String(buffer: payload), deadline: nil)
        do {
            return try await future.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .commandFailed, message: "SPUBLISH failed: \(error)", command: "SPUBLISH")
        }
    }

    /// Whether publishes go through per-primary outboxes (`outboxCapacity > 0`).
    package var isOutboxMode: Bool { self.configuration.outboxCapacity > 0 }

    /// Publishes the bytes `writePayload` appends (called at once, on the calling thread) to the sharded channel
    /// `channel`; `completion` (if any) is called once, on `eventLoop`: `.published` with the owning shard's
    /// receivers, or `.failed` with the reason (no primary took it within `publishTimeout`; an error reply;
    /// shutdown). In outbox mode, `.queued` while the owning primary cannot be reached (then nothing more).
    package func publish(
        channel: String,
        completion: (@Sendable (PublishProgress) -> Void)?,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        if self.isOutboxMode {
            self.submitToOutbox(channel: channel, completion: completion.map { .progress($0) }, deadline: nil) {
                writePayload(&$0)
            }
            return
        }
        self.publishDirectly(channel: channel, deadline: nil, completion: completion, writePayload: writePayload)
    }

    /// Publishes as ``publish(channel:completion:writePayload:)``; `completion` is called once, on `eventLoop`:
    /// with the progress, or (outbox mode) `.timedOut` at `deadline` when nothing was reported by then (the message
    /// may still be published). Without an outbox, `deadline` bounds the retries instead (`.failed` at it).
    package func publish(
        channel: String,
        deadline: NIODeadline,
        completion: @escaping @Sendable (PublishOutcome) -> Void,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        if self.isOutboxMode {
            self.submitToOutbox(channel: channel, completion: .timed(completion), deadline: deadline) {
                writePayload(&$0)
            }
            return
        }
        let progress: @Sendable (PublishProgress) -> Void = { completion(.progress($0)) }
        self.publishDirectly(channel: channel, deadline: deadline, completion: progress) { writePayload(&$0) }
    }

    /// Without an outbox: one attempt, retried until `deadline` (`publishTimeout` when `nil`).
    private func publishDirectly(
        channel: String,
        deadline: NIODeadline?,
        completion: (@Sendable (PublishProgress) -> Void)?,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        writePayload(&buffer)
        let future = self.publish(channel: channel, text: String(buffer: buffer), deadline: deadline)
        guard let completion else { return }
        future.whenComplete { result in
            switch result {
            case .success(let receivers):
                completion(.published(subscribers: receivers))
            case .failure(let error as RedisError):
                completion(.failed(error))
            case .failure(let error):
                completion(.failed(RedisError(code: .commandFailed, message: "SPUBLISH failed: \(error)")))
            }
        }
    }

    private func publish(channel: String, text: String, deadline: NIODeadline?) -> EventLoopFuture<Int> {
        let promise = self.eventLoop.makePromise(of: Int.self)
        let attempt = PublishAttempt(
            channel: channel,
            text: text,
            slot: RedisClusterSlot.of(channel),
            deadline: deadline ?? .now() + TimeAmount(self.configuration.publishTimeout),
            promise: promise
        )
        self.eventLoop.execute { self.send(attempt, to: nil, asking: false) }
        return promise.futureResult
    }

    /// Subscribes to sharded channels (`SSUBSCRIBE` on each channel's primary); already subscribed ones stay.
    /// - Parameters:
    ///   - channels: The channels.
    ///   - timeout: How long `onConfirmed` waits for every channel to be confirmed before it gets `.timeout` (the
    ///     channels stay wanted and keep being subscribed).
    ///   - onConfirmed: Called once on `eventLoop`: success when every channel is confirmed on its owner.
    public func subscribe(
        _ channels: [String],
        timeout: Duration = .seconds(10),
        onConfirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    ) {
        self.eventLoop.execute {
            guard self.drainDeadline == nil else {
                onConfirmed(.failure(RedisError(code: .shutdown, message: "the cluster client is shutting down")))
                return
            }
            self.subscriptions.subscribe(channels)
            self.addWaiter(channels, subscribing: true, timeout: timeout, onConfirmed)
            self.tick(now: .now())
        }
    }

    /// Unsubscribes from sharded channels (`SUNSUBSCRIBE`).
    /// - Parameters:
    ///   - channels: The channels.
    ///   - timeout: How long `onConfirmed` waits for the unsubscriptions.
    ///   - onConfirmed: Called once on `eventLoop`: success when no connection has any of them subscribed.
    public func unsubscribe(
        _ channels: [String],
        timeout: Duration = .seconds(10),
        onConfirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    ) {
        self.eventLoop.execute {
            self.subscriptions.unsubscribe(channels)
            self.addWaiter(channels, subscribing: false, timeout: timeout, onConfirmed)
            self.tick(now: .now())
        }
    }

    /// `subscribe` that waits for the confirmation.
    public func subscribe(_ channels: [String], timeout: Duration = .seconds(10)) async throws(RedisError) {
        try await self.confirm { self.subscribe(channels, timeout: timeout, onConfirmed: $0) }
    }

    /// `unsubscribe` that waits for the confirmation.
    public func unsubscribe(_ channels: [String], timeout: Duration = .seconds(10)) async throws(RedisError) {
        try await self.confirm { self.unsubscribe(channels, timeout: timeout, onConfirmed: $0) }
    }

    /// What the client holds right now.
    public func health() async -> RedisClusterPubSubHealth {
        let health = try? await self.eventLoop.submit { self.updateSnapshot() }.get()
        return health ?? self.currentHealth
    }

    /// What the client held at its latest change (at most 50 ms old while it runs), without waiting: readable
    /// from any thread, for `/healthz`.
    public var currentHealth: RedisClusterPubSubHealth {
        self.snapshot.withLockedValue { $0 }
    }

    /// Stops or resumes reading on every subscription connection (and on the ones opened while paused), for a
    /// consumer that cannot keep up: while paused, what is published waits in each primary's output buffer for
    /// the connection (`client-output-buffer-limit pubsub`; a primary that drops the connection for it has the
    /// channels subscribed again, as after any lost connection). The liveness check is suspended while paused.
    ///
    /// `shouldPause` is evaluated on `eventLoop` when the call arrives, so calls from several threads settle on
    /// the consumer's latest state. Safe to call from any thread.
    package func updateReading(shouldPause: @escaping @Sendable () -> Bool) {
        self.eventLoop.execute {
            let pause = shouldPause()
            guard pause != self.readingPaused, !self.isShutDown else { return }
            self.readingPaused = pause
            if pause { self.readingPauses += 1 }
            self.logger.debug(pause ? "paused reading sharded channels" : "resumed reading sharded channels")
            for shard in self.shards.values { shard.setReading(paused: pause) }
            self.updateSnapshot()
        }
    }

    /// Computes `health` and stores it for `currentHealth`; clears `lastError` once everything is subscribed.
    @discardableResult
    private func updateSnapshot() -> RedisClusterPubSubHealth {
        let topology = self.router.topology
        let summary: RedisShardedSubscriptions.Summary
        if let cache = self.summaryCache, cache.generation == self.subscriptions.generation, cache.topology == topology
        {
            summary = cache.summary
        } else {
            summary = self.subscriptions.summary(topology: topology)
            self.summaryCache = SummaryCache(
                generation: self.subscriptions.generation,
                topology: topology,
                summary: summary
            )
        }
        if summary.connectionsDown == 0, summary.channelsPending == 0 { self.lastError = nil }
        var health = RedisClusterPubSubHealth(
            primaries: topology?.primaries.count ?? 0,
            subscriptionConnections: self.subscriptions.connectedNodes.count,
            wantedChannels: self.subscriptions.wanted.count,
            activeChannels: summary.channelsSubscribed
        )
        health.connectionsUp = summary.connectionsUp
        health.connectionsDown = summary.connectionsDown
        health.pendingChannels = summary.channelsPending
        health.topologyRefreshes = self.topologyRefreshes
        health.lastError = self.lastError
        health.readingPaused = self.readingPaused
        health.readingPauses = self.readingPauses
        health.outboxQueued = self.outboxes.values.reduce(self.unrouted.queuedCount) { $0 + $1.outbox.queuedCount }
        health.droppedFromOutbox = self.droppedFromOutbox
        let previous = self.snapshot.withLockedValue { snapshot in
            defer { snapshot = health }
            return snapshot
        }
        if previous.connectionsUp != health.connectionsUp { self.connectionsUpGauge.record(health.connectionsUp) }
        if previous.connectionsDown != health.connectionsDown {
            self.connectionsDownGauge.record(health.connectionsDown)
        }
        if previous.pendingChannels != health.pendingChannels { self.pendingGauge.record(health.pendingChannels) }
        if previous.readingPaused != health.readingPaused { self.pausedGauge.record(health.readingPaused ? 1 : 0) }
        return health
    }

    /// Stops subscribing, sends what the outboxes hold (outbox mode) until everything is answered or `deadline`
    /// passes, then closes every connection: what is still unsent fails with `.shutdown` (logged as a warning),
    /// and so does what else waits. Publishes made meanwhile still go through the outboxes.
    /// - Parameter deadline: How long the outboxes may take; the default closes at once.
    /// - Returns: How many messages could not be sent.
    @discardableResult
    public func shutdown(deadline: NIODeadline = .now()) async -> Int {
        try? await self.drain(until: deadline).get()
        let closed = try? await self.eventLoop.submit { self.closeAll() }.get()
        for client in closed?.clients ?? [] { await client.shutdown() }
        return closed?.unsent ?? 0
    }

    /// Starts ``shutdown(deadline:)`` without waiting for it (for a `deinit`).
    package func beginShutdown(deadline: NIODeadline = .now()) {
        self.drain(until: deadline).whenComplete { _ in
            for client in self.closeAll().clients { client.beginShutdown() }
        }
    }

    /// Succeeds (on the loop) once every outbox is empty and answered, or `deadline` passed. The subscriptions
    /// stop at once (a shutting-down consumer wants no more messages); the outboxes send what they hold without
    /// waiting for subscribers, and follow failovers meanwhile.
    private func drain(until deadline: NIODeadline) -> EventLoopFuture<Void> {
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.eventLoop.execute {
            guard !self.isShutDown, self.isOutboxMode else {
                promise.succeed(())
                return
            }
            self.drainWaiters.append(promise)
            if self.drainDeadline == nil { self.stopSubscriptions() }
            self.drainDeadline = min(self.drainDeadline ?? deadline, deadline)
            let now = NIODeadline.now()
            for address in Array(self.outboxes.keys) {
                self.runOutbox(
                    self.outboxes[address]!.outbox.shutdownRequested(deadline: deadline, now: now),
                    address: address
                )
            }
            self.runUnrouted(self.unrouted.shutdownRequested(deadline: deadline, now: now))
            self.eventLoop.scheduleTask(deadline: deadline) { self.endDrain() }
            self.checkDrained()
        }
        return promise.futureResult
    }

    /// Ends the drain once nothing waits in or is unanswered by any outbox.
    private func checkDrained() {
        guard !self.drainWaiters.isEmpty, self.unrouted.queuedCount == 0,
            self.outboxes.values.allSatisfy({ $0.outbox.queuedCount == 0 && $0.outbox.inFlightCount == 0 })
        else { return }
        self.endDrain()
    }

    private func endDrain() {
        let waiters = self.drainWaiters
        self.drainWaiters = []
        for waiter in waiters { waiter.succeed(()) }
    }

    /// Closes the subscription connections, forgets the wanted channels and fails the waiters (a shutdown began).
    private func stopSubscriptions() {
        for shard in self.shards.values { shard.close() }
        self.shards = [:]
        self.subscriptions = RedisShardedSubscriptions()
        for waiter in self.waiters {
            waiter.callback(.failure(RedisError(code: .shutdown, message: "the cluster client was shut down")))
        }
        self.waiters = []
    }

    /// Stops the ticker, closes the subscription connections, fails the waiters and what the outboxes still hold
    /// (logged); returns the command clients to shut down and how many messages were unsent.
    private func closeAll() -> (clients: [RedisCommandClient], unsent: Int) {
        guard !self.isShutDown else { return ([], 0) }
        self.isShutDown = true
        self.endDrain()
        var unsent = 0
        for address in Array(self.outboxes.keys) {
            let closed = self.outboxes[address]!.outbox.close()
            unsent += closed.unsent
            for report in closed.actions.reports { report.completion.report(report.outcome) }
        }
        self.outboxes = [:]
        let unrouted = self.unrouted.close()
        unsent += unrouted.unsent
        for report in unrouted.actions.reports { report.completion.report(report.outcome) }
        if unsent > 0 {
            self.logger.warning(
                "sharded outboxes shut down with unsent messages",
                metadata: ["redis.unsent": "\(unsent)"]
            )
        }
        self.activityHandler = nil
        self.ticker?.cancel()
        self.ticker = nil
        for shard in self.shards.values { shard.close() }
        self.shards = [:]
        for waiter in self.waiters {
            waiter.callback(.failure(RedisError(code: .shutdown, message: "the cluster client was shut down")))
        }
        self.waiters = []
        let clients = Array(self.clients.values)
        self.clients = [:]
        return (clients, unsent)
    }

    // MARK: - Event-loop confined

    private func confirm(
        _ start: (@escaping @Sendable (Result<Void, RedisError>) -> Void) -> Void
    ) async throws(RedisError) {
        let promise = self.eventLoop.makePromise(of: Void.self)
        start { result in promise.completeWith(result.mapError { $0 as any Error }) }
        do {
            try await promise.futureResult.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(code: .commandFailed, message: "\(error)")
        }
    }

    private func addWaiter(
        _ channels: [String],
        subscribing: Bool,
        timeout: Duration,
        _ callback: @escaping @Sendable (Result<Void, RedisError>) -> Void
    ) {
        guard !self.isShutDown, self.drainDeadline == nil else {
            callback(.failure(RedisError(code: .shutdown, message: "the cluster client was shut down")))
            return
        }
        self.waiters.append(
            Waiter(
                channels: channels,
                subscribing: subscribing,
                deadline: .now() + TimeAmount(timeout),
                callback: callback
            )
        )
    }

    /// Refreshes the topology when the router says so, reconciles the subscriptions, completes the waiters.
    private func tick(now: NIODeadline) {
        guard !self.isShutDown else { return }
        if let node = self.router.refreshDue(now: now) { self.refresh(from: node) }
        self.reconcile()
        self.checkWaiters(now: now)
        self.updateSnapshot()
        self.reportActivity()
    }

    /// Tells the activity handler which wanted channels stopped or resumed delivering since the last report.
    private func reportActivity() {
        guard let handler = self.activityHandler else { return }
        let activity = self.subscriptions.activityChanges(topology: self.router.topology)
        if !activity.isEmpty { handler(activity) }
    }

    private func refresh(from node: RedisClusterAddress) {
        let command = self.useClusterSlots ? ["CLUSTER", "SLOTS"] : ["CLUSTER", "SHARDS"]
        let client = self.client(for: node)
        client.submit(command, timeout: self.configuration.pingTimeout, errorReplyAsValue: true).whenComplete {
            result in
            guard !self.isShutDown else { return }
            do {
                let reply = try result.get()
                if case .error(let message) = reply {
                    if !self.useClusterSlots, message.lowercased().contains("unknown") {
                        self.useClusterSlots = true
                    }
                    throw RedisError(code: .commandFailed, message: message, command: command.joined(separator: " "))
                }
                let topology =
                    self.useClusterSlots
                    ? try RedisClusterTopology.parse(slots: reply, from: node)
                    : try RedisClusterTopology.parse(shards: reply, from: node, tls: self.url.tls != nil)
                let change = self.router.topologyReceived(topology, from: node, now: .now())
                self.rehomeOutboxes()
                self.topologyRefreshes += 1
                self.refreshCounter.increment()
                if change.slotsMoved || !change.primariesGone.isEmpty {
                    self.logger.info(
                        "Redis Cluster topology changed",
                        metadata: [
                            "redis.primaries": "\(topology.primaries.map(\.description).joined(separator: ","))",
                            "redis.primaries_gone": "\(change.primariesGone.map(\.description).joined(separator: ","))",
                        ]
                    )
                }
                self.tick(now: .now())
            } catch {
                // A node that cannot answer is normal during a failover; a server without cluster support ("ERR
                // This instance has cluster support disabled") is a configuration error: both are logged, at most
                // once per 10 s.
                if let suppressed = self.refreshLog.admit(at: .now) {
                    self.logger.warning(
                        "Redis Cluster topology refresh failed; asking another node",
                        metadata: ["redis.node": "\(node)", "error": "\(error)", "redis.suppressed": "\(suppressed)"]
                    )
                }
                self.lastError = "topology refresh from \(node) failed: \(error)"
                self.router.refreshFailed(from: node)
            }
        }
    }

    private func reconcile() {
        for action in self.subscriptions.reconcile(topology: self.router.topology, now: .now()) {
            switch action {
            case .connect(let address):
                let shard = RedisShardConnection(owner: self, address: address, url: self.nodeURL(address))
                self.shards[address] = shard
                shard.start()
            case .subscribe(let channel, let address):
                self.shards[address]?.send(["SSUBSCRIBE", channel])
            case .unsubscribe(let channel, let address):
                self.shards[address]?.send(["SUNSUBSCRIBE", channel])
            case .close(let address):
                self.shards.removeValue(forKey: address)?.close()
            }
        }
    }

    private func checkWaiters(now: NIODeadline) {
        guard !self.waiters.isEmpty else { return }
        let topology = self.router.topology
        var remaining: [Waiter] = []
        for waiter in self.waiters {
            let done =
                waiter.subscribing
                ? waiter.channels.allSatisfy { self.subscriptions.isActive($0, topology: topology) }
                : waiter.channels.allSatisfy { self.subscriptions.isInactive($0) }
            if done {
                waiter.callback(.success(()))
            } else if now >= waiter.deadline {
                let verb = waiter.subscribing ? "SSUBSCRIBE" : "SUNSUBSCRIBE"
                waiter.callback(
                    .failure(RedisError(code: .timeout, message: "\(verb) not confirmed in time", command: verb))
                )
            } else {
                remaining.append(waiter)
            }
        }
        self.waiters = remaining
    }

    /// The URL of one node: the cluster URL (credentials, and whatever else it carries) with the node's address.
    private func nodeURL(_ address: RedisClusterAddress) -> RedisURL {
        var url = self.url
        url.endpoint = .tcp(host: address.host, port: address.port)
        url.database = 0
        return url
    }

    private func client(for address: RedisClusterAddress) -> RedisCommandClient {
        if let client = self.clients[address] { return client }
        // A dead primary is retried every 50 ms until it is failed over: its connect failures are not logged one
        // by one (the caller gets the publish's error; lost subscriptions are logged here, rate-limited).
        var logger = self.logger
        logger.logLevel = max(logger.logLevel, .error)
        let client = RedisCommandClient(
            url: self.nodeURL(address),
            connectTimeout: self.configuration.connectTimeout,
            eventLoop: self.eventLoop,
            logger: logger
        )
        self.clients[address] = client
        return client
    }

    // MARK: Publishing

    private struct PublishAttempt {
        var channel: String
        var text: String
        var slot: Int
        var deadline: NIODeadline
        var promise: EventLoopPromise<Int>
        var redirections = 0
    }

    /// Sends `SPUBLISH` to `target` (or the slot's primary), following redirections and retrying after failures
    /// until the attempt's deadline.
    private func send(_ attempt: PublishAttempt, to target: RedisClusterAddress?, asking: Bool) {
        guard !self.isShutDown else {
            attempt.promise.fail(RedisError(code: .shutdown, message: "the cluster client was shut down"))
            return
        }
        guard let address = target ?? self.router.route(slot: attempt.slot) else {
            self.retry(attempt, reason: "no known primary for slot \(attempt.slot)")
            return
        }
        let client = self.client(for: address)
        let timeout = Duration.nanoseconds(max(1, (attempt.deadline - .now()).nanoseconds))
        if asking { _ = client.submit(["ASKING"], timeout: timeout, errorReplyAsValue: true) }
        client.submit(["SPUBLISH", attempt.channel, attempt.text], timeout: timeout, errorReplyAsValue: true)
            .whenComplete { result in
                switch result {
                case .success(.integer(let receivers)):
                    attempt.promise.succeed(Int(receivers))
                case .success(.error(let message)):
                    self.refused(attempt, by: address, message: message)
                case .success(let other):
                    attempt.promise.fail(
                        RedisError(
                            code: .protocolError,
                            message: "unexpected SPUBLISH reply \(other)",
                            command: "SPUBLISH",
                            channel: attempt.channel
                        )
                    )
                case .failure(let error):
                    self.router.nodeFailed(address)
                    self.retry(attempt, reason: "\(address): \(error)")
                }
            }
    }

    private func refused(_ attempt: PublishAttempt, by address: RedisClusterAddress, message: String) {
        if let redirection = RedisClusterRedirection(errorMessage: message, replyingHost: address.host) {
            switch self.router.redirected(redirection, redirections: attempt.redirections) {
            case .resend(let target, let asking):
                var next = attempt
                next.redirections += 1
                self.send(next, to: target, asking: asking)
            case .fail(let code, let text):
                attempt.promise.fail(
                    RedisError(code: code, message: text, command: "SPUBLISH", channel: attempt.channel)
                )
            }
        } else if message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("TRYAGAIN") {
            self.router.requestRefresh()
            self.retry(attempt, reason: message)
        } else {
            attempt.promise.fail(
                RedisError(
                    code: .commandFailed,
                    message: "Redis answered SPUBLISH with an error: \(message)",
                    command: "SPUBLISH",
                    channel: attempt.channel
                )
            )
        }
    }

    /// Tries again after 50 ms (a refresh is on its way), or fails once the deadline has passed.
    private func retry(_ attempt: PublishAttempt, reason: String) {
        let at = NIODeadline.now() + .milliseconds(50)
        guard at < attempt.deadline else {
            attempt.promise.fail(
                RedisError(
                    code: .timeout,
                    message: "no primary took SPUBLISH within \(self.configuration.publishTimeout) (last: \(reason))",
                    command: "SPUBLISH",
                    channel: attempt.channel
                )
            )
            return
        }
        self.tick(now: .now())
        self.eventLoop.scheduleTask(deadline: at) { self.send(attempt, to: nil, asking: false) }
    }

    // MARK: Subscription connections' reports

    fileprivate func shardReady(_ address: RedisClusterAddress) {
        self.subscriptions.connectionReady(address)
        self.tick(now: .now())
    }

    fileprivate func shardLost(_ address: RedisClusterAddress, error: RedisError) {
        guard self.shards[address] != nil else { return }
        if let suppressed = self.lossLog.admit(at: .now) {
            self.logger.warning(
                "Redis Cluster subscription connection lost or refused; resubscribing on the slot's primary",
                metadata: ["redis.node": "\(address)", "error": "\(error)", "redis.suppressed": "\(suppressed)"]
            )
        }
        self.shards[address] = nil
        self.lastError = "subscription connection to \(address) lost: \(error)"
        self.subscriptions.connectionLost(address, now: .now())
        self.router.nodeFailed(address)
        self.tick(now: .now())
    }

    fileprivate func shardReceived(_ value: RESPValue, from address: RedisClusterAddress) {
        switch self.subscriptions.received(value, on: address) {
        case .handled:
            self.checkWaiters(now: .now())
            self.reportActivity()
        case .message(let channel):
            guard case .array(let items) = value, items.count >= 3, case .bulkString(let payload) = items[2] else {
                return
            }
            self.onMessage(RedisPubSubMessage(channel: channel, payload: payload))
        case .refreshTopology:
            self.router.requestRefresh()
            self.tick(now: .now())
        case .protocolViolation(let text):
            self.logger.warning(
                "unexpected reply on a Redis Cluster subscription connection; reconnecting",
                metadata: ["redis.node": "\(address)", "redis.reply": "\(LogSafe.text(text))"]
            )
            self.shards[address]?.close()
            self.shardLost(address, error: RedisError(code: .protocolError, message: text))
        }
    }
}

// MARK: - Outbox mode

/// One primary's outbox: a `RedisOutbox` driven through the primary's command connection (`RedisCommandClient`,
/// one pipelined connection, so replies come in the order the outbox wrote). The link is ready once a `PING`
/// answered; a failed `SPUBLISH` or `PING` makes it unreachable (messages queue, told `.queued`) and a `PING` is
/// tried again every 250 ms while messages wait.
struct ShardOutbox {
    var outbox: RedisOutbox<PublishCallback>
    /// Bumped when the connection is lost or a connect fails: replies and failures of earlier writes are stale.
    var generation: UInt64 = 0
    /// A `PING` is on its way or scheduled.
    var probing = false
    /// A connection was ready before (the next ready one is a reconnect).
    var wasReady = false
    /// The channel the latest answered `SPUBLISH` went to (asked with `PUBSUB SHARDNUMSUB` during a hold).
    var lastChannel: String?
}

extension RedisClusterPubSub {
    static func outboxLimits(_ configuration: RedisClusterPubSubConfiguration) -> RedisOutbox<PublishCallback>.Limits {
        .init(
            maxInFlight: configuration.maxInFlight,
            outboxCapacity: configuration.outboxCapacity,
            maxQueued: max(1, configuration.outboxCapacity),
            subscriberWait: TimeAmount(configuration.outboxSubscriberWait)
        )
    }

    /// Any thread: frames the payload and hands the message to the loop, to the outbox of the slot's primary.
    fileprivate func submitToOutbox(
        channel: String,
        completion: PublishCallback?,
        deadline: NIODeadline?,
        writePayload: (inout ByteBuffer) -> Void
    ) {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        writePayload(&buffer)
        let entry = RedisOutbox<PublishCallback>.Entry(
            payload: buffer,
            completion: completion,
            deadline: deadline,
            channel: channel
        )
        self.eventLoop.execute { self.route(entry) }
    }

    /// Hands `entry` to the outbox of its slot's primary, or to `unrouted` while no topology is known.
    private func route(_ entry: RedisOutbox<PublishCallback>.Entry) {
        guard !self.isShutDown else {
            // A publish made after the shutdown, or one sent again (`CLUSTERDOWN`) after it closed the outboxes.
            let error = RedisError(code: .shutdown, message: "the cluster client was shut down", command: "SPUBLISH")
            entry.completion?.report(.progress(.failed(error)))
            return
        }
        let now = NIODeadline.now()
        guard let address = self.router.route(slot: RedisClusterSlot.of(entry.channel ?? "")) else {
            self.runUnrouted(self.unrouted.submit(entry, now: now))
            self.tick(now: now)
            return
        }
        self.ensureOutbox(address)
        self.runOutbox(self.outboxes[address]!.outbox.submit(entry, now: now), address: address)
    }

    /// Creates the outbox of `address` (and starts connecting) unless it exists.
    private func ensureOutbox(_ address: RedisClusterAddress) {
        guard self.outboxes[address] == nil else { return }
        let outbox = RedisOutbox<PublishCallback>(
            limits: Self.outboxLimits(self.configuration),
            redactedURL: self.nodeURL(address).redacted,
            channel: "(sharded via \(address))"
        )
        self.outboxes[address] = ShardOutbox(outbox: outbox)
        if let deadline = self.drainDeadline {
            // Shutting down: what it gets is sent as soon as it can be, without waiting for subscribers.
            _ = self.outboxes[address]!.outbox.shutdownRequested(deadline: deadline, now: .now())
        }
        self.probe(address)
    }

    /// Sends `PING` to `address`: the link becomes ready when it answers, unreachable when it fails.
    private func probe(_ address: RedisClusterAddress) {
        guard !self.isShutDown, var shard = self.outboxes[address], !shard.probing else { return }
        shard.probing = true
        shard.outbox.awaitingConnection()
        self.outboxes[address] = shard
        let generation = shard.generation
        let timeout = self.configuration.connectTimeout + self.configuration.pingTimeout
        self.client(for: address).submit(["PING"], timeout: timeout, errorReplyAsValue: true).whenComplete { result in
            guard !self.isShutDown, var shard = self.outboxes[address], shard.generation == generation else { return }
            shard.probing = false
            let now = NIODeadline.now()
            let actions: RedisOutbox<PublishCallback>.Actions
            switch result {
            case .success:
                actions = shard.outbox.connectionReady(reconnected: shard.wasReady, now: now)
                shard.wasReady = true
                self.outboxes[address] = shard
            case .failure(let error):
                shard.generation += 1
                actions = shard.outbox.connectFailed(self.redisError(error), now: now)
                self.outboxes[address] = shard
                self.router.nodeFailed(address)
                self.scheduleProbe(address)
            }
            self.runOutbox(actions, address: address)
        }
    }

    /// Probes `address` again in 250 ms while its outbox wants a connection.
    private func scheduleProbe(_ address: RedisClusterAddress) {
        guard var shard = self.outboxes[address], !shard.probing else { return }
        shard.probing = true
        self.outboxes[address] = shard
        self.eventLoop.scheduleTask(in: .milliseconds(250)) {
            guard var shard = self.outboxes[address] else { return }
            shard.probing = false
            self.outboxes[address] = shard
            if shard.outbox.wantsConnection { self.probe(address) }
            self.tick(now: .now())
        }
    }

    /// The connection to `address` was lost with writes unanswered: they go back to the queue (told `.queued`).
    private func outboxConnectionLost(_ address: RedisClusterAddress, error: RedisError) {
        guard var shard = self.outboxes[address] else { return }
        shard.generation += 1
        let lost = shard.outbox.connectionLost(error, now: .now())
        self.outboxes[address] = shard
        self.router.nodeFailed(address)
        self.runOutbox(lost.actions, address: address)
        self.scheduleProbe(address)
    }

    /// Performs what `address`'s outbox decided.
    private func runOutbox(_ actions: RedisOutbox<PublishCallback>.Actions, address: RedisClusterAddress) {
        defer { self.checkDrained() }
        guard !actions.isEmpty, let shard = self.outboxes[address] else { return }
        let generation = shard.generation
        let client = self.client(for: address)
        let timeout = self.configuration.publishTimeout
        for write in actions.writes {
            let channel = write.channel ?? ""
            let arguments = ["SPUBLISH", channel, String(buffer: write.payload)]
            client.submit(arguments, timeout: timeout, errorReplyAsValue: true)
                .whenComplete { self.outboxReply($0, channel: channel, address: address, generation: generation) }
        }
        self.report(actions)
        if let deadline = actions.armDeadlineTimer {
            self.eventLoop.scheduleTask(deadline: deadline) {
                guard self.outboxes[address] != nil else { return }
                self.runOutbox(self.outboxes[address]!.outbox.deadlineTimerFired(now: .now()), address: address)
            }
        }
        switch actions.subscriberCount {
        case .send:
            let channel = shard.lastChannel ?? ""
            client.submit(["PUBSUB", "SHARDNUMSUB", channel], timeout: timeout, errorReplyAsValue: true)
                .whenComplete { self.outboxReply($0, channel: nil, address: address, generation: generation) }
        case .sendAt(let deadline):
            self.eventLoop.scheduleTask(deadline: deadline) {
                guard self.outboxes[address] != nil else { return }
                let next = self.outboxes[address]!.outbox.subscriberCountTimerFired(now: .now())
                self.runOutbox(next, address: address)
            }
        case nil:
            break
        }
        if let short = actions.shortRelease {
            self.logger.warning(
                "sharded outbox released short of subscribers",
                metadata: [
                    "redis.node": "\(address)", "redis.subscribers": "\(short.subscribers)",
                    "redis.subscribers_before": "\(short.before)",
                ]
            )
        }
    }

    /// Performs what `unrouted` decided (it never writes: its link stays pending).
    private func runUnrouted(_ actions: RedisOutbox<PublishCallback>.Actions) {
        defer { self.checkDrained() }
        self.report(actions)
        if let deadline = actions.armDeadlineTimer {
            self.eventLoop.scheduleTask(deadline: deadline) {
                self.runUnrouted(self.unrouted.deadlineTimerFired(now: .now()))
            }
        }
    }

    /// Calls the completions and counts and logs what was dropped.
    private func report(_ actions: RedisOutbox<PublishCallback>.Actions) {
        for report in actions.reports { report.completion.report(report.outcome) }
        guard actions.dropped > 0 else { return }
        self.droppedFromOutbox += actions.dropped
        if let suppressed = self.dropLog.admit(at: .now) {
            self.logger.warning(
                "sharded outbox full; dropped the oldest messages",
                metadata: ["redis.dropped_total": "\(self.droppedFromOutbox)", "redis.suppressed": "\(suppressed)"]
            )
        }
    }

    /// A reply (or failure) for a command `address`'s outbox wrote; `channel` is the SPUBLISH's (nil for
    /// `PUBSUB SHARDNUMSUB`).
    private func outboxReply(
        _ result: Result<RESPValue, any Error>,
        channel: String?,
        address: RedisClusterAddress,
        generation: UInt64
    ) {
        guard !self.isShutDown, self.outboxes[address]?.generation == generation else { return }
        let now = NIODeadline.now()
        let value: RESPValue
        switch result {
        case .failure(let error):
            self.outboxConnectionLost(address, error: self.redisError(error))
            return
        case .success(let reply):
            value = reply
        }
        if case .error(let message) = value, channel != nil, self.redirects(message, address: address) {
            return
        }
        switch self.outboxes[address]!.outbox.replyReceived(value) {
        case .answered(let progress, let completion, let sendQueued):
            if case .published = progress { self.outboxes[address]!.lastChannel = channel }
            completion?.report(.progress(progress))
            if sendQueued { self.runOutbox(self.outboxes[address]!.outbox.sendQueued(now: now), address: address) }
        case .subscriberCount(let count):
            self.runOutbox(self.outboxes[address]!.outbox.subscriberCountReceived(count, now: now), address: address)
        case .unexpected:
            let error = RedisError(code: .protocolError, message: "unexpected reply \(value)", command: "SPUBLISH")
            self.outboxConnectionLost(address, error: error)
        }
    }

    /// `MOVED`/`ASK` (the map is updated, the message sent to the new owner's outbox, or once with `ASKING`) and
    /// `TRYAGAIN`/`CLUSTERDOWN` (sent again in 50 ms): the message leaves `address`'s outbox.
    /// - Returns: Whether `message` was one of these.
    private func redirects(_ message: String, address: RedisClusterAddress) -> Bool {
        let redirection = RedisClusterRedirection(errorMessage: message, replyingHost: address.host)
        let busy = message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("TRYAGAIN")
        guard redirection != nil || busy else { return false }
        guard let entry = self.outboxes[address]!.outbox.replyRedirected() else {
            self.outboxConnectionLost(address, error: RedisError(code: .protocolError, message: message))
            return true
        }
        let now = NIODeadline.now()
        if let redirection {
            switch self.router.redirected(redirection, redirections: 0) {
            case .resend(to: let target, asking: true):
                self.sendAsking(entry, to: target)
            case .resend:
                self.route(entry)
            case .fail(let code, let text):
                let error = RedisError(code: code, message: text, command: "SPUBLISH", channel: entry.channel)
                entry.completion?.report(.progress(.failed(error)))
            }
        } else {
            self.router.requestRefresh()
            self.eventLoop.scheduleTask(in: .milliseconds(50)) { self.route(entry) }
        }
        self.runOutbox(self.outboxes[address]!.outbox.sendQueued(now: now), address: address)
        return true
    }

    /// A message `ASK`ed to another node during a slot migration: sent there once with `ASKING` (retried on the
    /// slot's primary until `publishTimeout`, as without an outbox).
    private func sendAsking(_ entry: RedisOutbox<PublishCallback>.Entry, to target: RedisClusterAddress) {
        let channel = entry.channel ?? ""
        let promise = self.eventLoop.makePromise(of: Int.self)
        let attempt = PublishAttempt(
            channel: channel,
            text: String(buffer: entry.payload),
            slot: RedisClusterSlot.of(channel),
            deadline: .now() + TimeAmount(self.configuration.publishTimeout),
            promise: promise
        )
        self.send(attempt, to: target, asking: true)
        guard let completion = entry.completion else { return }
        promise.futureResult.whenComplete { result in
            switch result {
            case .success(let receivers): completion.report(.progress(.published(subscribers: receivers)))
            case .failure(let error): completion.report(.progress(.failed(self.redisError(error))))
            }
        }
    }

    /// After a topology change: the outboxes of nodes that are no longer primaries hand what they hold to the
    /// slots' new owners (who hold it until the subscribers are back); publishes that waited for a first
    /// topology are routed.
    fileprivate func rehomeOutboxes() {
        guard self.isOutboxMode, let topology = self.router.topology else { return }
        let primaries = Set(topology.primaries)
        let now = NIODeadline.now()
        var moving: [(entries: [RedisOutbox<PublishCallback>.Entry], before: Int, channel: String?)] = []
        for address in Array(self.outboxes.keys) where !primaries.contains(address) {
            var shard = self.outboxes.removeValue(forKey: address)!
            let taken = shard.outbox.evacuate()
            moving.append((taken.entries, taken.subscribersBefore, shard.lastChannel))
            if !taken.entries.isEmpty {
                self.logger.info(
                    "moving a failed-over primary's outbox to the slots' new owners",
                    metadata: ["redis.node": "\(address)", "redis.messages": "\(taken.entries.count)"]
                )
            }
        }
        if self.unrouted.queuedCount > 0 {
            moving.append((self.unrouted.evacuate().entries, 0, nil))
        }
        for (entries, before, channel) in moving {
            var byOwner: [RedisClusterAddress: [RedisOutbox<PublishCallback>.Entry]] = [:]
            var order: [RedisClusterAddress] = []
            for entry in entries {
                guard let owner = self.router.route(slot: RedisClusterSlot.of(entry.channel ?? "")) else {
                    self.runUnrouted(self.unrouted.submit(entry, now: now))
                    continue
                }
                if byOwner[owner] == nil { order.append(owner) }
                byOwner[owner, default: []].append(entry)
            }
            for owner in order {
                self.ensureOutbox(owner)
                if self.outboxes[owner]!.lastChannel == nil { self.outboxes[owner]!.lastChannel = channel }
                let actions = self.outboxes[owner]!.outbox.adopt(byOwner[owner]!, subscribersBefore: before, now: now)
                self.runOutbox(actions, address: owner)
            }
        }
    }

    private func redisError(_ error: any Error) -> RedisError {
        (error as? RedisError) ?? RedisError(code: .connectionFailed, message: "\(error)")
    }
}

extension RedisClusterPubSub: RoomChannelTransport {
    package func subscribeRoomChannel(
        _ channel: String,
        timeout: Duration,
        confirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    ) {
        self.subscribe([channel], timeout: timeout, onConfirmed: confirmed)
    }

    package func unsubscribeRoomChannel(
        _ channel: String,
        timeout: Duration,
        confirmed: @escaping @Sendable (Result<Void, RedisError>) -> Void
    ) {
        self.unsubscribe([channel], timeout: timeout, onConfirmed: confirmed)
    }

    package func updateRoomChannelReading(shouldPause: @escaping @Sendable () -> Bool) {
        self.updateReading(shouldPause: shouldPause)
    }

    package func observeRoomChannelActivity(_ handler: @escaping @Sendable (RoomChannelActivity) -> Void) {
        self.eventLoop.execute { self.activityHandler = handler }
    }
}

/// One subscription connection to a primary: a `RedisConnectionStateMachine` (AUTH, liveness, no reconnect of its
/// own: its owner reconciles) and the channel. Everything runs on the owner's loop.
final class RedisShardConnection: RedisConnectionShell, @unchecked Sendable {
    let url: RedisURL
    let eventLoop: any EventLoop
    let connectTimeout: Duration
    var machine: RedisConnectionStateMachine
    var channel: (any Channel)?
    let address: RedisClusterAddress
    private weak var owner: RedisClusterPubSub?
    private var ticker: RepeatedTask?

    init(owner: RedisClusterPubSub, address: RedisClusterAddress, url: RedisURL) {
        self.owner = owner
        self.address = address
        self.url = url
        self.eventLoop = owner.eventLoop
        self.connectTimeout = owner.configuration.connectTimeout
        self.machine = RedisConnectionStateMachine(
            configuration: .init(
                handshake: RedisHandshakeStep.handshake(for: url),
                redactedURL: url.redacted,
                handshakeTimeout: TimeAmount(owner.configuration.pingTimeout),
                liveness: (TimeAmount(owner.configuration.pingInterval), TimeAmount(owner.configuration.pingTimeout)),
                afterConnectFailure: .becomeIdle,
                afterHandshakeRefused: .becomeIdle,
                afterConnectionLost: .becomeIdle
            )
        )
    }

    func start() {
        self.ticker = self.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) {
            _ in
            self.run(self.machine.tick(now: .now()))
        }
        self.run(self.machine.start(now: .now()))
    }

    func send(_ arguments: [String]) {
        guard self.machine.isReady, let channel = self.channel else { return }
        RedisConnector.send([arguments], on: channel)
    }

    /// Stops or resumes reading (autoRead) and the liveness check; a connection not ready yet keeps reading its
    /// handshake replies and is paused when it becomes ready.
    func setReading(paused: Bool) {
        if paused { self.machine.suspendLiveness() } else { self.machine.resumeLiveness(now: .now()) }
        guard self.machine.isReady, let channel = self.channel else { return }
        channel.setOption(ChannelOptions.autoRead, value: !paused).whenComplete { _ in }
        if !paused { channel.read() }
    }

    func close() {
        self.ticker?.cancel()
        self.ticker = nil
        self.owner = nil
        if case .shutDown(closeConnection: true) = self.machine.shutdown() { self.channel?.close(promise: nil) }
        self.channel = nil
    }

    func run(_ action: RedisConnectionStateMachine.Action) {
        switch action {
        case .nothing, .deliver, .discardConnection, .shutDown:
            break
        case .connect(let generation):
            self.openConnection(generation: generation)
        case .sendHandshake(let steps):
            guard let channel = self.channel else { return }
            RedisConnector.send(steps.lazy.map(\.arguments), on: channel)
        case .becomeReady:
            // The handshake's replies are in: from now on closely spaced messages are read together.
            if let channel = self.channel, let owner = self.owner {
                RedisReadCoalescingHandler.install(delay: TimeAmount(owner.configuration.readCoalescing), on: channel)
            }
            if self.owner?.readingPaused == true { self.setReading(paused: true) }
            self.owner?.shardReady(self.address)
        case .sendPing:
            guard let channel = self.channel else { return }
            RedisConnector.send([["PING"]], on: channel)
        case .connectFailed(let error, let closeConnection, _), .connectionLost(let error, let closeConnection, _):
            if closeConnection { self.channel?.close(promise: nil) }
            self.channel = nil
            self.ticker?.cancel()
            self.ticker = nil
            self.owner?.shardLost(self.address, error: error)
        }
    }

    func connection(_ generation: UInt64, received value: RESPValue) {
        let action = self.machine.received(value, generation: generation, now: .now())
        guard case .deliver = action else {
            self.run(action)
            return
        }
        self.owner?.shardReceived(value, from: self.address)
    }

    func connection(_ generation: UInt64, closedWith error: (any Error)?) {
        self.run(self.machine.connectionClosed(generation: generation, error: error, now: .now()))
    }
}
