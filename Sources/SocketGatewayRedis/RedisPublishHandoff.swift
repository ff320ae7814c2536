import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Hands publishes from any thread to a `RedisPublisher`'s event loop, in batches: one lock and one copy per
/// publish, one `execute` per burst rather than per message.
///
/// Each publish is framed as a RESP `PUBLISH` straight into one growing buffer (`bytes`); the loop takes the
/// buffer and the entries describing it in one swap (`withNextBatch`), and can write the bytes to the socket as
/// they are. A payload built by a closure is encoded first into a buffer the calling thread reuses, outside the
/// lock, so the lock is held only for the copy and the loop taking a batch rarely waits for a caller. Written
/// batches' buffers come back (`recycle`) for the next batches, and the next batch starts as large as the last
/// one grew: no page faults or heap trimming per batch.
final class RedisPublishHandoff: @unchecked Sendable {
    /// One publish in a batch: its payload sits in the batch's bytes at `payloadOffset`.
    struct Entry {
        var payloadOffset: Int
        var payloadLength: Int
        /// Whom to tell what became of it; `nil` for fire-and-forget.
        var completion: PublishCallback?
        /// When set, `completion` is told `.timedOut` then unless told something before.
        var deadline: NIODeadline?
        /// The channel it is published to; `nil`: the handoff's channel.
        var channel: String?
    }

    /// `*3\r\n$7\r\nPUBLISH\r\n$<n>\r\n<channel>\r\n$`: what every framed publish starts with.
    private let publishPrefix: [UInt8]
    private let lock = NIOLock()
    /// Guarded by `lock`: the framed commands of `entries`, back to back.
    private var bytes: ByteBuffer?
    /// Guarded by `lock`.
    private var entries: [Entry] = []
    /// Guarded by `lock`: the capacity the last batch reached.
    private var capacityHint = 0
    /// Guarded by `lock`: written batches' buffers, emptied, for the next batches.
    private var spareBatches: [ByteBuffer] = []
    /// Guarded by `lock`: the loop has been asked to take a batch and has not taken it yet.
    private var takeScheduled = false
    /// Confined to the loop: the entries array the last `withNextBatch` emptied, reused for its capacity.
    private var spareEntries: [Entry] = []

    /// Per thread: the buffer a payload is encoded into before it is framed into `bytes`, reused.
    private static let scratch = ThreadSpecificVariable<PayloadScratch>()

    /// Creates a handoff for publishes to `channel`.
    init(channel: String) {
        var prefix = ByteBuffer()
        RESPCommand.writePublishPrefix(channel: channel, into: &prefix)
        self.publishPrefix = Array(prefix.readableBytesView)
    }

    /// Frames the bytes `writePayload` appends as a `PUBLISH` (any thread).
    /// - Returns: Whether the caller must schedule `withNextBatch` on the loop (no take is pending yet).
    func hand(
        _ completion: PublishCallback?,
        deadline: NIODeadline?,
        channel: String? = nil,
        writePayload: (inout ByteBuffer) -> Void
    ) -> Bool {
        let scratch: PayloadScratch
        if let existing = Self.scratch.currentValue {
            scratch = existing
        } else {
            scratch = PayloadScratch()
            Self.scratch.currentValue = scratch
        }
        var payload = scratch.buffer.take() ?? ByteBufferAllocator().buffer(capacity: 1024)
        payload.clear()
        writePayload(&payload)
        let schedule = payload.withUnsafeReadableBytes {
            self.hand(completion, deadline: deadline, channel: channel, payload: $0)
        }
        // Big payloads are not kept per thread.
        if payload.capacity <= 64 * 1024 { scratch.buffer = payload }
        return schedule
    }

    /// Copies `payload`, framed as a `PUBLISH` to `channel` (`nil`: the handoff's), into the next batch (any
    /// thread).
    /// - Returns: Whether the caller must schedule `withNextBatch` on the loop (no take is pending yet).
    func hand(
        _ completion: PublishCallback?,
        deadline: NIODeadline?,
        channel: String? = nil,
        payload: UnsafeRawBufferPointer
    ) -> Bool {
        var prefixBytes = self.publishPrefix
        if let channel {
            var prefix = ByteBuffer()
            RESPCommand.writePublishPrefix(channel: channel, into: &prefix)
            prefixBytes = Array(prefix.readableBytesView)
        }
        return self.lock.withLock { () -> Bool in
            var bytes =
                self.bytes.take() ?? self.spareBatches.popLast()
                ?? ByteBufferAllocator().buffer(capacity: max(16 * 1024, self.capacityHint))
            let payloadOffset = prefixBytes.withUnsafeBytes { prefix in
                RESPCommand.writePublish(prefix: prefix, payload: payload, into: &bytes)
            }
            self.bytes = bytes
            self.entries.append(
                Entry(
                    payloadOffset: payloadOffset,
                    payloadLength: payload.count,
                    completion: completion,
                    deadline: deadline,
                    channel: channel
                )
            )
            if self.takeScheduled { return false }
            self.takeScheduled = true
            return true
        }
    }

    /// Takes what was handed over since the last call, in call order, and gives it to `body` (on the loop): the
    /// framed bytes and one entry per publish. Does nothing when nothing was handed over.
    func withNextBatch(_ body: (ByteBuffer, [Entry]) -> Void) {
        // Moved out, so that `entries` owns the storage alone after the swap and appends do not copy it.
        var batch = self.spareEntries
        self.spareEntries = []
        let taken = self.lock.withLock { () -> ByteBuffer? in
            swap(&batch, &self.entries)
            self.takeScheduled = false
            let bytes = self.bytes.take()
            // The next batch starts as large as this one grew, rather than growing (and copying) again.
            if let bytes { self.capacityHint = min(bytes.capacity, 1 << 20) }
            return bytes
        }
        if let bytes = taken, !batch.isEmpty {
            body(bytes, batch)
        }
        batch.removeAll(keepingCapacity: true)
        self.spareEntries = batch
    }

    /// Keeps a written batch's buffer for the next batch (on the loop, once the write completed).
    func recycle(_ bytes: ByteBuffer) {
        guard bytes.capacity <= 1 << 20 else { return }  // a batch that held a huge message: let it go
        var bytes = bytes
        bytes.clear()
        self.lock.withLock {
            if self.spareBatches.count < 2 { self.spareBatches.append(bytes) }
        }
    }
}

/// A thread's reusable payload buffer (only ever touched by that thread).
private final class PayloadScratch: @unchecked Sendable {
    var buffer: ByteBuffer?
}
