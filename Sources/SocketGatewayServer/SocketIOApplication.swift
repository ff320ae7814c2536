import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayEngineIO

/// The per-client bounds of the Socket.IO layer (see the `Hardening limits` of `SocketServerConfiguration`).
struct SocketIOLimits: Sendable, Hashable {
    /// Events that may wait for one connection's handlers.
    var maxQueuedEvents: Int
    /// Bytes of events that may wait for one connection's handlers.
    var maxQueuedEventBytes: Int
    /// What the session state machine bounds.
    var session: SocketIOSessionStateMachine.Limits

    /// The limits of `configuration`.
    init(_ configuration: SocketServerConfiguration) {
        self.maxQueuedEvents = configuration.maxQueuedEventsPerConnection
        self.maxQueuedEventBytes = configuration.maxQueuedEventBytesPerConnection
        self.session = SocketIOSessionStateMachine.Limits(
            maxPendingClientAcks: configuration.maxPendingAcksPerConnection,
            eventRate: configuration.eventRateLimit,
            maxRefusedConnects: configuration.maxRefusedConnectsPerSession
        )
    }
}

/// The Socket.IO layer on top of Engine.IO: one `SocketIOClient` per Engine.IO session.
final class SocketIOApplication: EngineIOApplication, Sendable {
    let registry: NamespaceRegistry
    let connectTimeout: TimeAmount
    let limits: SocketIOLimits
    let shards: RoomShards
    let metrics: SocketServerMetrics
    /// Where handler loops and authentications run: owned by the server's `run()`.
    let tasks: ServerTaskPool
    let logger: Logger
    /// One limiter per kind of client fault, so a flood of one kind neither floods the log nor hides the others.
    private let warningLog = NIOLockedValueBox<[SocketIOSessionError.Code: LogRateLimiter]>([:])
    /// The shortest time between two warnings of one kind.
    static let warningInterval: Duration = .seconds(10)

    init(
        registry: NamespaceRegistry,
        connectTimeout: Duration,
        limits: SocketIOLimits,
        shards: RoomShards,
        metrics: SocketServerMetrics,
        tasks: ServerTaskPool,
        logger: Logger
    ) {
        self.tasks = tasks
        self.registry = registry
        self.connectTimeout = TimeAmount(connectTimeout)
        self.limits = limits
        self.shards = shards
        self.metrics = metrics
        self.logger = logger
    }

    private let roomChannelWarning = RateLimitedWarning()
    /// Middlewares that threw something else than a refusal (the client was refused with a generic message).
    let middlewareErrorWarning = RateLimitedWarning(interval: SocketIOApplication.warningInterval)
    /// Client events that typed handlers refused (their payloads did not match the catalog).
    let clientEventRefusedWarning = RateLimitedWarning(interval: SocketIOApplication.warningInterval)

    /// A connect went ahead without Redis confirming its user room's channel in time (room-channel mode).
    func logRoomChannelNotConfirmed(namespace: String, room: String) {
        self.roomChannelWarning.log(
            self.logger,
            "room channel not confirmed by Redis in time; connected anyway (emits to it may be missed meanwhile)",
            metadata: ["namespace": "\(LogSafe.text(namespace))", "room": "\(LogSafe.text(room))"]
        )
    }

    /// Whether to log a warning about a client closed for `code` now; when so, how many were suppressed since.
    func admitWarning(_ code: SocketIOSessionError.Code) -> Int? {
        let now = ContinuousClock.now
        return self.warningLog.withLockedValue { limiters in
            limiters[code, default: LogRateLimiter(interval: Self.warningInterval)].admit(at: now)
        }
    }

    /// A session is established when a namespace accepts the client (until then it counts as pending).
    var marksSessionsEstablished: Bool { true }

    func sessionOpened(_ session: EngineIOSession) {
        let client = SocketIOClient(session: session, application: self)
        session.applicationState = client
        client.start()
    }

    func session(_ session: EngineIOSession, didReceive message: EngineIOMessage) {
        guard let client = session.applicationState as? SocketIOClient else { return }
        client.received(message)
    }

