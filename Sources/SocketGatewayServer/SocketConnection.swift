import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
public import SocketGatewayCore
import SocketGatewayEngineIO

/// One client connected to one namespace.
///
/// Its methods may be called from any task; they hop to the connection's event loop.
public final class SocketConnection: @unchecked Sendable {
    /// The Socket.IO session id (not the Engine.IO one); also the name of a room only this connection is in.
    public let id: String
    /// The namespace.
    public let namespace: String
    /// The user the authenticator returned, if a server authenticator is configured.
    public let user: AuthenticatedUser?
    /// What the client sent when it connected.
    public let handshake: SocketHandshake
    /// Whether this connection recovered a session that lost its transport (connection state recovery): same
    /// ``id``, its rooms back, and the events it missed replayed before anything else.
    public let recovered: Bool
    /// The private session id a client presents to recover this session (connection state recovery only).
    let pid: String?

    let client: SocketIOClient
    let eventLoop: any EventLoop
    /// The namespace's handlers (for a dynamic namespace's child, its parent's); nil in tests that make none.
    let handlers: SocketNamespace?
    /// The per-socket data and the connection's own catch-all listeners; any task may read or set them.
    private let shared: NIOLockedValueBox<SharedState>

    /// What any task may read or change, under the connection's lock.
    private struct SharedState {
        var data: SocketData
        var nextListenerID: UInt64 = 0
        /// ``onAny(_:)`` listeners, in the order added.
        var anyListeners: [(token: SocketListenerToken, listener: AnyListener)] = []
        /// ``onAnyOutgoing(_:)`` listeners, in the order added.
        var outgoingListeners: [(token: SocketListenerToken, listener: AnyOutgoingListener)] = []
        /// The connection ended: no listener is added any more.
        var ended = false
    }

    // Confined to `eventLoop`:
    /// The queue of this connection's handler runs; made with its task (a job of the server's task pool) on the
    /// first handler run, so an idle connection without handlers holds no task.
    private var jobs: AsyncStream<@Sendable () async -> Void>.Continuation?
    /// The events waiting in `jobs`, against the configured bounds; made with `jobs`, shared with its task.
    private var eventBudget: NIOLockedValueBox<EventQueueBudget>?
    private var jobsFinished = false
    /// What waits for each ack id: an `emitWithAck` call, or a gateway's ``SocketGateway/broadcastWithAck``.
    private var ackWaiters: [UInt64: AckWaiter] = [:]
    private(set) var isConnected = true
    /// The offset counter of the last logged event a recovery replayed to this connection: a live delivery of
    /// one up to it is skipped (connection state recovery).
    var replayedThrough: UInt64 = 0
    /// The namespace's onConnect handlers have not finished yet: every event is queued (behind them), since they
    /// may add an ``onAny(_:)`` listener for it.
    var connectHandlersPending = false

    init(
        id: String,
        namespace: String,
        user: AuthenticatedUser?,
        handshake: SocketHandshake,
        client: SocketIOClient,
        data: SocketData = SocketData(),
        handlers: SocketNamespace? = nil,
        pid: String? = nil,
        recovered: Bool = false
    ) {
        self.id = id
        self.namespace = namespace
        self.user = user
        self.handshake = handshake
        self.client = client
        self.eventLoop = client.session.eventLoop
        self.pid = pid
        self.recovered = recovered
        self.shared = NIOLockedValueBox(SharedState(data: data))
        self.handlers = handlers
    }

    /// The per-socket data (socket.io's `socket.data`): what the middlewares set, then whatever handlers set.
    ///
    /// Reading gives a copy; setting replaces the whole value. To change one key without losing a concurrent
    /// change to another, use ``updateData(_:)``.
    public var data: SocketData {
        get { self.shared.withLockedValue { $0.data } }
        set { self.shared.withLockedValue { $0.data = newValue } }
    }

    /// Changes the per-socket data in place, atomically.
    /// - Parameter body: Gets the data to change; keep it short (it holds the connection's data lock).
    /// - Returns: What `body` returns.
    public func updateData<Result>(_ body: (inout SocketData) throws -> Result) rethrows -> Result {
        try self.shared.withLockedValue { try body(&$0.data) }
    }

