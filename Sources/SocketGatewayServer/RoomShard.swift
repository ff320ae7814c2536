import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayEngineIO

/// The room indexes of the connections on one event loop, touched only on that loop, so an emit takes no lock.
///
/// Every time a namespace or a room gets its first member on this shard, or loses its last, the shard tells the
/// server-wide ``LocalRoomPresence`` (under its lock): messages from other hosts for rooms with no member here
/// are dropped on the subscriber's thread, and the others reach only the shards that have members.
final class RoomShard: @unchecked Sendable {
    let eventLoop: any EventLoop
    /// This shard's position in ``RoomShards/all``: its index in `presence`.
    let index: Int
    /// Which shards have members of which rooms, shared by every shard of the server.
    let presence: LocalRoomPresence
    /// Confined to `eventLoop`: the sessions written to by deliveries not yet flushed (see ``EngineIOFlushBatch``).
    let flushBatch = EngineIOFlushBatch()
    /// namespace → its room index on this loop.
    private var namespaces: [String: RoomIndex<SocketConnection>] = [:]

    init(eventLoop: any EventLoop, index: Int = 0, presence: LocalRoomPresence = LocalRoomPresence()) {
        self.eventLoop = eventLoop
        self.index = index
        self.presence = presence
    }

    /// Runs `body` on this shard's loop and returns its result, or nil when the loop has shut down.
    @discardableResult
    func run<Result: Sendable>(_ body: @escaping @Sendable (RoomShard) -> Result) async -> Result? {
        if self.eventLoop.inEventLoop { return body(self) }
        return try? await self.eventLoop.submit { body(self) }.get()
    }

    func add(_ connection: SocketConnection) {
        self.eventLoop.assertInEventLoop()
        if self.namespaces[connection.namespace] == nil {
            self.presence.add(namespace: connection.namespace, room: nil, shard: self.index)
        }
        self.namespaces[connection.namespace, default: RoomIndex()].add(connection.id, connection)
    }

    @discardableResult
    func join(_ connection: SocketConnection, room: String) -> Bool {
        self.eventLoop.assertInEventLoop()
        let isNew = self.namespaces[connection.namespace]?.hasMembers(in: room) == false
        guard self.namespaces[connection.namespace]?.join(connection.id, room: room) == true else { return false }
        if isNew {
            self.presence.add(
                namespace: connection.namespace,
                room: room,
                shard: self.index,
                isSessionRoom: room == connection.id
            )
        }
        return true
    }

    @discardableResult
    func leave(_ connection: SocketConnection, room: String) -> Bool {
        self.eventLoop.assertInEventLoop()
        guard self.namespaces[connection.namespace]?.leave(connection.id, room: room) == true else { return false }
        if self.namespaces[connection.namespace]?.hasMembers(in: room) == false {
            self.presence.remove(
                namespace: connection.namespace,
                room: room,
                shard: self.index,
                isSessionRoom: room == connection.id
            )
        }
        return true
    }

    func rooms(of connection: SocketConnection) -> Set<String> {
        self.eventLoop.assertInEventLoop()
        return self.namespaces[connection.namespace]?.rooms(of: connection.id) ?? []
    }

    /// Removes every member of `room` in `namespace`; returns how many there were.
    func close(room: String, namespace: String) -> Int {
        self.eventLoop.assertInEventLoop()
        guard let removed = self.namespaces[namespace]?.close(room: room), !removed.isEmpty else { return 0 }
        self.presence.remove(namespace: namespace, room: room, shard: self.index, isSessionRoom: removed == [room])
        return removed.count
    }

    func remove(_ connection: SocketConnection) {
        self.eventLoop.assertInEventLoop()
        let namespace = connection.namespace
        guard var index = self.namespaces.removeValue(forKey: namespace) else { return }
        // Only remove the exact connection (a sid is unique, but be strict).
        if let member = index.members[connection.id], member === connection {
            index.remove(connection.id) { room in
                self.presence.remove(
                    namespace: namespace,
                    room: room,
                    shard: self.index,
                    isSessionRoom: room == connection.id
                )
            }
        }
        if index.count > 0 {
            self.namespaces[namespace] = index
        } else {
            self.presence.remove(namespace: namespace, room: nil, shard: self.index)
        }
    }

    /// Puts `connection` into `room` for a remote `enter_room`, and gives back the count its router added to
    /// `presence` when it queued the join (see ``ShardOperation/join(_:room:)``).
    func applyRemoteJoin(_ connection: SocketConnection, room: String) {
        self.join(connection, room: room)
        self.presence.remove(namespace: connection.namespace, room: room, shard: self.index)
    }

    /// The addressed connections on this loop (for emits that need one ack per recipient).
    func recipients(namespace: String, rooms: [String]?, excluding: Set<String>) -> [SocketConnection] {
        self.eventLoop.assertInEventLoop()
        guard let index = self.namespaces[namespace] else { return [] }
        var found: [SocketConnection] = []
        index.forEachRecipient(rooms: rooms, excluding: excluding) { found.append($0) }
        return found
    }

    /// Writes `message` to every addressed connection on this loop that `admits` (every one when nil), and
    /// flushes each of them once. A volatile emit admits the connections that can take it now; a recovery-logged
    /// one, those whose replay did not already carry it.
    /// - Returns: The number of connections written to.
    func deliver(
        _ message: EngineIOOutboundMessage,
        namespace: String,
        rooms: [String]?,
        excluding: Set<String>,
        outgoing: OutgoingEvent? = nil,
        admitting admits: ((SocketConnection) -> Bool)? = nil
    ) -> Int {
        let delivered = self.deliver(
            message,
            namespace: namespace,
            rooms: rooms,
            excluding: excluding,
            flushingIn: self.flushBatch,
            outgoing: outgoing,
            admitting: admits
        )
        self.flushBatch.flush()
        return delivered
    }