    func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {
        guard let client = session.applicationState as? SocketIOClient else { return }
        session.applicationState = nil
        client.sessionClosed(reason: reason)
    }
}

/// The Socket.IO side of one Engine.IO session: the packet decoder, the state machine and the connections
/// (one per namespace). Confined to the session's event loop; the state machine decides, this class acts.
final class SocketIOClient: @unchecked Sendable {
    let session: EngineIOSession
    let application: SocketIOApplication
    private var machine: SocketIOSessionStateMachine
    private var decoder = SocketIOWire.Decoder()
    private var connections: SmallMap<String, SocketConnection> = [:]
    /// Namespaces accepted whose CONNECT reply waits for the user room's channel (room-channel mode).
    private var awaitingRoomChannel: Set<String> = []
    private var connectTimer: Scheduled<Void>?
    /// Middleware chains still running, by namespace: stopped (their task cancelled) when the session closes, so
    /// a middleware that never returns does not outlive its client.
    private var runningMiddlewares: SmallMap<String, SocketMiddlewareStop> = [:]
    /// The size (as received) of the packet being decoded: its text and the attachments so far.
    private var inboundBytes = 0
    /// The application's logger with this session's id; built when something is logged rather than kept per
    /// client (a stored copy with metadata costs about 500 bytes per connection).
    private var logger: Logger {
        var logger = self.application.logger
        logger[metadataKey: "engine.io.sid"] = "\(self.session.id)"
        return logger
    }

    init(session: EngineIOSession, application: SocketIOApplication) {
        self.session = session
        self.application = application
        self.machine = SocketIOSessionStateMachine(
            now: .now(),
            connectTimeout: application.connectTimeout,
            limits: application.limits.session
        )
    }

    func start() {
        if let deadline = self.machine.pendingConnectDeadline {
            self.connectTimer = self.session.eventLoop.scheduleTask(deadline: deadline) { [self] in
                self.expireTimers()
            }
        }
    }

    func received(_ message: EngineIOMessage) {
        switch message {
        case .text(let bytes), .binary(let bytes): self.inboundBytes += bytes.readableBytes
        }
        let inbound: SocketIOSessionStateMachine.Inbound?
        do {
            inbound = try self.decoder.feed(message)
        } catch {
            self.run(self.machine.protocolError(error))
            return
        }
        guard let inbound else { return }  // waiting for binary attachments
        defer { self.inboundBytes = 0 }
        let registry = self.application.registry
        self.run(
            self.machine.received(
                inbound,
                now: .now(),
                namespaceExists: { registry.existing($0) != nil },
                handlesEvent: { namespace, event in
                    registry.existing(namespace)?.handlesEvent(event) ?? false
                        || self.connections[namespace]?.mayHandleAnyEvent ?? false
                }
            )
        )
    }

    func sessionClosed(reason: EngineIOCloseReason) {
        self.connectTimer?.cancel()
        self.connectTimer = nil
        let running = self.runningMiddlewares
        self.runningMiddlewares = [:]
        for (_, stop) in running { stop.stop() }
        let disconnectReason =
            self.machine.closingError.map(SocketDisconnectReason.init(closing:)) ?? .transport(reason)
        for action in self.machine.sessionClosed() {
            self.run(action, sessionCloseReason: disconnectReason)
        }
    }

    func serverDisconnect(_ connection: SocketConnection) {
        self.run(self.machine.serverDisconnect(namespace: connection.namespace, sid: connection.id))
    }

    func allocateAck(for connection: SocketConnection, deadline: NIODeadline) -> UInt64? {
        guard let id = self.machine.allocateAck(namespace: connection.namespace, sid: connection.id, deadline: deadline)
        else {
            return nil
        }
        self.session.eventLoop.scheduleTask(deadline: deadline) { [self] in
            self.expireTimers()
        }
        return id
    }

    /// Whether ack `id` of `connection` may be sent (once, and only if the client asked for it).
    func ackAnswered(for connection: SocketConnection, id: UInt64) -> Bool {
        self.machine.ackAnswered(namespace: connection.namespace, sid: connection.id, id: id)
    }

