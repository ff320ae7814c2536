import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayEngineIO
import SocketGatewayRedis

/// The clustered mode: every gateway operation is applied locally, then published on python-socketio's Redis
/// channel; what the other servers and workers publish is applied to this server's clients.
///
/// Remote messages are applied in arrival order, without waiting, from the subscriber's event loop: each one
/// goes to the `ShardInbox` of every event loop it concerns (one `execute` per burst per loop), so emits and room
/// changes keep their order per loop and a message costs no task or continuation. An emit is read up to its
/// target only: when ``LocalRoomPresence`` says no shard has a member of its rooms (or namespace), it is
/// counted and dropped right there, its arguments never decoded and no other thread woken; otherwise it goes
/// to the shards with members, its arguments copied into the packet as published. They follow python-socketio's
/// `AsyncPubSubManager`: `emit` (room null / string / list, `skip_sid` null / string / list, binary,
/// `callback`), `enter_room` / `leave_room` / `disconnect` for clients connected here, `close_room`, and
/// `callback` messages addressed to this host. Every `skip_sid` entry is treated as a room (a sid is a room),
/// so a gateway's `excluding` rooms travel in `skip_sid`; python-socketio servers skip only matching sids.
final class RedisClusterAdapter: ClusterAdapter {
    let channel: SocketIOPubSubChannel
    let configuration: SocketServerRedisConfiguration
    /// The check applied to other hosts' emits before delivery; `nil` delivers them unchecked.
    let inboundValidation: InboundEventValidation?
    private let logger: Logger
    /// What the subscriber's callback calls: set by `start(gateway:)`, cleared by `shutdown()`.
    private let router: MessageRouter
    private let state: NIOLockedValueBox<State>
    private let remoteAckRefusedWarning = RateLimitedWarning()
    /// Remote emits dropped on arrival for want of a local member (see ``ClusterHealth/skippedNotLocal``).
    private let skippedNotLocal = NIOLockedValueBox(0)
    /// Cluster-wide requests (fetch sockets and the others) on channels of our own: see ``RedisClusterRequests``.
    let requests: RedisClusterRequests

    private struct State {
        var gateway: SocketGateway?
        var inboxes: [ShardInbox] = []
        var nextAckID: Int64 = 1
        var waiters: [Int64: CheckedContinuation<[JSONValue], any Error>] = [:]
        var inboundRejected = 0
        var rejectionLog: LogRateLimiter
        var pendingRemoteAcks = 0
        var remoteAcksRefused = 0
    }

