/// What a connection's handler queue holds: events waiting for their handlers, counted and sized, against the
/// configured bounds. Pure; the connection keeps it behind a lock because events are admitted on the event loop
/// and started by the connection's handler task.
struct EventQueueBudget: Hashable, Sendable {
    /// The most events that may wait.
    let maxEvents: Int
    /// The most bytes (as received) that may wait; one event is admitted whatever its size when none waits.
    let maxBytes: Int
    /// Events waiting for their handlers (the one running is not counted).
    private(set) var queuedEvents = 0
    /// Their size as received, attachments included.
    private(set) var queuedBytes = 0
    /// Set when the connection was closed for exceeding the budget: waiting events are dropped, not handled.
    private(set) var isEvicted = false

    init(maxEvents: Int, maxBytes: Int) {
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
    }

    /// Admits an event of `bytes` unless the queue is full.
    /// - Returns: Whether it was admitted (and is now counted).
    mutating func admit(bytes: Int) -> Bool {
        guard !self.isEvicted else { return false }
        if self.queuedEvents > 0 {
            guard self.queuedEvents < self.maxEvents, bytes <= self.maxBytes - self.queuedBytes else { return false }
        }
        self.queuedEvents += 1
        self.queuedBytes += bytes
        return true
    }

    /// An admitted event of `bytes` leaves the queue to run.
    /// - Returns: Whether to run its handlers (false once the connection was evicted).
    mutating func start(bytes: Int) -> Bool {
        self.queuedEvents -= 1
        self.queuedBytes -= bytes
        return !self.isEvicted
    }

    /// The connection is being closed for exceeding the budget: what waits is dropped, nothing more is admitted.
    mutating func evict() {
        self.isEvicted = true
    }
}