    func owedAckCount(for connection: SocketConnection) -> Int {
        self.machine.owedAckCount(namespace: connection.namespace, sid: connection.id) ?? 0
    }

    func cancelAck(for connection: SocketConnection, id: UInt64) {
        _ = self.machine.cancelAck(namespace: connection.namespace, sid: connection.id, id: id)
    }

    private func expireTimers() {
        for action in self.machine.expire(now: .now()) {
            self.run(action)
        }
    }

    private func run(
        _ action: SocketIOSessionStateMachine.Action,
        sessionCloseReason: SocketDisconnectReason = .transport(.transportClose)
    ) {
        switch action {
        case .none:
            break

        case .sendConnectError(let namespace, let refusal):
            self.refuseConnect(namespace: namespace, refusal: refusal)

        case .sendConnectErrorAndClose(let namespace, let refusal, let error):
            // The reply goes out before the close.
            self.refuseConnect(namespace: namespace, refusal: refusal)
            self.closeSession(for: error)

        case .authenticate(let namespace, let auth):
            let request = self.session.request
            let handshake = SocketHandshake(
                auth: auth,
                headers: request.headers,
                query: request.query,
                remoteAddress: request.remoteAddress
            )
            var connectRequest = SocketConnectRequest(namespace: namespace, handshake: handshake)
            // Connection state recovery with `skipMiddlewares`: a session recovered without running them.
            let skipping = self.claimRecoverySkippingMiddlewares(namespace: namespace, auth: auth)
            if let claimed = skipping.claimed {
                connectRequest.user = claimed.session.user
                connectRequest.data = claimed.session.data
                self.connectAccepted(connectRequest, recoveryTried: true, claimed: claimed)
                return
            }
            let recoveryTried = skipping.tried
            let middlewares = self.application.registry.existing(namespace).map {
                self.application.registry.middlewares(for: $0)
            }
            guard let middlewares, !middlewares.isEmpty else {
                // Nothing to run (anonymous, no middleware): accepted at once, without a task.
                self.connectAccepted(connectRequest, recoveryTried: recoveryTried)
                return
            }
            let eventLoop = self.session.eventLoop
            let stop = SocketMiddlewareStop()
            let submitted = self.application.tasks.submit { [connectRequest] in
                // nil: the session closed first (e.g. the connect timeout) and the chain was cancelled.
                guard let outcome = await SocketMiddlewareOutcome.run(middlewares, on: connectRequest, until: stop)
                else { return }
                eventLoop.execute {
                    self.authenticationCompleted(outcome, namespace: namespace, recoveryTried: recoveryTried)
                }
            }
            if submitted {
                self.runningMiddlewares[namespace] = stop
            } else {
                // The server is shutting down and closes this session: the CONNECT is left unanswered.
                self.logger.debug(
                    "socket.io connect not authenticated: the server is shutting down",
                    metadata: ["namespace": "\(LogSafe.text(namespace))"]
                )
            }

        case .dispatchEvent(let namespace, _, let arguments, let ackID):
            guard let connection = self.connections[namespace],
                let namespaceHandlers = self.application.registry.existing(namespace),
                case .string(let event)? = arguments.first
            else { return }
            // The state machine checked that a handler exists (and recorded the ack id only then).
            let handlers = namespaceHandlers.eventHandlers(event)
            let anyHandlers = namespaceHandlers.anyEventHandlers
            namespaceHandlers.eventsCounter.increment()
            let ack = ackID.map { SocketAck(connection: connection, id: $0) }
            let eventArguments = Array(arguments.dropFirst())
            let queued = connection.enqueueEvent(bytes: self.inboundBytes) { [ack] in
                for handler in anyHandlers {
                    await handler(connection, event, eventArguments, ack)
                }
                // The connection's own, as they are when the event's turn comes (onConnect may have added some).
                let listeners = connection.anyListeners
                let listened = !listeners.isEmpty
                for listener in listeners {
                    await listener(event, eventArguments, ack)
                }
                for handler in handlers {
                    await handler(connection, eventArguments, ack)
                }
                // Queued only because onConnect had not finished, and nobody turned out to listen: the ack id is
                // forgotten (socket.io never answers it either), so it does not count against the pending-acks limit.
                if let ack, anyHandlers.isEmpty, handlers.isEmpty, !listened {
                    connection.forgetAck(ack.id)
                }
            }
            if !queued {
                let limits = self.application.limits
                connection.evictQueuedEvents()
                let queue = "at most \(limits.maxQueuedEvents) events or \(limits.maxQueuedEventBytes) bytes"
                self.run(
                    self.machine.protocolError(
                        SocketIOSessionError(
                            code: .eventQueueFull,
                            detail: "namespace \(LogSafe.text(namespace)) sent events faster than its handlers ran "
                                + "(\(queue) may wait)"
                        )
                    )
                )
            }

        case .resolveAck(let namespace, _, let id, let arguments):
            self.connections[namespace]?.resolveAck(id, arguments: arguments)

        case .failAck(let namespace, _, let id):
            self.connections[namespace]?.failAck(id, .timeout)

        case .closeConnection(let namespace, _, let pendingAcks, let cause):
            self.awaitingRoomChannel.remove(namespace)
            guard let connection = self.connections.removeValue(forKey: namespace) else { return }
            let reason: SocketDisconnectReason
            switch cause {
            case .client:
                reason = .clientNamespaceDisconnect
            case .server:
                reason = .serverNamespaceDisconnect
                self.session.send(SocketIOWire.disconnect(namespace: namespace))
            case .session:
                reason = sessionCloseReason
            }
            self.endConnection(connection, pendingAcks: pendingAcks, reason: reason)

        case .closeSession(let error):
            self.closeSession(for: error)
        }
    }