    // MARK: Catch-all listeners of this connection

    /// A listener for every event this connection receives (``onAny(_:)``): the event name, its arguments, and
    /// the ack when the client asked for one.
    public typealias AnyListener = @Sendable (String, [JSONValue], SocketAck?) async -> Void
    /// A listener for every event this connection is sent (``onAnyOutgoing(_:)``): the event name, its arguments.
    public typealias AnyOutgoingListener = @Sendable (String, [JSONValue]) -> Void

    /// Calls `listener` for every event this client sends (socket.io's `socket.onAny`), also those no handler
    /// handles, before the event's handlers and after the namespace's ``SocketNamespace/onAny(_:)`` handlers,
    /// in this connection's handler order. Add it in `onConnect`: events that arrive before the onConnect handlers
    /// finish wait for them.
    /// - Parameter listener: Gets the event name, its arguments, and the ack when one was asked for.
    /// - Returns: A token for ``offAny(_:)``.
    @discardableResult
    public func onAny(_ listener: @escaping AnyListener) -> SocketListenerToken {
        self.shared.withLockedValue { state in
            let token = Self.nextToken(&state)
            if !state.ended { state.anyListeners.append((token, listener)) }
            return token
        }
    }

    /// Removes the ``onAny(_:)`` listener of `token`, or every one when `token` is nil (socket.io's `offAny`).
    public func offAny(_ token: SocketListenerToken? = nil) {
        self.shared.withLockedValue { state in
            state.anyListeners.removeAll { token == nil || $0.token == token }
        }
    }

    /// Calls `listener` for every event this server sends this client (socket.io's `socket.onAnyOutgoing`): its
    /// own `emit`s and `emitWithAck`s and the gateway's emits that reach it, as the namespace's
    /// ``SocketNamespace/onAnyOutgoing(_:)`` listeners (after them). Not for emits from other servers or workers.
    ///
    /// It runs on the connection's event loop as the event is sent: keep it short and never block.
    /// - Returns: A token for ``offAnyOutgoing(_:)``.
    @discardableResult
    public func onAnyOutgoing(_ listener: @escaping AnyOutgoingListener) -> SocketListenerToken {
        let (token, first) = self.shared.withLockedValue { state in
            let token = Self.nextToken(&state)
            guard !state.ended else { return (token, false) }
            state.outgoingListeners.append((token, listener))
            return (token, state.outgoingListeners.count == 1)
        }
        // The gateway's fan-out notifies a namespace's connections only when one of them listens.
        if first { self.handlers?.socketOutgoingListeners(added: true) }
        return token
    }

    /// Removes the ``onAnyOutgoing(_:)`` listener of `token`, or every one when `token` is nil (socket.io's
    /// `offAnyOutgoing`).
    public func offAnyOutgoing(_ token: SocketListenerToken? = nil) {
        let last = self.shared.withLockedValue { state in
            let had = !state.outgoingListeners.isEmpty
            state.outgoingListeners.removeAll { token == nil || $0.token == token }
            return had && state.outgoingListeners.isEmpty
        }
        if last { self.handlers?.socketOutgoingListeners(added: false) }
    }

    private static func nextToken(_ state: inout SharedState) -> SocketListenerToken {
        state.nextListenerID += 1
        return SocketListenerToken(id: state.nextListenerID)
    }

    /// This connection's ``onAny(_:)`` listeners now.
    var anyListeners: [AnyListener] {
        self.shared.withLockedValue { $0.anyListeners.map(\.listener) }
    }

    /// Whether an event no namespace handler handles must still be queued: the connection listens to every
    /// event, or its onConnect handlers (which may add such a listener) have not finished.
    var mayHandleAnyEvent: Bool {
        self.eventLoop.assertInEventLoop()
        return self.connectHandlersPending || self.shared.withLockedValue { !$0.anyListeners.isEmpty }
    }

