import CoreMetrics
import Logging
import NIOCore
public import SocketGatewayCore
import SocketGatewayEngineIO

/// The server-side emit API: delivers to this server's clients (and, with a cluster adapter, to the others).
///
/// An emit encodes its packet once and writes the same bytes to every recipient: one closure per event loop
/// walks that loop's room index, so no lock is held while writing and no connection outside the addressed rooms
/// is looked at.
public final class SocketGateway: SocketEmitter {
    let shards: RoomShards
    let cluster: any ClusterAdapter
    let metrics: SocketServerMetrics
    let logger: Logger
    /// The server's tasks (owned by its `run()`): the cluster adapter runs the acks of remote emits there.
    let tasks: ServerTaskPool
    /// The server's namespaces, for their ``SocketNamespace/onAnyOutgoing(_:)`` listeners.
    let registry: NamespaceRegistry?
    /// The handlers of other servers' ``serverSideEmit(_:arguments:timeout:)`` (shared with ``local``).
    let serverSideEmitHandlers: ServerSideEmitHandlers

    /// The same gateway without the cluster, when there is one (see ``local``).
    private let localOnly: SocketGateway?

    init(
        shards: RoomShards,
        cluster: any ClusterAdapter,
        metrics: SocketServerMetrics,
        tasks: ServerTaskPool,
        logger: Logger,
        registry: NamespaceRegistry? = nil,
        serverSideEmitHandlers: ServerSideEmitHandlers = ServerSideEmitHandlers()
    ) {
        self.serverSideEmitHandlers = serverSideEmitHandlers
        self.tasks = tasks
        self.registry = registry
        self.shards = shards
        self.cluster = cluster
        self.metrics = metrics
        self.logger = logger
        self.localOnly =
            cluster is LocalOnlyClusterAdapter
            ? nil
            : SocketGateway(
                shards: shards,
                cluster: LocalOnlyClusterAdapter(),
                metrics: metrics,
                tasks: tasks,
                logger: logger,
                registry: registry,
                serverSideEmitHandlers: serverSideEmitHandlers
            )
    }

    /// This gateway reaching only this server's clients: what a ``ClusterAdapter`` applies the other servers'
    /// operations to (it never calls the adapter, so nothing is published back). Its results say `.delivered`
    /// with the local count, or `.failed` for a client that is not connected here.
    public var local: SocketGateway { self.localOnly ?? self }

    /// Emits `event` with `arguments` to `target` among this server's clients.
    @discardableResult
    public func emit(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions
    ) async -> EmitResult {
        self.metrics.emits.increment()
        let notification =
            self.registry?.existing(options.namespace)?.outgoingNotification ?? (listeners: [], socketListeners: false)
        let outgoing =
            notification.listeners.isEmpty && !notification.socketListeners
            ? nil : OutgoingEvent(listeners: notification.listeners, event: event, arguments: arguments)
        let deliveries: Int
        if options.volatile {
            deliveries = await self.deliverVolatile(event, arguments: arguments, target: target, options, outgoing)
        } else if let recovery = self.shards.recovery {
            // Logged with an offset as its last argument, for connection state recovery.
            deliveries = await self.deliverLogged(
                event,
                arguments: arguments,
                recovery,
                target: target,
                options,
                outgoing
            )
        } else {
            let message = SocketIOWire.event(
                namespace: options.namespace,
                event: event,
                arguments: arguments,
                ackID: nil
            )
            deliveries = await self.deliver(
                message,
                namespace: options.namespace,
                rooms: target.roomNames,
                excluding: options.excluding,
                outgoing: outgoing
            )
        }
        self.metrics.deliveries.increment(by: Int64(deliveries))
        let local = EmitResult(outcome: .delivered, localDeliveries: deliveries)
        return await self.cluster.emitted(event, arguments: arguments, to: target, options: options, local: local)
    }

    /// Emits `event` to `target` in every child of the dynamic namespace `parent` that has connections on this
    /// server (socket.io's `parentNamespace.emit`); each child's emit goes to the other servers as well, but a
    /// child with connections only on another server is not known here.
    /// - Returns: Each child's result, by namespace name.
    @discardableResult
    public func emit(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget = .broadcast,
        inChildrenOf parent: SocketNamespace
    ) async -> [String: EmitResult] {
        var results: [String: EmitResult] = [:]
        for child in self.registry?.children(of: parent) ?? [] {
            results[child] = await self.emit(
                event,
                arguments: arguments,
                to: target,
                options: EmitOptions(namespace: child)
            )
        }
        return results
    }

    /// Puts the local client `sid` into `room`.
    @discardableResult
    public func joinRoom(_ sid: String, room: String, namespace: String) async -> EmitResult {
        var matches = 0
        if let connection = self.shards.connection(sid: sid, namespace: namespace) {
            let joined = await self.shards.joinAndWait(connection, room: room)
            matches = joined ? 1 : 0
        }
        return await self.cluster.applied(.joinRoom(sid: sid, room: room, namespace: namespace), localMatches: matches)
    }