    private func refuseConnect(namespace: String, refusal: SocketIOSessionStateMachine.ConnectRefusal) {
        if refusal != .invalidNamespace {
            // A dynamic namespace's name is the client's: counted under its parent's, so the dimension stays bounded.
            let registered = self.application.registry.existing(namespace)
            self.application.metrics.connectRefused(refusal, namespace: registered?.parent?.name ?? namespace)
        }
        self.logger.debug(
            "socket.io connect refused",
            metadata: ["namespace": "\(LogSafe.text(namespace))", "reason": "\(LogSafe.text(refusal.message))"]
        )
        self.session.send(
            SocketIOWire.connectError(namespace: namespace, message: refusal.message, data: refusal.data)
        )
    }

    /// Closes the Engine.IO session for the client's fault `error`: counted, logged, and the transport closed
    /// with `parseError` for a protocol error (the Engine.IO layer's reason for a client that sent what cannot be
    /// understood) or `serverClose` for a limit or the connect timeout. The connections' onDisconnect handlers
    /// get the matching ``SocketDisconnectReason`` (`protocolError`, `eventQueueFull`, …).
    private func closeSession(for error: SocketIOSessionError) {
        if error.code.isLimit {
            self.application.metrics.clientLimitExceeded(error)
        } else {
            self.application.metrics.protocolError(error)
        }
        guard error.code != .connectTimeout else {
            // A client that never connects is common (a probe, a closed tab): debug, not a warning.
            self.logger.debug("closing engine.io session: \(error)", metadata: self.clientMetadata)
            self.session.close(reason: .serverClose)
            return
        }
        // A misbehaving client: warning, but a flood of them must not flood the log: one line per kind per
        // interval, with how many were suppressed. `error.detail` has every client-written part escaped.
        if let suppressed = self.application.admitWarning(error.code) {
            var metadata = self.clientMetadata
            if let underlying = error.underlying { metadata["code"] = "\(underlying.code)" }
            if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
            self.logger.warning("closing engine.io session: \(error)", metadata: metadata)
        }
        self.session.close(reason: error.code.isLimit ? .serverClose : .parseError)
    }

    /// What the log reader needs to find the client.
    private var clientMetadata: Logger.Metadata {
        [
            "remote": "\(self.session.request.remoteAddress.map { "\($0)" } ?? "?")",
            "transport": "\(self.session.transport)",
        ]
    }

