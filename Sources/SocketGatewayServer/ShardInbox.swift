import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayEngineIO

/// What a message from another host asks one shard to do.
enum ShardOperation: @unchecked Sendable {
    /// Write an encoded event to the addressed connections of the shard.
    case deliver(EngineIOOutboundMessage, namespace: String, rooms: [String]?, excluding: Set<String>)
    case join(SocketConnection, room: String)
    case leave(SocketConnection, room: String)
    case disconnect(SocketConnection)
    case closeRoom(String, namespace: String)
    /// Anything else (rare: emits that ask for a callback).
    case run(@Sendable (RoomShard) -> Void)
}

/// The operations from other hosts for one shard, applied on the shard's event loop in the order they were added.
///
/// Filled from the Redis subscriber's loop without waiting: an operation is appended under a lock, and the first
/// one of a burst schedules a single `execute` that applies everything queued by then. So a message costs no
/// task, no continuation and no thread hop of its own, and the order of emits and room changes is kept per shard.
final class ShardInbox: @unchecked Sendable {
    let shard: RoomShard
    private let lock = NIOLock()
    /// Guarded by `lock`.
    private var pending: [ShardOperation] = []
    /// Guarded by `lock`: a drain is scheduled and has not yet taken `pending`.
    private var scheduled = false
    /// Confined to the shard's loop: the array the last drain emptied, reused to keep its capacity.
    private var spare: [ShardOperation] = []
    /// Called on the shard's loop after each drain with the number of connections written to.
    private let onDelivered: @Sendable (Int) -> Void

    init(shard: RoomShard, onDelivered: @escaping @Sendable (Int) -> Void) {
        self.shard = shard
        self.onDelivered = onDelivered
    }

    /// Queues `operation` after every operation queued before it.
    func append(_ operation: ShardOperation) {
        let schedule = self.lock.withLock { () -> Bool in
            self.pending.append(operation)
            if self.scheduled { return false }
            self.scheduled = true
            return true
        }
        if schedule {
            self.shard.eventLoop.execute { self.drain() }
        }
    }

    /// Applies what is queued (on the shard's loop).
    private func drain() {
        var batch = self.spare
        self.lock.withLock {
            swap(&batch, &self.pending)
            self.scheduled = false
        }
        let shard = self.shard
        var delivered = 0
        for operation in batch {
            switch operation {
            case .deliver(let message, let namespace, let rooms, let excluding):
                delivered += shard.deliver(message, namespace: namespace, rooms: rooms, excluding: excluding)
            case .join(let connection, let room):
                shard.join(connection, room: room)
            case .leave(let connection, let room):
                shard.leave(connection, room: room)
            case .disconnect(let connection):
                connection.client.serverDisconnect(connection)
            case .closeRoom(let room, let namespace):
                _ = shard.close(room: room, namespace: namespace)
            case .run(let body):
                body(shard)
            }
        }
        batch.removeAll(keepingCapacity: true)
        self.spare = batch
        if delivered > 0 { self.onDelivered(delivered) }
    }

    /// Waits until everything queued before this call has been applied (or the loop has shut down).
    func flush() async {
        try? await self.shard.eventLoop.submit {}.get()
    }
}
