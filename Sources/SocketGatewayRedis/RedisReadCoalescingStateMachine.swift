import NIOCore

/// Decides when a subscribed connection reads next, so that closely spaced messages are read in one `read(2)` and
/// handled in one wake-up instead of one each.
///
/// Redis writes every published message to a subscriber as it comes. Read at once, each costs the server a
/// wake-up and a system call, which at thousands of messages per second is most of the CPU a message that concerns
/// nobody here costs. So when a read finds its data soon after it was armed (less than `delay`: the connection is
/// busy), the next read is held for `delay`, and what arrives meanwhile waits in the socket and is read in one
/// go. When a read waited `delay` or more for its data (the connection was idle), the next one is armed at once:
/// a message after a quiet spell is read with no added latency, and a quiet connection costs no timer. Under load
/// a message waits at most `delay` longer than it would otherwise.
///
/// Inputs are the channel's read cycle as a handler sees it: `readRequested` (the channel asks for the next read,
/// the `read` event), `readCompleted` (`channelReadComplete`) and `deadlineReached` (the held read's timer). Time
/// is passed in. `RedisReadCoalescingHandler` does the I/O.
struct RedisReadCoalescingStateMachine: Sendable {
    /// What the handler does.
    enum Action: Equatable, Sendable {
        /// Pass the read on to the channel now.
        case read
        /// Hold the read: call `deadlineReached` at this deadline.
        case readAt(NIODeadline)
        /// Nothing to do.
        case nothing
    }

    private enum State: Equatable {
        /// A read is out with the channel since this time (armed; data not seen yet).
        case reading(since: NIODeadline)
        /// A read finished; the channel has not asked for the next one yet. `busy`: it found its data within
        /// `delay` of being armed.
        case betweenReads(busy: Bool)
        /// The channel asked for a read; it is held until the deadline.
        case holding(until: NIODeadline)
    }

    /// How long the next read is held after a busy read.
    let delay: TimeAmount
    private var state: State

    /// Creates a machine for a connection that is in the middle of a read cycle (the handler joins the pipeline
    /// when the subscription becomes ready, from a `channelRead`): its next read request is passed on at once.
    init(delay: TimeAmount) {
        precondition(delay > .zero, "a coalescing delay must be positive; 0 means no coalescing handler at all")
        self.delay = delay
        self.state = .betweenReads(busy: false)
    }

    /// Whether a read is held now (tests and diagnostics).
    var isHolding: Bool {
        if case .holding = self.state { return true }
        return false
    }

    /// The channel asks for the next read (after a read completed, or a resume after a pause).
    mutating func readRequested(now: NIODeadline) -> Action {
        switch self.state {
        case .reading:
            // Asked again while a read is out (a resume after a pause): passing it on is harmless, and the
            // connection's wait starts over.
            self.state = .reading(since: now)
            return .read
        case .betweenReads(busy: false):
            self.state = .reading(since: now)
            return .read
        case .betweenReads(busy: true):
            let deadline = now + self.delay
            self.state = .holding(until: deadline)
            return .readAt(deadline)
        case .holding:
            // The held read covers this request.
            return .nothing
        }
    }

    /// A read cycle finished (`channelReadComplete`).
    mutating func readCompleted(now: NIODeadline) -> Action {
        switch self.state {
        case .reading(let since):
            self.state = .betweenReads(busy: now - since < self.delay)
        case .betweenReads, .holding:
            // A read that the channel armed on its own (turning autoRead back on arms one without asking the
            // pipeline) finished: a held read stays held; between reads nothing changes.
            break
        }
        return .nothing
    }

    /// The held read's timer fired. `autoRead` is the channel's option now: while the consumer has paused reading
    /// (autoRead off) the held read is dropped, and the resume asks for a read again.
    mutating func deadlineReached(now: NIODeadline, autoRead: Bool) -> Action {
        guard case .holding(let until) = self.state else { return .nothing }
        guard autoRead else {
            self.state = .betweenReads(busy: false)
            return .nothing
        }
        // A timer does not fire early; should it, the read is held on until its deadline.
        guard now >= until else { return .readAt(until) }
        self.state = .reading(since: now)
        return .read
    }
}