    /// The middleware chain of a CONNECT to `namespace` ended with `middlewareOutcome`; `recoveryTried`: a
    /// recovery was already attempted (and failed) before the chain (`skipMiddlewares`).
    private func authenticationCompleted(
        _ middlewareOutcome: SocketMiddlewareOutcome,
        namespace: String,
        recoveryTried: Bool
    ) {
        self.runningMiddlewares[namespace] = nil
        switch middlewareOutcome {
        case .accepted(let request):
            self.connectAccepted(request, recoveryTried: recoveryTried)
        case .refused(let refusal, let error):
            // A middleware cancelled at shutdown is no fault of the app's.
            if let error, !(error is CancellationError) {
                self.application.middlewareErrorWarning.log(
                    self.logger,
                    "socket.io connect refused: a middleware threw",
                    metadata: [
                        "namespace": "\(LogSafe.text(namespace))",
                        "error": "\(LogSafe.text(String(describing: error)))",
                    ]
                )
            }
            let connectRefusal: SocketIOSessionStateMachine.ConnectRefusal =
                refusal == .unauthorized ? .unauthorized : .refused(message: refusal.message, data: refusal.data)
            let outcome = self.machine.authenticationCompleted(
                namespace: namespace,
                refusal: connectRefusal,
                sid: SessionID.random()
            )
            if case .action(let action) = outcome { self.run(action) }
        }
    }

    /// Every middleware accepted `request` (or a recovery skipped them: `claimed`): connect.
    private func connectAccepted(
        _ request: SocketConnectRequest,
        recoveryTried: Bool,
        claimed skippedMiddlewares: ClaimedSession? = nil
    ) {
        let namespace = request.namespace
        let handshake = request.handshake
        let user = request.user
        // Connection state recovery: a client presenting the pid and offset of a session it lost in time gets
        // the session's sid and data back (its rooms and missed packets follow in `accept`).
        let claimed =
            recoveryTried
            ? skippedMiddlewares : self.claimRecovery(namespace: namespace, auth: handshake.auth, user: user)
        // What the middlewares set goes over the restored data (they ran after the session was lost).
        let data = claimed.map { request.data.overlaying($0.session.data) } ?? request.data
        let outcome = self.machine.authenticationCompleted(
            namespace: namespace,
            refusal: nil,
            sid: claimed?.session.sid ?? SessionID.random()
        )
        guard case .accept(let namespace, let sid) = outcome else {
            if let claimed { self.application.shards.recovery?.releaseHold(of: claimed.session) }
            if case .action(let action) = outcome { self.run(action) }
            return
        }
        if self.machine.pendingConnectDeadline == nil, let timer = self.connectTimer {
            // Connected in time: free the timer now rather than when it would have fired.
            timer.cancel()
            self.connectTimer = nil
        }
        guard let namespaceHandlers = self.application.registry.existing(namespace) else { return }
        let shards = self.application.shards
        guard let user, let gate = shards.joinGate else {
            self.accept(
                namespace: namespace,
                sid: sid,
                user: user,
                data: data,
                handshake: handshake,
                handlers: namespaceHandlers,
                claimed: claimed
            )
            return
        }
        // Room channels: the CONNECT reply waits until this server receives the user room's channel, so that
        // whatever is emitted to the user after the client saw "connected" reaches it. The room is held present
        // meanwhile (so its channel is subscribed) and until the connection has joined it.
        let room = EmitTarget.userRoom(user.id)
        let shardIndex = shards.shard(for: self.session.eventLoop).index
        shards.presence.reserve(namespace: namespace, room: room, shard: shardIndex)
        self.awaitingRoomChannel.insert(namespace)
        let eventLoop = self.session.eventLoop
        gate.whenActive(namespace, room) { active in
            eventLoop.execute {
                defer { shards.presence.release(namespace: namespace, room: room, shard: shardIndex) }
                guard self.awaitingRoomChannel.remove(namespace) != nil else {
                    if let claimed { shards.recovery?.releaseHold(of: claimed.session) }
                    return
                }
                if !active {
                    self.application.logRoomChannelNotConfirmed(namespace: namespace, room: room)
                }
                self.accept(
                    namespace: namespace,
                    sid: sid,
                    user: user,
                    data: data,
                    handshake: handshake,
                    handlers: namespaceHandlers,
                    claimed: claimed
                )
            }
        }
    }

