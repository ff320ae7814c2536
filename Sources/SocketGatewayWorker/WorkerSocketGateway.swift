public import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
public import ServiceLifecycle
public import SocketGatewayCore
public import SocketGatewayRedis

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A write-only gateway for worker processes: emits reach Socket.IO clients through Redis, in python-socketio's
/// pub/sub format, so any server subscribed to the channel (ours or python-socketio's `AsyncRedisManager`)
/// delivers them.
///
/// Creating one is cheap and does no I/O; it connects on the first emit. An emit never throws and never hangs:
/// it waits at most `emitTimeout` and reports what happened. While Redis is unreachable, emits go to a bounded
/// outbox (oldest dropped and counted on overflow) and are sent in order on reconnect. Emits from one task are
/// published in the order they were made.
///
/// Two ways to own it:
/// - as a `Service` in a `ServiceGroup`: ``run()`` waits for graceful shutdown, then sends what the outbox holds
///   (at most `shutdownTimeout`) and closes the connection; the gateway's publisher (its connection and its
///   timer) does not outlive ``run()``, and emits after it returned fail with the reason;
/// - from plain code, without `run()`: call ``shutdown(timeout:)`` before exiting to send what the outbox holds.
///   A gateway released without it stops its publisher in `deinit`: what is queued is sent for at most
///   `emitTimeout` in the background, then the connection and its timer are closed (nothing is left running),
///   but a process that exits first loses it.
public final class WorkerSocketGateway: SocketEmitter, Service {
    /// The host id written into every message (`host_id`), random per gateway like python-socketio's.
    public let hostID: String
    /// The Redis channel, `socketio` unless configured otherwise.
    public var channel: String { self.layout.channel }
    /// The channel layout: `.python` (the default) publishes everything on ``channel``; `.rooms` publishes an
    /// emit to exactly one room on that room's own channel (servers in room-channel mode receive it only where the
    /// room has members; see ``RedisChannelMode``).
    public var mode: RedisChannelMode { self.layout.mode }
    private let layout: PubSubChannelLayout
    /// How long one emit may wait for Redis.
    public let emitTimeout: Duration
    /// How long ``run()`` spends, at graceful shutdown, sending what the outbox holds.
    public let shutdownTimeout: Duration
    private let publisher: RedisPublisher?
    /// Room channels on a Redis Cluster (`redis+cluster://` in ``RedisChannelMode/rooms``): emits to one room go
    /// with `SPUBLISH` to the shard that owns the room's channel; started on the first such emit.
    private let sharded: RedisClusterPubSub?
    /// Which of `publisher` and `sharded` each emit goes to (`nil` when unconfigured or unusable).
    private let route: PubSubPublishRoute?
    private let unusableReason: String?
    private let logger: Logger
    private let warnedOnce = NIOLockedValueBox(false)
    private let publishedCounter: Counter
    private let queuedCounter: Counter
    private let failedCounter: Counter
    private let notConfiguredCounter: Counter
    /// `emitTimeout` as NIO counts it.
    private let emitTimeoutAmount: TimeAmount
    /// The completion of fire-and-forget emits: counts the outcome and logs failures; made once.
    private let recordProgress: @Sendable (PublishProgress) -> Void

    /// Creates a gateway.
    /// - Parameters:
    ///   - redisURL: `redis://…`, `rediss://…` (TLS) or `unix://…`; `nil` or empty leaves the gateway
    ///     unconfigured (every emit returns `.notConfigured`, logged once).
    ///   - channel: The pub/sub channel the servers listen on.
    ///   - outboxCapacity: How many emits to hold while Redis is unreachable; 0 turns the outbox off (such
    ///     emits then fail).
    ///   - emitTimeout: The longest one emit waits for Redis.
    ///   - signingSecret: When set, every message is signed with this shared secret (HMAC-SHA256, at least
    ///     32 bytes), for servers that require signed messages (`SocketServerRedisConfiguration.signingSecret`).
    ///     A secret that is too short leaves the gateway unusable: every emit fails with the reason.
    ///   - tls: TLS settings for a `rediss://` URL (CA file, client certificate, server name), added to the URL's
    ///     own `ssl_…` parameters; their PEM files are read here. Settings that cannot be used (a missing file,
    ///     a plain `redis://` URL) leave the gateway unusable: every emit fails with the reason.
    ///   - logger: Where connection problems, drops and configuration errors are logged (password masked).
    ///   - shutdownTimeout: How long ``run()`` spends, at graceful shutdown, sending what the outbox holds.
    ///   - mode: The channel layout of the servers (`SOCKET_REDIS_MODE`): `.python` (the default) or `.rooms`.
    public convenience init(
        redisURL: String?,
        channel: String = "socketio",
        mode: RedisChannelMode = .python,
        outboxCapacity: Int = 1000,
        emitTimeout: Duration = .seconds(2),
        signingSecret: String? = nil,
        tls: RedisTLSConfiguration? = nil,
        logger: Logger,
        shutdownTimeout: Duration = .seconds(5)
    ) {
        self.init(
            redisURL: redisURL,
            channel: channel,
            mode: mode,
            outboxCapacity: outboxCapacity,
            emitTimeout: emitTimeout,
            signingSecret: signingSecret,
            tls: tls,
            logger: logger,
            shutdownTimeout: shutdownTimeout,
            configurationError: nil
        )
    }