    /// Writes `message` to every addressed connection on this loop that `admits` (every one when nil), calling
    /// `outgoing`'s listeners for each; their flushes are left to `batch`.
    /// - Returns: The number of connections written to.
    func deliver(
        _ message: EngineIOOutboundMessage,
        namespace: String,
        rooms: [String]?,
        excluding: Set<String>,
        flushingIn batch: EngineIOFlushBatch,
        outgoing: OutgoingEvent? = nil,
        admitting admits: ((SocketConnection) -> Bool)? = nil
    ) -> Int {
        self.eventLoop.assertInEventLoop()
        guard let index = self.namespaces[namespace] else { return 0 }
        guard outgoing != nil || admits != nil else {
            // The common case: everyone addressed, nobody listening.
            return index.forEachRecipient(rooms: rooms, excluding: excluding) { connection in
                connection.client.session.send(message, flushingIn: batch)
            }
        }
        var delivered = 0
        index.forEachRecipient(rooms: rooms, excluding: excluding) { connection in
            if let admits, !admits(connection) { return }
            connection.client.session.send(message, flushingIn: batch)
            if let outgoing {
                SocketConnection.notify(outgoing.listeners, connection, outgoing.event, outgoing.arguments)
            }
            delivered += 1
        }
        return delivered
    }
}

/// An emitted event with the namespace's ``SocketNamespace/onAnyOutgoing(_:)`` listeners, called for each
/// connection it is written to.
struct OutgoingEvent: Sendable {
    var listeners: [SocketNamespace.OutgoingListener]
    var event: String
    var arguments: [JSONValue]
}

/// One `RoomShard` per event loop, and a directory of every local connection by session id.
final class RoomShards: Sendable {
    let all: [RoomShard]
    private let gate = NIOLockedValueBox<RoomJoinGate?>(nil)
    private let byLoop: [ObjectIdentifier: RoomShard]
    /// sid → connection, for emits and room changes addressed by sid from outside the connection's loop.
    private let directory = NIOLockedValueBox<[String: SocketConnection]>([:])

    /// Which shards have members of which rooms (kept by the shards).
    let presence: LocalRoomPresence
    /// Connection state recovery's sessions and packet log, when it is on.
    let recovery: ConnectionRecovery?

    init(
        eventLoopGroup: any EventLoopGroup,
        roomsGauge: Gauge? = nil,
        recovery: ConnectionStateRecoveryConfiguration? = nil
    ) {
        let presence = LocalRoomPresence(roomsGauge: roomsGauge)
        var all: [RoomShard] = []
        var byLoop: [ObjectIdentifier: RoomShard] = [:]
        for loop in eventLoopGroup.makeIterator() {
            let shard = RoomShard(eventLoop: loop, index: all.count, presence: presence)
            all.append(shard)
            byLoop[ObjectIdentifier(loop)] = shard
        }
        self.all = all
        self.byLoop = byLoop
        self.presence = presence
        let sweepLoop = eventLoopGroup.next()
        self.recovery = recovery.map { ConnectionRecovery(configuration: $0, presence: presence, sweepLoop: sweepLoop) }
    }

    /// Set by a cluster adapter whose joins must wait for the room's channel (room-channel mode); `nil` otherwise.
    var joinGate: RoomJoinGate? {
        get { self.gate.withLockedValue { $0 } }
        set { self.gate.withLockedValue { $0 = newValue } }
    }

    /// Joins `connection` to `room` on its loop, then, when a ``joinGate`` is set, waits (bounded) until the
    /// room's channel is active, so what is emitted to the room afterwards reaches the connection.
    /// - Returns: Whether the connection joined (false when it is gone).
    func joinAndWait(_ connection: SocketConnection, room: String) async -> Bool {
        let joined = await self.shard(for: connection.eventLoop).run { $0.join(connection, room: room) } ?? false
        guard joined, let gate = self.joinGate, room != connection.id else { return joined }
        let namespace = connection.namespace
        _ = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            gate.whenActive(namespace, room) { continuation.resume(returning: $0) }
        }
        return joined
    }

    /// The shard of `eventLoop`.
    func shard(for eventLoop: any EventLoop) -> RoomShard {
        guard let shard = self.byLoop[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("event loop \(eventLoop) is not one of the server's event loops")
        }
        return shard
    }

    /// Registers a new connection (on its loop): into the directory and its shard.
    func register(_ connection: SocketConnection) {
        self.directory.withLockedValue { $0[connection.id] = connection }
        self.shard(for: connection.eventLoop).add(connection)
    }

    /// Unregisters a connection that ended (on its loop): out of every room and the directory.
    func unregister(_ connection: SocketConnection) {
        self.shard(for: connection.eventLoop).remove(connection)
        self.directory.withLockedValue { directory in
            if directory[connection.id] === connection {
                directory.removeValue(forKey: connection.id)
            }
        }
    }

    /// The local connection with session id `sid` in `namespace`.
    func connection(sid: String, namespace: String) -> SocketConnection? {
        guard let connection = self.directory.withLockedValue({ $0[sid] }), connection.namespace == namespace else {
            return nil
        }
        return connection
    }
}