    /// Creates the adapter; nothing connects until `start(gateway:)`. Its timings are `configuration.timings`.
    /// - Throws: `RedisError` when the URL cannot be parsed or its TLS settings cannot be used.
    init(
        configuration: SocketServerRedisConfiguration,
        inboundValidation: InboundEventValidation? = nil,
        signingKey: PubSubSigningKey? = nil,
        logger: Logger
    ) throws(RedisError) {
        let url = try RedisURL(parsing: configuration.url).applyingTLSSettings(configuration.tls)
        url.warnIfTLSVerificationRelaxed(logger)
        self.configuration = configuration
        self.inboundValidation = inboundValidation
        self.state = NIOLockedValueBox(
            State(rejectionLog: LogRateLimiter(interval: inboundValidation?.logInterval ?? .seconds(10)))
        )
        let router = MessageRouter()
        self.router = router
        // By default, reconnect quickly: deliveries resume within about a second of Redis coming back.
        let timings = configuration.timings
        let backoff = ReconnectBackoff(initial: timings.reconnectDelay, maximum: timings.maxReconnectDelay)
        let publisherConfiguration = RedisPublisherConfiguration(
            channel: configuration.channel,
            connectTimeout: timings.connectTimeout,
            replyTimeout: timings.replyTimeout,
            outboxCapacity: configuration.outboxCapacity,
            backoff: backoff
        )
        let subscriberConfiguration = RedisSubscriberConfiguration(
            connectTimeout: timings.connectTimeout,
            backoff: backoff,
            pingInterval: timings.livenessInterval,
            pingTimeout: timings.livenessTimeout,
            roomUnsubscribeDelay: configuration.roomUnsubscribeDelay,
            readCoalescing: configuration.readCoalescing
        )
        var logger = logger
        let hostID = PubSubHostID.generate()
        logger[metadataKey: "socketgateway.host_id"] = "\(hostID)"
        self.logger = logger
        var isRedisCluster = false
        if case .cluster = url.endpoint { isRedisCluster = true }
        let requests = RedisClusterRequests(
            channel: configuration.channel,
            hostID: hostID,
            countsReceivers: !isRedisCluster,
            limits: RedisClusterRequests.Limits(configuration.requestLimits),
            logger: logger
        )
        self.requests = requests
        self.channel = SocketIOPubSubChannel(
            url: url,
            channel: configuration.channel,
            mode: configuration.mode,
            hostID: hostID,
            publisherConfiguration: publisherConfiguration,
            subscriberConfiguration: subscriberConfiguration,
            logger: logger,
            signingKey: signingKey,
            ownChannels: requests.channels,
            onOwnMessage: { requests.received($0) },
            onEmit: { target, read in router.route(target, read: read) },
            onMessage: { message in router.route(message) }
        )
        requests.attach(self.channel)
    }

    var modeDescription: String {
        "clustered through Redis \(self.channel.subscriber.url.redacted), channel '\(self.channel.channel)', host_id \(self.channel.hostID)"
            + (self.configuration.mode == .rooms ? ", room channels" : "")
            + (self.channel.sharded != nil ? " (sharded: SPUBLISH/SSUBSCRIBE)" : "")
            + (self.inboundValidation.map { $0.policy == .drop ? ", strict" : ", log-only" } ?? "")
            + (self.inboundValidation == nil ? "" : " inbound validation")
            + (self.channel.isSigning ? ", signed messages" : "")
    }

    var health: ClusterHealth {
        let subscriber = self.channel.health
        let publisher = self.channel.publisher.currentStatus
        return ClusterHealth(
            mode: .redis(channel: self.channel.channel),
            hostID: self.channel.hostID,
            redisConnected: subscriber.connected,
            lastMessageAge: subscriber.lastMessageAge,
            reconnects: subscriber.reconnects,
            lastError: subscriber.lastError,
            lastDisconnect: subscriber.lastDisconnect,
            publisherConnected: publisher.connected,
            droppedFromOutbox: publisher.droppedFromOutbox,
            inboundRejected: self.state.withLockedValue { $0.inboundRejected },
            undecodable: self.channel.undecodableMessages,
            unverified: self.channel.unverifiedMessages,
            readingPaused: subscriber.readingPaused,
            readingPauses: subscriber.pauses,
            channelMode: self.configuration.mode.rawValue,
            roomChannels: subscriber.roomChannels,
            skippedNotLocal: self.skippedNotLocal.withLockedValue { $0 },
            sharded: self.channel.sharded.map { ClusterHealth.Sharded($0.currentHealth) },
            clusterRequests: self.requests.health
        )
    }