    private init(
        redisURL: String?,
        channel: String = "socketio",
        mode: RedisChannelMode,
        outboxCapacity: Int = 1000,
        emitTimeout: Duration = .seconds(2),
        signingSecret: String?,
        tls: RedisTLSConfiguration?,
        logger: Logger,
        shutdownTimeout: Duration = .seconds(5),
        configurationError: String?
    ) {
        self.hostID = PubSubHostID.generate()
        self.layout = PubSubChannelLayout(channel: channel, mode: mode)
        self.emitTimeout = emitTimeout
        self.shutdownTimeout = shutdownTimeout
        var logger = logger
        logger[metadataKey: "socketgateway.host_id"] = "\(self.hostID)"
        self.logger = logger
        func counter(_ outcome: EmitResult.Outcome) -> Counter {
            Counter(
                label: "socketgateway_worker_emits_total",
                dimensions: [("outcome", "\(outcome)"), ("channel", channel)]
            )
        }
        let publishedCounter = counter(.published)
        let queuedCounter = counter(.queued)
        let failedCounter = counter(.failed)
        self.publishedCounter = publishedCounter
        self.queuedCounter = queuedCounter
        self.failedCounter = failedCounter
        self.notConfiguredCounter = counter(.notConfigured)
        self.emitTimeoutAmount = TimeAmount(emitTimeout)
        let progressLogger = logger
        self.recordProgress = { progress in
            switch progress {
            case .published: publishedCounter.increment()
            case .queued: queuedCounter.increment()
            case .failed(let error):
                failedCounter.increment()
                progressLogger.warning("emit not published", metadata: ["error": "\(error)"])
            }
        }

        var signingKey: PubSubSigningKey?
        var keyError: String?
        if let signingSecret {
            do {
                signingKey = try PubSubSigningKey(secret: signingSecret)
            } catch {
                keyError = error.description
            }
        }
        let writer = PubSubMessageWriter(signingKey: signingKey)
        guard let text = redisURL?.trimmingSpaces, !text.isEmpty else {
            self.publisher = nil
            self.sharded = nil
            self.route = nil
            self.unusableReason = nil
            return
        }
        if let reason = configurationError ?? keyError {
            self.publisher = nil
            self.sharded = nil
            self.route = nil
            self.unusableReason = reason
            return
        }
        do {
            let url = try RedisURL(parsing: text).applyingTLSSettings(tls)
            url.warnIfTLSVerificationRelaxed(logger)
            let configuration = RedisPublisherConfiguration(
                channel: channel,
                connectTimeout: min(emitTimeout, .seconds(2)),
                replyTimeout: max(emitTimeout, .seconds(5)),
                outboxCapacity: outboxCapacity
            )
            let publisher = RedisPublisher(url: url, configuration: configuration, logger: logger)
            self.publisher = publisher
            let sharded = SocketIOPubSubChannel.shardedRoomChannels(
                url: url,
                mode: mode,
                publishTimeout: emitTimeout,
                outboxCapacity: configuration.outboxCapacity,
                outboxSubscriberWait: configuration.outboxSubscriberWait,
                subscriberConfiguration: RedisSubscriberConfiguration(connectTimeout: min(emitTimeout, .seconds(2))),
                logger: logger
            )
            self.sharded = sharded
            self.route = PubSubPublishRoute(
                layout: PubSubChannelLayout(channel: channel, mode: mode),
                publisher: publisher,
                sharded: sharded,
                writer: writer
            )
            self.unusableReason = nil
        } catch {
            self.publisher = nil
            self.sharded = nil
            self.route = nil
            self.unusableReason = error.description
        }
    }