    /// Makes the connection of an accepted namespace: CONNECT reply, rooms, connect handlers.
    private func accept(
        namespace: String,
        sid: String,
        user: AuthenticatedUser?,
        data: SocketData,
        handshake: SocketHandshake,
        handlers namespaceHandlers: SocketNamespace,
        claimed: ClaimedSession? = nil
    ) {
        let shards = self.application.shards
        // Connection state recovery: the packets missed since the claimed session's offset, taken in the same
        // event-loop turn as the rooms are joined, so none falls between the replay and the live deliveries.
        var pid: String?
        var replay: (rooms: [String], missed: [EngineIOOutboundMessage], through: UInt64)?
        if let recovery = shards.recovery {
            if let claimed {
                switch recovery.missedPackets(of: claimed.session, after: claimed.lastReceived) {
                case .replay(let missed, let through):
                    pid = claimed.session.pid
                    replay = (claimed.session.rooms, missed, through)
                case .refused(let refusal):
                    recovery.releaseHold(of: claimed.session)
                    self.recoveryRefused(refusal, namespace: namespace)
                    if claimed.skippedMiddlewares {
                        // Checked when claimed, dropped since (the log overflowed meanwhile): no fresh session
                        // without the middlewares. The client reconnects, fails to recover and runs them.
                        self.session.close(reason: .serverClose)
                        return
                    }
                }
            }
            pid = pid ?? SessionID.random()
        }
        self.session.markEstablished()
        let connection = SocketConnection(
            id: sid,
            namespace: namespace,
            user: user,
            handshake: handshake,
            client: self,
            data: data,
            handlers: namespaceHandlers,
            pid: pid,
            recovered: replay != nil
        )
        connection.replayedThrough = replay?.through ?? 0
        self.connections[namespace] = connection
        self.application.registry.retain(namespaceHandlers)
        // The CONNECT reply goes out before anything onConnect emits.
        self.session.send(SocketIOWire.connect(namespace: namespace, sid: sid, pid: pid))
        shards.register(connection)
        let shard = shards.shard(for: connection.eventLoop)
        shard.join(connection, room: sid)
        if let user {
            shard.join(connection, room: EmitTarget.userRoom(user.id))
        }
        if let replay, let claimed {
            for room in replay.rooms { shard.join(connection, room: room) }
            shards.recovery?.releaseHold(of: claimed.session)
            for packet in replay.missed { self.session.send(packet) }
            self.application.metrics.recoveries(outcome: "recovered").increment()
            self.logger.debug(
                "socket.io session recovered",
                metadata: ["namespace": "\(namespace)", "sid": "\(sid)", "missed": "\(replay.missed.count)"]
            )
        }
        namespaceHandlers.connectionsMeter.increment()
        // A dynamic namespace's name is the client's: escaped.
        self.logger.debug(
            "socket.io connected",
            metadata: ["namespace": "\(LogSafe.text(namespace))", "sid": "\(sid)"]
        )
        let handlers = namespaceHandlers.connectHandlers
        if !handlers.isEmpty {
            connection.connectHandlersPending = true
            connection.enqueue {
                for handler in handlers {
                    await handler(connection)
                }
                connection.eventLoop.execute { connection.connectHandlersPending = false }
            }
        }
    }

    private func endConnection(_ connection: SocketConnection, pendingAcks: [UInt64], reason: SocketDisconnectReason) {
        connection.markDisconnected(pendingAcks: pendingAcks)
        self.persistForRecovery(connection, reason: reason)
        self.application.shards.unregister(connection)
        let namespace = connection.handlers ?? self.application.registry.existing(connection.namespace)
        namespace?.connectionsMeter.decrement()
        self.application.registry.release(connection.namespace)
        self.logger.debug(
            "socket.io disconnected",
            metadata: [
                "namespace": "\(LogSafe.text(connection.namespace))", "sid": "\(connection.id)", "reason": "\(reason)",
            ]
        )
        let handlers = namespace?.disconnectHandlers ?? []
        if !handlers.isEmpty {
            connection.enqueue {
                for handler in handlers {
                    await handler(connection, reason)
                }
            }
        }
        connection.finishJobs()
    }
}