    func start(gateway: SocketGateway) {
        let metrics = gateway.metrics
        let subscriber = self.channel.subscriber
        let backpressure = InboxBackpressure(
            maxQueuedOperations: self.configuration.maxQueuedMessagesPerLoop,
            maxQueuedBytes: self.configuration.maxQueuedBytesPerLoop
        ) { backpressure in
            subscriber.updateReading { backpressure.isBehind }
        }
        let inboxes = gateway.shards.all.map { shard in
            ShardInbox(shard: shard, backpressure: backpressure) { metrics.deliveries.increment(by: Int64($0)) }
        }
        var byLoop: [ObjectIdentifier: ShardInbox] = [:]
        for inbox in inboxes { byLoop[ObjectIdentifier(inbox.shard.eventLoop)] = inbox }
        self.state.withLockedValue {
            $0.gateway = gateway
            $0.inboxes = inboxes
        }
        let byLoopFinal = byLoop
        self.router.set(
            MessageRouter.Routes(
                message: { message in self.route(message, gateway: gateway, inboxes: inboxes, byLoop: byLoopFinal) },
                emit: { target, read in
                    // The one look at the presence index for this message; read on only when someone is here.
                    guard let shards = self.addressedShards(target.namespace, target.room, gateway: gateway),
                        let emit = read()
                    else { return }
                    self.route(emit, to: shards, gateway: gateway, inboxes: inboxes)
                }
            )
        )
        if self.configuration.mode == .rooms {
            self.startRoomChannels(gateway.shards)
        }
        self.requests.start(gateway: gateway)
        self.channel.start()
    }

    /// Room channels: a room's channel is subscribed while the room has members here (the presence index says
    /// when that changes), and joins wait (bounded) until it is active. Rooms that may be session ids have no
    /// channel (publishers send emits to them on the common channel).
    private func startRoomChannels(_ shards: RoomShards) {
        let presence = shards.presence
        let channel = self.channel
        presence.setObserver { namespace, room in
            guard !PubSubChannelLayout.mayBeSessionID(room) else { return }
            channel.updateRoom(namespace: namespace, room: room) {
                presence.hasMembers(namespace: namespace, room: room)
            }
        }
        let timeout = self.configuration.roomSubscribeTimeout
        shards.joinGate = RoomJoinGate { namespace, room, completion in
            guard !PubSubChannelLayout.mayBeSessionID(room) else {
                completion(true)
                return
            }
            channel.whenRoomActive(
                namespace: namespace,
                room: room,
                wanted: { presence.hasMembers(namespace: namespace, room: room) },
                timeout: timeout,
                completion
            )
        }
    }

    func shutdown() async {
        self.requests.shutdown()
        await self.channel.shutdown(drainTimeout: self.configuration.publishTimeout)
        self.router.set(nil)
        let (inboxes, waiters, gateway) = self.state.withLockedValue { state in
            let result = (state.inboxes, state.waiters, state.gateway)
            state.inboxes = []
            state.gateway = nil
            state.waiters = [:]
            return result
        }
        for (_, waiter) in waiters {
            waiter.resume(throwing: CancellationError())
        }
        if self.configuration.mode == .rooms, let shards = gateway?.shards {
            shards.presence.setObserver(nil)
            shards.joinGate = nil
        }
        // Everything the subscriber handed over before it stopped is applied before the loops can stop.
        for inbox in inboxes {
            await inbox.flush()
        }
    }

    // MARK: Publishing this server's operations

    func emitted(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions,
        local: EmitResult
    ) async -> EmitResult {
        let message = PubSubMessage.emit(
            event,
            arguments: arguments,
            to: target,
            options: options,
            hostID: self.channel.hostID
        )
        return await self.publish(message, localDeliveries: local.localDeliveries, what: "emit \(event)")
    }

    func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult {
        let hostID = self.channel.hostID
        let message: PubSubMessage
        switch operation {
        case .joinRoom(let sid, let room, let namespace):
            // As python-socketio: a client connected here is handled here; otherwise ask the others.
            if localMatches > 0 { return EmitResult(outcome: .delivered, localDeliveries: localMatches) }
            message = .enterRoom(sid: sid, room: room, namespace: namespace, hostID: hostID)
        case .leaveRoom(let sid, let room, let namespace):
            if localMatches > 0 { return EmitResult(outcome: .delivered, localDeliveries: localMatches) }
            message = .leaveRoom(sid: sid, room: room, namespace: namespace, hostID: hostID)
        case .disconnect(let sid, let namespace):
            if localMatches > 0 { return EmitResult(outcome: .delivered, localDeliveries: localMatches) }
            message = .disconnect(sid: sid, namespace: namespace, hostID: hostID)
        case .closeRoom(let room, let namespace):
            message = .closeRoom(room: room, namespace: namespace, hostID: hostID)
        }
        return await self.publish(message, localDeliveries: localMatches, what: message.method)
    }

