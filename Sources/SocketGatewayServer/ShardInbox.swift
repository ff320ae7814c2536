import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayEngineIO

/// What a message from another host asks one shard to do.
enum ShardOperation: @unchecked Sendable {
    /// Write an encoded event to the addressed connections of the shard.
    case deliver(EngineIOOutboundMessage, namespace: String, rooms: [String]?, excluding: Set<String>)
    /// A remote `enter_room`. Its router added a count for the room on this shard to ``LocalRoomPresence`` when
    /// it queued the join, so that emits read after it come here too; applying the join gives it back.
    case join(SocketConnection, room: String)
    case leave(SocketConnection, room: String)
    case disconnect(SocketConnection)
    case closeRoom(String, namespace: String)
    /// Anything else (rare: emits that ask for a callback).
    case run(@Sendable (RoomShard) -> Void)
}

/// Tells the Redis subscriber to stop reading while any shard's inbox is behind, and to resume once every inbox
/// has caught up: the work read from Redis is paced by what the event loops can apply, instead of queueing without
/// bound (python-socketio gets the same effect by awaiting each message).
final class InboxBackpressure: Sendable {
    /// An inbox holding more than this many operations, or `maxQueuedBytes` of encoded events, is behind.
    let maxQueuedOperations: Int
    /// See `maxQueuedOperations`.
    let maxQueuedBytes: Int
    private let behind = NIOLockedValueBox(0)
    private let onChange: @Sendable (InboxBackpressure) -> Void

    /// - Parameters:
    ///   - onChange: Called (from any thread) when the number of inboxes that are behind goes from 0 to 1 or
    ///     back; read ``isBehind`` for the current state.
    init(maxQueuedOperations: Int, maxQueuedBytes: Int, onChange: @escaping @Sendable (InboxBackpressure) -> Void) {
        self.maxQueuedOperations = max(1, maxQueuedOperations)
        self.maxQueuedBytes = max(1, maxQueuedBytes)
        self.onChange = onChange
    }

    /// Whether any inbox is behind now.
    var isBehind: Bool { self.behind.withLockedValue { $0 > 0 } }

    fileprivate func inbox(isBehind: Bool) {
        let changed = self.behind.withLockedValue { count -> Bool in
            count += isBehind ? 1 : -1
            return isBehind ? count == 1 : count == 0
        }
        if changed { self.onChange(self) }
    }
}

/// The operations from other hosts for one shard, applied on the shard's event loop in the order they were added.
///
/// Filled from the Redis subscriber's loop without waiting: an operation is appended under a lock, and the first
/// one of a burst schedules a single `execute` that applies everything queued by then. So a message costs no
/// task, no continuation and no thread hop of its own, and the order of emits and room changes is kept per shard.
/// With an ``InboxBackpressure``, an inbox that holds more than its limits reports itself behind (the subscriber
/// stops reading) until a drain leaves it at half of them.
final class ShardInbox: @unchecked Sendable {
    let shard: RoomShard
    private let lock = NIOLock()
    /// Guarded by `lock`.
    private var pending: [ShardOperation] = []
    /// Guarded by `lock`: the encoded bytes of the events in `pending`.
    private var pendingBytes = 0
    /// Guarded by `lock`: this inbox has told `backpressure` it is behind.
    private var isBehind = false
    private let backpressure: InboxBackpressure?
    /// Guarded by `lock`: the loop whose task hands drains over to the shard's loop (see `append`), once there
    /// has been one.
    private var handoffLoop: (any EventLoop)?
    /// Guarded by `lock`: a drain is scheduled and has not yet taken `pending`.
    private var scheduled = false
    /// Confined to the shard's loop: the array the last drain emptied, reused to keep its capacity.
    private var spare: [ShardOperation] = []
    /// Called on the shard's loop after each drain with the number of connections written to.
    private let onDelivered: @Sendable (Int) -> Void

    init(
        shard: RoomShard,
        backpressure: InboxBackpressure? = nil,
        onDelivered: @escaping @Sendable (Int) -> Void
    ) {
        self.shard = shard
        self.backpressure = backpressure
        self.onDelivered = onDelivered
    }

    private static func size(of operation: ShardOperation) -> Int {
        guard case .deliver(let message, _, _, _) = operation else { return 0 }
        return message.textPayload.readableBytes + message.webSocketFrames.readableBytes
    }

    /// Queues `operation` after every operation queued before it.
    ///
    /// Called on an event loop (the Redis subscriber's), the drain is handed to the shard's loop by a task on the
    /// caller's loop, which runs once the caller is done with what it read: every message of one read reaches a
    /// shard in one hop (one wake-up of its thread), not one hop per message. Called off any event loop, the
    /// drain is scheduled at once.
    func append(_ operation: ShardOperation) {
        let size = self.backpressure == nil ? 0 : Self.size(of: operation)
        let (schedule, becameBehind) = self.lock.withLock { () -> (Bool, Bool) in
            self.pending.append(operation)
            var becameBehind = false
            if let backpressure = self.backpressure {
                self.pendingBytes += size
                if !self.isBehind,
                    self.pending.count > backpressure.maxQueuedOperations
                        || self.pendingBytes > backpressure.maxQueuedBytes
                {
                    self.isBehind = true
                    becameBehind = true
                }
            }
            if self.scheduled { return (false, becameBehind) }
            self.scheduled = true
            return (true, becameBehind)
        }
        if becameBehind { self.backpressure?.inbox(isBehind: true) }
        guard schedule else { return }
        if let callerLoop = MultiThreadedEventLoopGroup.currentEventLoop, callerLoop !== self.shard.eventLoop {
            self.lock.withLock { self.handoffLoop = callerLoop }
            callerLoop.execute { self.shard.eventLoop.execute { self.drain() } }
        } else {
            self.shard.eventLoop.execute { self.drain() }
        }
    }

    /// Applies what is queued (on the shard's loop).
    private func drain() {
        var batch = self.spare
        self.lock.withLock {
            swap(&batch, &self.pending)
            self.pendingBytes = 0
            self.scheduled = false
        }
        let shard = self.shard
        var delivered = 0
        for operation in batch {
            switch operation {
            case .deliver(let message, let namespace, let rooms, let excluding):
                delivered += shard.deliver(
                    message,
                    namespace: namespace,
                    rooms: rooms,
                    excluding: excluding,
                    flushingIn: shard.flushBatch
                )
            case .join(let connection, let room):
                shard.applyRemoteJoin(connection, room: room)
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
        // One flush per session written to, after the whole batch (in the order the sessions were first written).
        shard.flushBatch.flush()
        batch.removeAll(keepingCapacity: true)
        self.spare = batch
        if delivered > 0 { self.onDelivered(delivered) }
        if let backpressure = self.backpressure {
            // What arrived while this batch was applied is in `pending` (its drain is scheduled): caught up when it
            // is at most half of the limits.
            let caughtUp = self.lock.withLock { () -> Bool in
                guard self.isBehind, self.pending.count <= backpressure.maxQueuedOperations / 2,
                    self.pendingBytes <= backpressure.maxQueuedBytes / 2
                else { return false }
                self.isBehind = false
                return true
            }
            if caughtUp { backpressure.inbox(isBehind: false) }
        }
    }

    /// Waits until everything queued before this call has been applied (or the loop has shut down).
    func flush() async {
        // A handoff still waiting on the caller's loop schedules its drain before this task runs.
        if let handoff = self.lock.withLock({ self.handoffLoop }) {
            try? await handoff.submit {}.get()
        }
        try? await self.shard.eventLoop.submit {}.get()
    }
}