    /// Calls the namespace's ``SocketNamespace/onAnyOutgoing(_:)`` listeners and this connection's own for an
    /// event sent to this client.
    func notifyOutgoing(_ event: String, _ arguments: [JSONValue]) {
        Self.notify(self.handlers?.outgoingListeners ?? [], self, event, arguments)
    }

    /// Calls `listeners`, then `connection`'s own ``onAnyOutgoing(_:)`` listeners, for an event sent to it.
    static func notify(
        _ listeners: [SocketNamespace.OutgoingListener],
        _ connection: SocketConnection,
        _ event: String,
        _ arguments: [JSONValue]
    ) {
        for listener in listeners {
            listener(connection, event, arguments)
        }
        let own = connection.shared.withLockedValue { $0.outgoingListeners }
        for (_, listener) in own {
            listener(event, arguments)
        }
    }

    /// The connection ended: its listeners go (and no more are added).
    private func dropListeners() {
        let hadOutgoing = self.shared.withLockedValue { state in
            state.ended = true
            state.anyListeners = []
            defer { state.outgoingListeners = [] }
            return !state.outgoingListeners.isEmpty
        }
        if hadOutgoing { self.handlers?.socketOutgoingListeners(added: false) }
    }

    /// Sends `event` with `arguments` to this client.
    public func emit(_ event: String, _ arguments: JSONValue...) {
        self.emit(event, arguments: arguments)
    }

    /// Sends `event` with `arguments` to this client. With connection state recovery on, the event is logged
    /// with an offset appended, as an emit to the room of this connection's id (as socket.io does), so a client
    /// that reconnects in time gets it even if this connection is lost before it goes out.
    public func emit(_ event: String, arguments: [JSONValue]) {
        guard let recovery = self.client.application.shards.recovery else {
            let message = SocketIOWire.event(namespace: self.namespace, event: event, arguments: arguments, ackID: nil)
            self.onLoop {
                guard self.isConnected else { return }
                self.client.session.send(message)
                self.notifyOutgoing(event, arguments)
            }
            return
        }
        let (message, counter) = recovery.logEvent(
            event,
            arguments: arguments,
            namespace: self.namespace,
            rooms: [self.id],
            excluding: []
        )
        self.onLoop {
            guard self.isConnected, self.replayedThrough < counter else { return }
            self.client.session.send(message)
            self.notifyOutgoing(event, arguments)
        }
    }

    /// Emits that are dropped rather than queued when the client cannot take them now (socket.io's
    /// `socket.volatile.emit`): see ``SocketVolatileEmitter``.
    public var volatile: SocketVolatileEmitter { SocketVolatileEmitter(connection: self) }

    /// Sends a volatile event now, or drops it (counted) when the transport cannot take it at once.
    func emitVolatile(_ event: String, arguments: [JSONValue]) {
        let message = SocketIOWire.event(namespace: self.namespace, event: event, arguments: arguments, ackID: nil)
        self.onLoop {
            guard self.isConnected else { return }
            guard self.client.session.canTakeMessageNow else {
                self.client.application.metrics.volatileDropped.increment()
                return
            }
            self.client.session.send(message)
            self.notifyOutgoing(event, arguments)
        }
    }