    func emitWithAck(
        _ event: String,
        arguments: [JSONValue],
        sid: String,
        namespace: String,
        timeout: Duration
    ) async throws -> [JSONValue]? {
        let id = self.state.withLockedValue { state -> Int64 in
            defer { state.nextAckID &+= 1 }
            return state.nextAckID
        }
        let message = PubSubMessage.emit(
            PubSubEmit(
                event: event,
                arguments: arguments,
                namespace: namespace,
                room: .one(sid),
                callback: PubSubCallback(room: .one(sid), namespace: namespace, id: id),
                hostID: self.channel.hostID
            )
        )
        let eventLoop = self.channel.publisher.eventLoop
        // Cancelled (e.g. a handler cancelled at the end of shutdown's grace period): stop waiting at once.
        return try await withTaskCancellationHandler {
            try await self.awaitRemoteAck(
                id: id,
                message: message,
                event: event,
                sid: sid,
                namespace: namespace,
                timeout: timeout,
                eventLoop: eventLoop
            )
        } onCancel: {
            self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

    private func awaitRemoteAck(
        id: Int64,
        message: PubSubMessage,
        event: String,
        sid: String,
        namespace: String,
        timeout: Duration,
        eventLoop: any EventLoop
    ) async throws -> [JSONValue] {
        try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<[JSONValue], any Error>) in
            self.state.withLockedValue { $0.waiters[id] = continuation }
            // Cancelled before the waiter was stored: the cancellation handler found nothing to resume.
            if Task.isCancelled, let waiter = self.state.withLockedValue({ $0.waiters.removeValue(forKey: id) }) {
                waiter.resume(throwing: CancellationError())
                return
            }
            eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(throwing: SocketAckError(code: .timeout, event: event, sid: sid, namespace: namespace))
            }
            self.channel.publish(message) { progress in
                if case .failed(let error) = progress {
                    self.logger.warning("emit with ack not published", metadata: ["error": "\(error)"])
                    let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
                    waiter?.resume(
                        throwing: SocketAckError(code: .notConnected, event: event, sid: sid, namespace: namespace)
                    )
                }
            }
        }
    }

    /// Publishes `message`, waiting at most `publishTimeout` (the publisher times it out).
    /// Publishes `message` for the other servers; `what` names it in the warning when it fails (built only then, not
    /// on every emit).
    private func publish(
        _ message: PubSubMessage,
        localDeliveries: Int,
        what: @autoclosure () -> String
    ) async -> EmitResult {
        let timeout = self.configuration.publishTimeout
        let outcome = await withUnsafeContinuation { (continuation: UnsafeContinuation<PublishOutcome, Never>) in
            self.channel.publish(message, deadline: .now() + TimeAmount(timeout)) { continuation.resume(returning: $0) }
        }
        if case .progress(.failed(let error)) = outcome {
            self.logger.warning("\(what()) not published to the cluster", metadata: ["error": "\(error)"])
        }
        return EmitResult(
            outcome,
            timeout: timeout,
            outboxOn: self.configuration.outboxCapacity > 0,
            localDeliveries: localDeliveries
        )
    }

    func request(_ query: ClusterQuery, timeout: Duration) async throws -> ClusterReplies<JSONValue> {
        try await self.requests.request(query, timeout: timeout)
    }

    // MARK: Applying the other hosts' messages

    /// Hands one message from another host to the shards it concerns; called on the subscriber's loop, in
    /// arrival order, and never waits.
    private func route(
        _ received: PubSubReceived,
        gateway: SocketGateway,
        inboxes: [ShardInbox],
        byLoop: [ObjectIdentifier: ShardInbox]
    ) {
        switch received {
        case .emit(let emit):
            self.route(emit, gateway: gateway, inboxes: inboxes)
        case .message(.emit):
            // Not reached: `PubSubMessage.read` hands every emit over as `PubSubReceived.emit`.
            assertionFailure("an emit read as PubSubReceived.message")
        case .message(.enterRoom(let sid, let room, let namespace, _)):
            if let connection = gateway.shards.connection(sid: sid, namespace: namespace),
                let inbox = byLoop[ObjectIdentifier(connection.eventLoop)]
            {
                // Held until the join is applied: an emit to the room read after this reaches the shard.
                gateway.shards.presence.add(namespace: namespace, room: room, shard: inbox.shard.index)
                inbox.append(.join(connection, room: room))
            }
        case .message(.leaveRoom(let sid, let room, let namespace, _)):
            if let connection = gateway.shards.connection(sid: sid, namespace: namespace) {
                byLoop[ObjectIdentifier(connection.eventLoop)]?.append(.leave(connection, room: room))
            }
        case .message(.disconnect(let sid, let namespace, _)):
            if let connection = gateway.shards.connection(sid: sid, namespace: namespace) {
                byLoop[ObjectIdentifier(connection.eventLoop)]?.append(.disconnect(connection))
            }
        case .message(.closeRoom(let room, let namespace, _)):
            gateway.shards.presence.shards(namespace: namespace, rooms: [room]).forEach { shard in
                inboxes[shard].append(.closeRoom(room, namespace: namespace))
            }
        case .message(.callback(_, let sid, let namespace, let id, let arguments)):
            let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            guard let waiter else {
                self.logger.debug(
                    "callback for an unknown or expired ack",
                    metadata: ["sid": "\(sid)", "namespace": "\(namespace)", "id": "\(id)"]
                )
                return
            }
            waiter.resume(returning: arguments)
        }
    }

    /// Hands another host's emit to the shards with members of its rooms (or namespace), or drops it here when
    /// there are none: without waking another thread. (Emits whose target was scanned are dropped before their
    /// arguments are read, and come to ``route(_:to:gateway:inboxes:)`` with their shards.)
    private func route(_ emit: PubSubReceivedEmit, gateway: SocketGateway, inboxes: [ShardInbox]) {
        guard let shards = self.addressedShards(emit.namespace, emit.room, gateway: gateway) else { return }
        self.route(emit, to: shards, gateway: gateway, inboxes: inboxes)
    }

    /// The shards with members of another host's emit's rooms (or namespace); `nil`, the emit counted as skipped,
    /// when there are none.
    private func addressedShards(_ namespace: String, _ room: PubSubNames, gateway: SocketGateway) -> ShardSet? {
        let shards = gateway.shards.presence.shards(namespace: namespace, addressed: room)
        guard shards.isEmpty else { return shards }
        self.countSkipped(gateway.metrics)
        return nil
    }

    /// Hands another host's emit to `shards`, those with members of its rooms (or namespace) when its target was
    /// read: its arguments copied into the packet as published where they can be.
    private func route(_ emit: PubSubReceivedEmit, to shards: ShardSet, gateway: SocketGateway, inboxes: [ShardInbox]) {
        let rooms: [String]? = emit.room == .none ? nil : emit.room.names
        var arguments: [JSONValue]?
        do {
            if let validation = self.inboundValidation {
                let decoded = try emit.decodedArguments()
                guard self.admits(emit, arguments: decoded, validation, metrics: gateway.metrics) else { return }
                arguments = decoded
            }
            let excluding = Set(emit.skipSid.names)
            if let callback = emit.callback {
                let decoded: [JSONValue]
                if let arguments {
                    decoded = arguments
                } else {
                    decoded = try emit.decodedArguments()
                }
                self.deliverWithCallback(
                    emit,
                    arguments: decoded,
                    callback: callback,
                    rooms: rooms,
                    excluding: excluding,
                    inboxes: shards.sorted.map { inboxes[$0] },
                    tasks: gateway.tasks
                )
            } else if let recovery = gateway.shards.recovery {
                // Connection state recovery: logged with an offset like a local emit (so decoded, not copied),
                // and delivered skipping connections whose recovery replayed it already.
                let decoded = try arguments ?? emit.decodedArguments()
                let (packet, counter) = recovery.logEvent(
                    emit.event,
                    arguments: decoded,
                    namespace: emit.namespace,
                    rooms: rooms,
                    excluding: excluding
                )
                let namespace = emit.namespace
                shards.forEach { shard in
                    inboxes[shard].append(
                        .run { roomShard in
                            _ = roomShard.deliver(packet, namespace: namespace, rooms: rooms, excluding: excluding) {
                                $0.replayedThrough < counter
                            }
                        }
                    )
                }
            } else {
                let packet = try SocketIOWire.event(emit, decodedArguments: arguments)
                shards.forEach { shard in
                    inboxes[shard].append(
                        .deliver(packet, namespace: emit.namespace, rooms: rooms, excluding: excluding)
                    )
                }
            }
        } catch {
            // Checked when read: not reached for messages from `PubSubMessage.read`.
            self.logger.warning("skipped a remote emit whose arguments cannot be read", metadata: ["error": "\(error)"])
        }
    }

    private func countSkipped(_ metrics: SocketServerMetrics) {
        metrics.remoteEmitsSkipped.increment()
        self.skippedNotLocal.withLockedValue { $0 += 1 }
    }

    /// Checks another host's emit against `validation`: a mismatch is counted, logged (rate-limited) and, in
    /// strict mode, dropped. Returns whether to deliver it.
    private func admits(
        _ emit: PubSubReceivedEmit,
        arguments: [JSONValue],
        _ validation: InboundEventValidation,
        metrics: SocketServerMetrics
    ) -> Bool {
        guard
            let rejection = validation.validator.rejection(
                event: emit.event,
                namespace: emit.namespace,
                arguments: arguments
            )
        else { return true }
        metrics.inboundRejected(reason: rejection.reason, event: emit.event)
        let suppressed = self.state.withLockedValue { state -> Int? in
            state.inboundRejected += 1
            return state.rejectionLog.admit(at: .now)
        }
        if let suppressed {
            self.logger.warning(
                validation.policy == .drop
                    ? "dropped a remote event that does not match the catalog"
                    : "delivered a remote event that does not match the catalog (log-only)",
                metadata: [
                    "event": "\(emit.event)",
                    "namespace": "\(emit.namespace)",
                    "origin_host_id": "\(emit.hostID)",
                    "reason": "\(rejection.reason.rawValue)",
                    "problem": "\(rejection.message)",
                    "suppressed_since_last_log": "\(suppressed)",
                ]
            )
        }
        return validation.policy == .logOnly
    }

    /// A remote server emitted with a callback: each recipient here gets the event with an ack id, and its ack
    /// is published back to the emitting host as a `callback` message (python-socketio's `_return_callback`).
    private func deliverWithCallback(
        _ emit: PubSubReceivedEmit,
        arguments: [JSONValue],
        callback: PubSubCallback,
        rooms: [String]?,
        excluding: Set<String>,
        inboxes: [ShardInbox],
        tasks: ServerTaskPool
    ) {
        let callbackSid = callback.room.names.first ?? ""
        let timeout = self.configuration.timings.remoteAckTimeout
        let limit = self.configuration.maxPendingRemoteAcks
        for inbox in inboxes {
            inbox.append(
                .run { shard in
                    let recipients = shard.recipients(namespace: emit.namespace, rooms: rooms, excluding: excluding)
                    for connection in recipients {
                        // Every awaited ack holds a task for up to `timings.remoteAckTimeout`: a publisher that
                        // asks every client for one in a loop must not grow them without bound.
                        let admitted = self.state.withLockedValue { state -> Bool in
                            guard state.pendingRemoteAcks < limit else {
                                state.remoteAcksRefused += 1
                                return false
                            }
                            state.pendingRemoteAcks += 1
                            return true
                        }
                        guard admitted else {
                            connection.emit(emit.event, arguments: arguments)
                            self.logRemoteAckRefused(limit: limit)
                            continue
                        }
                        // A child of the server's run(): cancelled (the ack is not awaited) when shutdown's
                        // grace period ends.
                        let submitted = tasks.submit {
                            defer { self.state.withLockedValue { $0.pendingRemoteAcks -= 1 } }
                            do {
                                let answer = try await connection.emitWithAck(
                                    emit.event,
                                    arguments: arguments,
                                    timeout: timeout
                                )
                                self.channel.publish(
                                    .callback(
                                        hostID: emit.hostID,
                                        sid: callbackSid,
                                        namespace: callback.namespace,
                                        id: callback.id,
                                        arguments: answer
                                    ),
                                    completion: nil
                                )
                            } catch {
                                self.logger.debug("no ack for a remote emit", metadata: ["error": "\(error)"])
                            }
                        }
                        if !submitted {
                            // Shutting down: the client still gets the event, without an ack asked for.
                            self.state.withLockedValue {
                                $0.pendingRemoteAcks -= 1
                                $0.remoteAcksRefused += 1
                            }
                            connection.emit(emit.event, arguments: arguments)
                            self.logger.debug("delivered a remote emit without its ack: the server is shutting down")
                        }
                    }
                }
            )
        }
    }

    private func logRemoteAckRefused(limit: Int) {
        self.remoteAckRefusedWarning.log(
            self.logger,
            "delivered a remote emit without its ack: too many remote acks pending",
            metadata: [
                "max_pending_remote_acks": "\(limit)",
                "refused_total": "\(self.state.withLockedValue { $0.remoteAcksRefused })",
            ]
        )
    }

    /// Acks for remote emits awaited now, and those refused since start (for tests and health).
    var remoteAcks: (pending: Int, refused: Int) {
        self.state.withLockedValue { ($0.pendingRemoteAcks, $0.remoteAcksRefused) }
    }
}