    /// Creates a gateway from `REDIS_URL`, `SOCKET_REDIS_CHANNEL` (default `socketio`),
    /// `SOCKET_REDIS_SIGNING_SECRET` (unset: messages are not signed), `SOCKET_REDIS_MODE` (`python`, the
    /// default, or `rooms`; another value leaves the gateway unusable, every emit failing with the reason) and the
    /// TLS settings `SOCKET_REDIS_TLS_CA`, `…_CERT`, `…_KEY`, `…_SERVER_NAME` (``RedisTLSConfiguration``).
    /// - Parameters:
    ///   - environment: The variables to read; `nil` reads the process environment.
    ///   - logger: Where problems are logged.
    public convenience init(environment: [String: String]? = nil, logger: Logger) {
        func read(_ name: String) -> String? {
            if let environment { return environment[name] }
            return getenv(name).map { String(cString: $0) }
        }
        let channel = read("SOCKET_REDIS_CHANNEL")?.trimmingSpaces
        let secret = read("SOCKET_REDIS_SIGNING_SECRET")
        var mode = RedisChannelMode.python
        var modeError: String?
        if let text = read("SOCKET_REDIS_MODE"), !text.trimmingSpaces.isEmpty {
            do {
                mode = try RedisChannelMode(parsing: text)
            } catch {
                modeError = "SOCKET_REDIS_MODE: \(error.message)"
            }
        }
        let tls = RedisTLSConfiguration(environment: environment)
        self.init(
            redisURL: read("REDIS_URL"),
            channel: channel.flatMap { $0.isEmpty ? nil : $0 } ?? "socketio",
            mode: mode,
            signingSecret: secret.flatMap { $0.isEmpty ? nil : $0 },
            tls: tls,
            logger: logger,
            configurationError: modeError
        )
    }

    /// Whether the gateway has a usable Redis URL.
    public var isConfigured: Bool { self.publisher != nil }

    /// Connection state and outbox drops, when configured.
    public var status: RedisPublisherStatus? { self.publisher?.currentStatus }

    /// Publishes `event` for the servers to deliver to `target`; never throws (see ``SocketEmitter``).
    @discardableResult
    public func emit(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions
    ) async
        -> EmitResult
    {
        await self.send(
            .emit(event, arguments: arguments, to: target, options: options, hostID: self.hostID),
            event: event
        )
    }

    /// Asks the servers to put client `sid` into `room`.
    @discardableResult
    public func joinRoom(_ sid: String, room: String, namespace: String) async -> EmitResult {
        await self.send(.enterRoom(sid: sid, room: room, namespace: namespace, hostID: self.hostID))
    }

    /// Asks the servers to take client `sid` out of `room`.
    @discardableResult
    public func leaveRoom(_ sid: String, room: String, namespace: String) async -> EmitResult {
        await self.send(.leaveRoom(sid: sid, room: room, namespace: namespace, hostID: self.hostID))
    }

    /// Asks the servers to remove every client from `room`.
    @discardableResult
    public func closeRoom(_ room: String, namespace: String) async -> EmitResult {
        await self.send(.closeRoom(room: room, namespace: namespace, hostID: self.hostID))
    }

    /// Asks the servers to disconnect client `sid` from `namespace`.
    @discardableResult
    public func disconnect(_ sid: String, namespace: String) async -> EmitResult {
        await self.send(.disconnect(sid: sid, namespace: namespace, hostID: self.hostID))
    }

    /// Emits `event` without waiting: the message is encoded now and handed to the publisher's pipeline, which
    /// sends everything handed to it since its last write in one write.
    ///
    /// For workers that emit at high rates. It never throws; `completion`, if given, is called exactly once, on
    /// the publisher's event loop, with what became of the emit (at most `emitTimeout` later: `.queued` or
    /// `.failed` as for the awaiting `emit`); keep it short. Emits from one thread are published in call order.
    /// With Redis unreachable they go to the outbox as awaited emits do.
    public func emit(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions = EmitOptions(),
        completion: (@Sendable (EmitResult) -> Void)?
    ) {
        self.send(
            .emit(event, arguments: arguments, to: target, options: options, hostID: self.hostID),
            event: event,
            completion: completion
        )
    }

    /// Publishes an already-built pub/sub message (for tools that relay messages as they are).
    @discardableResult
    package func publish(_ message: PubSubMessage) async -> EmitResult {
        var event: String?
        if case .emit(let emit) = message { event = emit.event }
        return await self.send(message, event: event)
    }