// MARK: Connection state recovery

/// A session claimed by a reconnecting client: its sid is reused; its rooms and missed packets come in `accept`.
struct ClaimedSession {
    var session: ConnectionRecovery.Machine.Session
    var lastReceived: UInt64
    /// Claimed before any middleware ran (`skipMiddlewares`): the session's user and data are the connection's.
    var skippedMiddlewares = false
}

extension SocketIOClient {
    /// Claims the session whose `pid` and `offset` the client sent in its CONNECT payload (socket.io-client adds
    /// them on its own), when recovery is on. Logged and counted when refused: the client gets a fresh session.
    fileprivate func claimRecovery(namespace: String, auth: JSONValue?, user: AuthenticatedUser?) -> ClaimedSession? {
        guard let recovery = self.application.shards.recovery, let auth,
            let pid = auth["pid"]?.stringValue, let offset = auth["offset"]?.stringValue
        else { return nil }
        switch recovery.claim(pid: pid, offset: offset, namespace: namespace, userID: user?.id) {
        case .claimed(let session, let lastReceived):
            return ClaimedSession(session: session, lastReceived: lastReceived)
        case .refused(let refusal):
            self.recoveryRefused(refusal, namespace: namespace)
            return nil
        }
    }

    /// With `skipMiddlewares` on, claims the session the client names, before any middleware runs; only when its
    /// missed packets can be replayed (socket.io restores the session first and skips the middlewares only when
    /// that worked). `tried`: a recovery was attempted (it is not attempted again after the middlewares).
    fileprivate func claimRecoverySkippingMiddlewares(
        namespace: String,
        auth: JSONValue?
    ) -> (claimed: ClaimedSession?, tried: Bool) {
        guard let recovery = self.application.shards.recovery, recovery.skipMiddlewares, let auth,
            let pid = auth["pid"]?.stringValue, let offset = auth["offset"]?.stringValue
        else { return (nil, false) }
        switch recovery.claim(pid: pid, offset: offset, namespace: namespace, userID: nil, authenticated: false) {
        case .claimed(let session, let lastReceived):
            if case .refused(let refusal) = recovery.missedPackets(of: session, after: lastReceived) {
                recovery.releaseHold(of: session)
                self.recoveryRefused(refusal, namespace: namespace)
                return (nil, true)
            }
            return (ClaimedSession(session: session, lastReceived: lastReceived, skippedMiddlewares: true), true)
        case .refused(let refusal):
            self.recoveryRefused(refusal, namespace: namespace)
            return (nil, true)
        }
    }

    fileprivate func recoveryRefused(_ refusal: ConnectionRecovery.Machine.Refusal, namespace: String) {
        self.application.metrics.recoveries(outcome: refusal.rawValue).increment()
        self.logger.debug(
            "socket.io session not recovered: a fresh session instead",
            metadata: ["namespace": "\(LogSafe.text(namespace))", "reason": "\(refusal.rawValue)"]
        )
    }

    /// Keeps the session of a connection whose transport was lost, for a recovery within the window.
    fileprivate func persistForRecovery(_ connection: SocketConnection, reason: SocketDisconnectReason) {
        guard let recovery = self.application.shards.recovery, let pid = connection.pid, reason.isRecoverable
        else { return }
        let rooms = self.application.shards.shard(for: connection.eventLoop).rooms(of: connection)
        let session = ConnectionRecovery.Machine.Session(
            sid: connection.id,
            pid: pid,
            namespace: connection.namespace,
            userID: connection.user?.id,
            rooms: rooms.sorted(),
            user: connection.user,
            data: connection.data
        )
        switch recovery.persist(session) {
        case .persisted:
            break
        case .persistedDroppingOldest:
            self.application.metrics.recoveries(outcome: "session dropped for maxSessions").increment()
        case .tooManyRooms:
            self.application.metrics.recoveries(outcome: "not kept: too many rooms").increment()
        }
    }
}