    /// Sends `event` and waits for the client's acknowledgement.
    /// - Parameters:
    ///   - event: The event name.
    ///   - arguments: The event's arguments.
    ///   - timeout: How long to wait for the answer.
    /// - Returns: The arguments the client acknowledged with.
    /// - Throws: `SocketAckError` on timeout or disconnect; `CancellationError` when the task is cancelled.
    public func emitWithAck(_ event: String, arguments: [JSONValue], timeout: Duration) async throws -> [JSONValue] {
        let box = AckIDBox()
        let sent = ContinuousClock.now
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[JSONValue], any Error>) in
                self.onLoop {
                    let deadline = NIODeadline.now() + TimeAmount(timeout)
                    guard self.isConnected,
                        let ackID = self.client.allocateAck(for: self, deadline: deadline)
                    else {
                        continuation.resume(throwing: self.ackError(.notConnected, event: event))
                        return
                    }
                    box.id = ackID
                    self.ackWaiters[ackID] = .call(event: event, continuation)
                    let message = SocketIOWire.event(
                        namespace: self.namespace,
                        event: event,
                        arguments: arguments,
                        ackID: ackID
                    )
                    self.client.session.send(message)
                    self.notifyOutgoing(event, arguments)
                    if box.cancelled { self.cancelAck(ackID) }
                }
            }
        } onCancel: {
            self.onLoop {
                box.cancelled = true
                if let id = box.id { self.cancelAck(id) }
            }
        }
        self.client.application.metrics.ackAnswered(after: ContinuousClock.now - sent)
        return reply
    }

    /// Puts this connection into `room`. With room channels (``RedisChannelMode/rooms``) it returns once the
    /// server receives the room's emits from other servers and workers (bounded by
    /// ``SocketServerRedisConfiguration/roomSubscribeTimeout``).
    public func join(_ room: String) async {
        _ = await self.client.application.shards.joinAndWait(self, room: room)
    }

    /// Takes this connection out of `room`.
    public func leave(_ room: String) async {
        await self.client.application.shards.shard(for: self.eventLoop).run { shard in
            shard.leave(self, room: room)
        }
    }

    /// The rooms this connection is in (its own id and `user:<id>` included).
    public func rooms() async -> Set<String> {
        await self.client.application.shards.shard(for: self.eventLoop).run { shard in
            shard.rooms(of: self)
        } ?? []
    }

    /// Disconnects this client from the namespace (the client gets a DISCONNECT packet); its Engine.IO session
    /// stays open for its other namespaces.
    public func disconnect() async {
        let future = self.eventLoop.submit {
            self.client.serverDisconnect(self)
        }
        try? await future.get()
    }

    // MARK: Internals, on `eventLoop`

    /// Queues a handler run (connect, disconnect) after every handler queued before it; not bounded. Refused
    /// (logged) only when the server is shutting down before this connection's handler loop started.
    func enqueue(_ job: @escaping @Sendable () async -> Void) {
        self.eventLoop.assertInEventLoop()
        guard !self.jobsFinished, let (continuation, _) = self.startedJobs() else { return }
        continuation.yield(job)
    }

    /// Queues the handler run of an event of `bytes` (as received) after every handler queued before it, unless
    /// `maxQueuedEventsPerConnection` events or `maxQueuedEventBytesPerConnection` bytes already wait.
    /// - Returns: false when the queue is full: the event was not queued and the caller must close the session.
    func enqueueEvent(bytes: Int, _ job: @escaping @Sendable () async -> Void) -> Bool {
        self.eventLoop.assertInEventLoop()
        guard !self.jobsFinished, let (continuation, budget) = self.startedJobs() else { return true }
        guard budget.withLockedValue({ $0.admit(bytes: bytes) }) else { return false }
        continuation.yield {
            guard budget.withLockedValue({ $0.start(bytes: bytes) }) else { return }
            await job()
        }
        return true
    }

    /// The connection is closed for exceeding its queue: the events still waiting are dropped when their turn
    /// comes (the disconnect handlers still run).
    func evictQueuedEvents() {
        self.eventLoop.assertInEventLoop()
        self.eventBudget?.withLockedValue { $0.evict() }
    }

    /// The events waiting for this connection's handlers and their size (for tests and diagnostics).
    package func queuedEvents() async -> (count: Int, bytes: Int) {
        let budget = try? await self.eventLoop.submit { self.eventBudget }.get()
        return budget?.withLockedValue { ($0.queuedEvents, $0.queuedBytes) } ?? (0, 0)
    }

    /// The queue and its budget, made with its task on the first handler run, so an idle connection without
    /// handlers holds no task.
    /// - Returns: nil when the server's task pool refused the queue's task (it is shutting down): the handlers
    ///   of this connection will not run (logged once); nothing is queued.
    private func startedJobs() -> (
        continuation: AsyncStream<@Sendable () async -> Void>.Continuation, budget: NIOLockedValueBox<EventQueueBudget>
    )? {
        if let jobs = self.jobs, let budget = self.eventBudget { return (jobs, budget) }
        let application = self.client.application
        let limits = application.limits
        let budget = NIOLockedValueBox(
            EventQueueBudget(maxEvents: limits.maxQueuedEvents, maxBytes: limits.maxQueuedEventBytes)
        )
        let (stream, continuation) = AsyncStream<@Sendable () async -> Void>.makeStream()
        // One task per connection (from its first handler run on) runs its handlers one after another, in
        // arrival order: a child of the server's run(), which waits for it at shutdown (and cancels it after
        // the grace period).
        let submitted = application.tasks.submit {
            for await job in stream {
                await job()
            }
        }
        guard submitted else {
            self.jobsFinished = true
            continuation.finish()
            application.logger.error(
                "socket.io handlers not run: the server is shutting down",
                metadata: ["namespace": "\(LogSafe.text(self.namespace))", "sid": "\(self.id)"]
            )
            return nil
        }
        self.jobs = continuation
        self.eventBudget = budget
        return (continuation, budget)
    }

    /// Ends the handler queue once it has run what is queued.
    func finishJobs() {
        self.eventLoop.assertInEventLoop()
        self.jobsFinished = true
        self.jobs?.finish()
        self.jobs = nil
    }

    /// Sends the ack `id`, once.
    func sendAck(_ id: UInt64, arguments: [JSONValue]) {
        let message = SocketIOWire.ack(namespace: self.namespace, id: id, arguments: arguments)
        self.onLoop {
            guard self.isConnected, self.client.ackAnswered(for: self, id: id) else { return }
            self.client.session.send(message)
        }
    }

    /// Forgets ack `id` without answering it: the event that asked for it had no handler after all.
    func forgetAck(_ id: UInt64) {
        self.onLoop {
            guard self.isConnected else { return }
            _ = self.client.ackAnswered(for: self, id: id)
        }
    }

    /// The acks the client asked for that no handler answered yet (for tests and diagnostics).
    package func owedAcks() async -> Int {
        (try? await self.eventLoop.submit { self.client.owedAckCount(for: self) }.get()) ?? 0
    }

    func resolveAck(_ id: UInt64, arguments: [JSONValue]) {
        self.eventLoop.assertInEventLoop()
        switch self.ackWaiters.removeValue(forKey: id) {
        case .call(_, let continuation)?: continuation.resume(returning: arguments)
        case .broadcast(let collector)?: collector.answered(self.id, arguments)
        case nil: break
        }
    }

    func failAck(_ id: UInt64, _ code: SocketAckError.Code) {
        self.eventLoop.assertInEventLoop()
        switch self.ackWaiters.removeValue(forKey: id) {
        case .call(let event, let continuation)?: continuation.resume(throwing: self.ackError(code, event: event))
        case .broadcast(let collector)?: collector.failed(self.id, code)
        case nil: break
        }
    }

    private func cancelAck(_ id: UInt64) {
        self.eventLoop.assertInEventLoop()
        self.client.cancelAck(for: self, id: id)
        if case .call(_, let continuation)? = self.ackWaiters.removeValue(forKey: id) {
            continuation.resume(throwing: CancellationError())
        }
    }

    /// Sends `event` with an ack id of its own for a gateway's broadcast with acks: the answer, the deadline or the
    /// end of this connection is reported to `collector`.
    func emitForBroadcastAck(
        _ event: String,
        arguments: [JSONValue],
        deadline: NIODeadline,
        collector: BroadcastAckCollector,
        flushingIn batch: EngineIOFlushBatch
    ) {
        self.eventLoop.assertInEventLoop()
        guard self.isConnected, let ackID = self.client.allocateAck(for: self, deadline: deadline) else {
            collector.failed(self.id, .notConnected)
            return
        }
        guard collector.registered(self, ackID: ackID) else {
            // The broadcast was cancelled meanwhile.
            self.client.cancelAck(for: self, id: ackID)
            return
        }
        self.ackWaiters[ackID] = .broadcast(collector)
        let message = SocketIOWire.event(namespace: self.namespace, event: event, arguments: arguments, ackID: ackID)
        self.client.session.send(message, flushingIn: batch)
        self.notifyOutgoing(event, arguments)
    }

    /// Gives up the ack `id` of a cancelled broadcast with acks.
    func cancelBroadcastAck(_ id: UInt64) {
        self.onLoop {
            guard case .broadcast? = self.ackWaiters.removeValue(forKey: id) else { return }
            self.client.cancelAck(for: self, id: id)
        }
    }

    /// The connection ended: fail every waiting `emitWithAck`, and count it missing in every broadcast with acks.
    func markDisconnected(pendingAcks: [UInt64]) {
        self.eventLoop.assertInEventLoop()
        self.isConnected = false
        self.dropListeners()
        let waiters = self.ackWaiters
        self.ackWaiters.removeAll()
        for (_, waiter) in waiters {
            switch waiter {
            case .call(let event, let continuation):
                continuation.resume(throwing: self.ackError(.disconnected, event: event))
            case .broadcast(let collector):
                collector.failed(self.id, .disconnected)
            }
        }
    }

    private func ackError(_ code: SocketAckError.Code, event: String) -> SocketAckError {
        SocketAckError(code: code, event: event, sid: self.id, namespace: self.namespace)
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if self.eventLoop.inEventLoop {
            body()
        } else {
            self.eventLoop.execute(body)
        }
    }
}