    /// Runs until graceful shutdown, then sends what the outbox holds (at most ``shutdownTimeout``) and closes the
    /// connection; when the task is cancelled instead, closes at once (what is unsent is failed and logged).
    /// Emits made after it returned fail.
    public func run() async throws {
        let cancelled: Bool
        do {
            try await gracefulShutdown()
            cancelled = false
        } catch {
            cancelled = true
        }
        await self.shutdown(timeout: cancelled ? .zero : self.shutdownTimeout)
    }

    /// Sends what the outbox holds (and, for room channels on a Redis Cluster, what the primaries' outboxes hold),
    /// waiting at most `timeout`, then closes the connections (and stops the publisher's timer). Emits made
    /// afterwards fail. Call it before exiting when the gateway is not run in a `ServiceGroup` (``run()`` calls it).
    /// - Returns: How many messages could not be sent (they are dropped and logged).
    @discardableResult
    public func shutdown(timeout: Duration = .seconds(5)) async -> Int {
        guard let publisher = self.publisher else { return 0 }
        // Room channels on a Redis Cluster have outboxes of their own: drained at the same time, within the bound.
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        async let sharded: Int? = self.sharded?.shutdown(deadline: deadline)
        let unsent = await publisher.shutdown(deadline: deadline)
        return await unsent + (sharded ?? 0)
    }

    deinit {
        // Released without shutdown(): send what is queued for at most emitTimeout, then close, so neither the
        // connection nor the publisher's timer outlives the gateway. (After shutdown() this does nothing.)
        self.publisher?.beginShutdown(deadline: .now() + self.emitTimeoutAmount)
        self.sharded?.beginShutdown(deadline: .now() + self.emitTimeoutAmount)
    }

    private func send(_ message: PubSubMessage, event: String? = nil) async -> EmitResult {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<EmitResult, Never>) in
            self.send(message, event: event) { continuation.resume(returning: $0) }
        }
    }

    /// Hands `message` to the publisher; `completion` (if any) gets the result once, at most `emitTimeout` later.
    ///
    /// The message is encoded into a buffer the calling thread reuses and copied once into the publisher's
    /// outgoing bytes; per emit this allocates only the closure that carries `completion` (nothing for
    /// fire-and-forget) and takes one lock. The publisher times the emit out itself (no timer per emit).
    /// - Parameter event: The event name of an emit (named in the log when it fails).
    private func send(
        _ message: PubSubMessage,
        event: String?,
        completion: (@Sendable (EmitResult) -> Void)?
    ) {
        guard let route = self.route else {
            let result = self.count(self.unconfiguredResult())
            completion?(result)
            return
        }
        guard let completion else {
            // Fire and forget: no waiter, no timer; the outcome is only counted (and logged when failed).
            route.publish(message, completion: self.recordProgress)
            return
        }
        let method = message.method
        route.publish(message, deadline: .now() + self.emitTimeoutAmount) { outcome in
            completion(self.result(of: outcome, what: event.map { "emit \($0)" } ?? method))
        }
    }

    /// The result of a timed publish (counted; failures logged).
    private func result(of outcome: PublishOutcome, what: @autoclosure () -> String) -> EmitResult {
        if case .progress(.failed(let error)) = outcome {
            self.logger.warning("\(what()) not published", metadata: ["error": "\(error)"])
        }
        let outboxOn = (self.publisher?.configuration.outboxCapacity ?? 0) > 0
        return self.count(EmitResult(outcome, timeout: self.emitTimeout, outboxOn: outboxOn))
    }

    private func unconfiguredResult() -> EmitResult {
        let first = self.warnedOnce.withLockedValue { warned -> Bool in
            defer { warned = true }
            return !warned
        }
        if let reason = self.unusableReason {
            if first {
                self.logger.error(
                    "worker gateway cannot emit: its Redis configuration is unusable",
                    metadata: ["error": "\(reason)"]
                )
            }
            return EmitResult(outcome: .failed, reason: reason)
        }
        if first {
            self.logger.warning("worker gateway has no Redis URL (set REDIS_URL); emits are not sent anywhere")
        }
        return EmitResult(outcome: .notConfigured, reason: "no Redis URL configured")
    }

    private func count(_ result: EmitResult) -> EmitResult {
        switch result.outcome {
        case .published: self.publishedCounter.increment()
        case .queued: self.queuedCounter.increment()
        case .failed: self.failedCounter.increment()
        case .notConfigured: self.notConfiguredCounter.increment()
        case .delivered: break
        }
        return result
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