    /// Takes the local client `sid` out of `room`.
    @discardableResult
    public func leaveRoom(_ sid: String, room: String, namespace: String) async -> EmitResult {
        var matches = 0
        if let connection = self.shards.connection(sid: sid, namespace: namespace) {
            await self.shards.shard(for: connection.eventLoop).run { $0.leave(connection, room: room) }
            matches = 1
        }
        return await self.cluster.applied(.leaveRoom(sid: sid, room: room, namespace: namespace), localMatches: matches)
    }

    /// Removes every local client from `room`.
    @discardableResult
    public func closeRoom(_ room: String, namespace: String) async -> EmitResult {
        var removed = 0
        for shard in self.shards.all {
            removed += await shard.run { $0.close(room: room, namespace: namespace) } ?? 0
        }
        return await self.cluster.applied(.closeRoom(room: room, namespace: namespace), localMatches: removed)
    }

    /// Disconnects the local client `sid` from `namespace` (it gets a DISCONNECT packet).
    @discardableResult
    public func disconnect(_ sid: String, namespace: String) async -> EmitResult {
        var matches = 0
        if let connection = self.shards.connection(sid: sid, namespace: namespace) {
            await connection.disconnect()
            matches = 1
        }
        return await self.cluster.applied(.disconnect(sid: sid, namespace: namespace), localMatches: matches)
    }

    /// Emits `event` to the client `sid` and waits for its acknowledgement, wherever in the cluster it is
    /// connected (through Redis with python-socketio's `callback` messages when it is not connected here).
    /// - Returns: The arguments the client acknowledged with.
    /// - Throws: `SocketAckError` on timeout, or when no server has the client (`notConnected` when local-only).
    public func emitWithAck(
        _ event: String,
        arguments: [JSONValue],
        to sid: String,
        namespace: String = "/",
        timeout: Duration
    ) async throws -> [JSONValue] {
        if let connection = self.shards.connection(sid: sid, namespace: namespace) {
            return try await connection.emitWithAck(event, arguments: arguments, timeout: timeout)
        }
        if let answer = try await self.cluster.emitWithAck(
            event,
            arguments: arguments,
            sid: sid,
            namespace: namespace,
            timeout: timeout
        ) {
            return answer
        }
        throw SocketAckError(code: .notConnected, event: event, sid: sid, namespace: namespace)
    }

    /// Writes a volatile event to the addressed local clients that can take it now; drops it for the others.
    private func deliverVolatile(
        _ event: String,
        arguments: [JSONValue],
        target: EmitTarget,
        _ options: EmitOptions,
        _ outgoing: OutgoingEvent?
    ) async -> Int {
        let message = SocketIOWire.event(namespace: options.namespace, event: event, arguments: arguments, ackID: nil)
        let rooms = target.roomNames
        let (namespace, excluding, metrics) = (options.namespace, options.excluding, self.metrics)
        return await self.onEveryShard { shard in
            var dropped = 0
            let delivered = shard.deliver(
                message,
                namespace: namespace,
                rooms: rooms,
                excluding: excluding,
                outgoing: outgoing
            ) { connection in
                if connection.client.session.canTakeMessageNow { return true }
                dropped += 1
                return false
            }
            if dropped > 0 { metrics.volatileDropped.increment(by: Int64(dropped)) }
            return delivered
        }
    }

    /// Logs the event for connection state recovery (with its offset appended) and writes it to the addressed local
    /// clients, one task per event loop.
    private func deliverLogged(
        _ event: String,
        arguments: [JSONValue],
        _ recovery: ConnectionRecovery,
        target: EmitTarget,
        _ options: EmitOptions,
        _ outgoing: OutgoingEvent?
    ) async -> Int {
        let rooms = target.roomNames
        let (namespace, excluding) = (options.namespace, options.excluding)
        let (message, counter) = recovery.logEvent(
            event,
            arguments: arguments,
            namespace: namespace,
            rooms: rooms,
            excluding: excluding
        )
        return await self.onEveryShard { shard in
            shard.deliver(message, namespace: namespace, rooms: rooms, excluding: excluding, outgoing: outgoing) {
                $0.replayedThrough < counter
            }
        }
    }

    /// Writes `message` to the addressed local clients: one task per event loop, all started before any is awaited.
    func deliver(
        _ message: EngineIOOutboundMessage,
        namespace: String,
        rooms: [String]?,
        excluding: Set<String>,
        outgoing: OutgoingEvent? = nil
    ) async -> Int {
        await self.onEveryShard { shard in
            shard.deliver(message, namespace: namespace, rooms: rooms, excluding: excluding, outgoing: outgoing)
        }
    }

    /// Runs `body` on every shard's event loop, all started before any is awaited (on the only shard's loop
    /// directly when there is one), and sums what they return.
    private func onEveryShard(_ body: @escaping @Sendable (RoomShard) -> Int) async -> Int {
        let shards = self.shards.all
        if shards.count == 1 {
            return await shards[0].run(body) ?? 0
        }
        var futures: [EventLoopFuture<Int>] = []
        futures.reserveCapacity(shards.count)
        for shard in shards {
            futures.append(shard.eventLoop.submit { body(shard) })
        }
        var total = 0
        for future in futures {
            total += (try? await future.get()) ?? 0
        }
        return total
    }
}