/// Names a listener added with ``SocketConnection/onAny(_:)`` or ``SocketConnection/onAnyOutgoing(_:)``, to remove
/// it with ``SocketConnection/offAny(_:)`` or ``SocketConnection/offAnyOutgoing(_:)`` (closures cannot be compared).
public struct SocketListenerToken: Hashable, Sendable {
    let id: UInt64
}

/// What waits for one ack id of a connection.
private enum AckWaiter {
    /// A ``SocketConnection/emitWithAck(_:arguments:timeout:)`` call.
    case call(event: String, CheckedContinuation<[JSONValue], any Error>)
    /// A gateway's broadcast with acks, which counts every addressed connection's answer.
    case broadcast(BroadcastAckCollector)
}

/// The ack id of one `emitWithAck`, shared with its cancellation handler; touched only on the event loop.
private final class AckIDBox: @unchecked Sendable {
    var id: UInt64?
    var cancelled = false
}

/// Answers a client's event that asked for an acknowledgement. Calling it more than once sends nothing more.
public struct SocketAck: Sendable {
    let connection: SocketConnection
    let id: UInt64

    /// Acknowledges with `arguments` (binary values are sent as attachments, in a BINARY_ACK).
    public func callAsFunction(_ arguments: JSONValue...) {
        self.send(arguments)
    }

    /// Acknowledges with `arguments` (binary values are sent as attachments, in a BINARY_ACK).
    public func send(_ arguments: [JSONValue]) {
        self.connection.sendAck(self.id, arguments: arguments)
    }
}

/// Volatile emits to one connection (socket.io's `socket.volatile`): for updates that are stale by the next one
/// (positions, typing indicators), where queueing for a client that cannot take them only adds latency.
///
/// The event is written when the client can take it now — over long-polling, a GET is waiting and nothing else
/// is queued; over WebSocket, nothing is queued for the socket and its channel is writable — and otherwise dropped,
/// not queued, and counted in `socketgateway_volatile_dropped_total`. It carries no recovery offset and is never
/// replayed.
public struct SocketVolatileEmitter: Sendable {
    let connection: SocketConnection

    /// Sends `event` with `arguments` if the client can take it now; drops it otherwise.
    public func emit(_ event: String, _ arguments: JSONValue...) {
        self.connection.emitVolatile(event, arguments: arguments)
    }

    /// Sends `event` with `arguments` if the client can take it now; drops it otherwise.
    public func emit(_ event: String, arguments: [JSONValue]) {
        self.connection.emitVolatile(event, arguments: arguments)
    }
}