/// The subscriber callbacks' targets, set once the gateway exists: one reference read under one lock per message.
/// (Plain stored closures: keeping them in a generic box read through `inout` would wrap them in one more
/// reabstraction thunk on every read.)
private final class MessageRouter: @unchecked Sendable {
    /// What a started adapter does with each message.
    final class Routes: Sendable {
        /// A message read whole (any method, and emits whose target could not be scanned).
        let message: @Sendable (PubSubReceived) -> Void
        /// An emit from another host by its scanned target, with the reader of the rest (see
        /// ``SocketIOPubSubChannel``'s `onEmit`).
        let emit: @Sendable (PubSubEmitTarget, _ read: () -> PubSubReceivedEmit?) -> Void

        init(
            message: @escaping @Sendable (PubSubReceived) -> Void,
            emit: @escaping @Sendable (PubSubEmitTarget, _ read: () -> PubSubReceivedEmit?) -> Void
        ) {
            self.message = message
            self.emit = emit
        }
    }

    private let lock = NIOLock()
    /// Guarded by `lock`.
    private var routes: Routes?

    func set(_ routes: Routes?) {
        self.lock.withLock { self.routes = routes }
    }

    func route(_ message: PubSubReceived) {
        let routes = self.lock.withLock { self.routes }
        routes?.message(message)
    }

    /// An emit by its target: dropped unread before start (nobody is here yet).
    func route(_ target: PubSubEmitTarget, read: () -> PubSubReceivedEmit?) {
        let routes = self.lock.withLock { self.routes }
        routes?.emit(target, read)
    }
}
