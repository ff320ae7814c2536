package import NIOCore

/// What a `RedisPublisher` does with the messages it was given: the queue, the messages in flight, the capacity,
/// the hold until subscribers return after an outage, per-message deadlines and the shutdown drain.
///
/// A pure value: every input takes `now`, and what the publisher must do (call completions, write payloads, arm a
/// timer, send `PUBSUB NUMSUB`) comes back as ``Actions``. It never reads the clock and does no I/O, so it is
/// tested at synthetic times. The connection itself (connect, handshake, backoff, reply timeout) is not its
/// business: the publisher tells it when the link becomes ready, fails or is lost.
///
/// Two modes, chosen by `outboxCapacity`:
/// - **outbox** (`outboxCapacity > 0`): while Redis is unreachable, messages wait (the oldest dropped on
///   overflow) and their completions are told `.queued`; messages in flight when the connection is lost go back
///   to the front of the queue, in order (at least once). After a reconnect the queue may be held until the
///   channel has as many subscribers as the last PUBLISH reached (see `subscriberWait`).
/// - **direct** (`outboxCapacity == 0`): messages wait only while a connection is being made (at most
///   `maxQueued`, beyond it refused with `.overloaded`); while Redis is unreachable they fail at once, and
///   messages in flight when the connection is lost fail.
///
/// `Completion` is whatever the publisher calls back (closures in the publisher, plain tags in tests).
package struct RedisOutbox<Completion> {
    /// The bounds and waits of an outbox.
    package struct Limits: Sendable, Hashable {
        /// The most PUBLISH commands written and not yet answered.
        package var maxInFlight: Int
        /// Outbox mode's capacity; 0 selects direct mode.
        package var outboxCapacity: Int
        /// Direct mode's bound on messages waiting for a connection or an in-flight slot.
        package var maxQueued: Int
        /// After a reconnect, how long the outbox waits for the subscribers to return; `.zero` sends at once.
        package var subscriberWait: TimeAmount
        /// How soon a `PUBSUB NUMSUB` that found too few subscribers is asked again.
        package var subscriberPollInterval: TimeAmount

        /// Creates limits.
        package init(
            maxInFlight: Int,
            outboxCapacity: Int,
            maxQueued: Int,
            subscriberWait: TimeAmount,
            subscriberPollInterval: TimeAmount = .milliseconds(25)
        ) {
            precondition(maxInFlight > 0 && maxQueued > 0 && outboxCapacity >= 0)
            self.maxInFlight = maxInFlight
            self.outboxCapacity = outboxCapacity
            self.maxQueued = maxQueued
            self.subscriberWait = subscriberWait
            self.subscriberPollInterval = subscriberPollInterval
        }
    }

    /// One message: its payload (kept only while it may have to be sent again) and whom to tell.
    package struct Entry {
        /// The payload, written as the last argument of `PUBLISH`.
        package var payload: ByteBuffer
        /// Told what became of the message; `nil` for fire-and-forget (or once told for good).
        package var completion: Completion?
        /// When set, `completion` is told `.timedOut` at this time unless it was told something before.
        package var deadline: NIODeadline?
        /// The channel to publish to; `nil`: the publisher's configured channel.
        package var channel: String?

        /// Creates an entry.
        package init(payload: ByteBuffer, completion: Completion?, deadline: NIODeadline? = nil, channel: String? = nil)
        {
            self.payload = payload
            self.completion = completion
            self.deadline = deadline
            self.channel = channel
        }
    }

    /// A message to frame as a `PUBLISH` and write.
    package struct Write {
        /// The channel; `nil`: the publisher's configured channel.
        package var channel: String?
        /// The payload.
        package var payload: ByteBuffer
    }

    /// A completion to call and what to tell it.
    package struct Report {
        /// Whom to tell.
        package var completion: Completion
        /// What to tell.
        package var outcome: PublishOutcome
    }

    /// When to send `PUBSUB NUMSUB` for the subscriber hold.
    package enum SubscriberCountRequest: Sendable, Hashable {
        /// Send it now (it is already counted in flight).
        case send
        /// Call `subscriberCountTimerFired(now:)` at this time.
        case sendAt(NIODeadline)
    }

    /// The hold was released with fewer subscribers than before the outage (its wait ran out).
    package struct ShortRelease: Sendable, Hashable {
        /// Subscribers now.
        package var subscribers: Int
        /// Subscribers the last PUBLISH before the outage reached.
        package var before: Int

        package init(subscribers: Int, before: Int) {
            self.subscribers = subscribers
            self.before = before
        }
    }

    /// What the publisher must do after an input, in this order: write, report, then the rest.
    package struct Actions {
        /// Messages now in flight, in order: frame each as a `PUBLISH` and write it.
        package var writes: [Write] = []
        /// Completions to call, in order.
        package var reports: [Report] = []
        /// Messages that failed (for the failure counter), whether or not they have a completion.
        package var failures = 0
        /// Messages dropped from the full outbox (counted and logged).
        package var dropped = 0
        /// Arm the deadline timer for this time; call `deadlineTimerFired(now:)` then.
        package var armDeadlineTimer: NIODeadline?
        /// Ask Redis how many subscribers the channel has.
        package var subscriberCount: SubscriberCountRequest?
        /// The hold was released short of subscribers (worth a warning).
        package var shortRelease: ShortRelease?
        /// The shutdown drain is over (all answered, or its deadline passed): close now.
        package var drainFinished = false

        package init() {}

        /// Records that `entry` failed with `error`.
        fileprivate mutating func fail(_ entry: Entry, with error: RedisError) {
            self.failures += 1
            if let completion = entry.completion {
                self.reports.append(Report(completion: completion, outcome: .progress(.failed(error))))
            }
        }

        /// Whether there is nothing to do.
        package var isEmpty: Bool {
            self.writes.isEmpty && self.reports.isEmpty && self.failures == 0 && self.dropped == 0
                && self.armDeadlineTimer == nil && self.subscriberCount == nil && self.shortRelease == nil
                && !self.drainFinished
        }
    }

    /// What a reply from Redis came to.
    package enum Reply {
        /// A PUBLISH was answered: tell `completion` (if any) `progress`. When `sendQueued` is set, a slot is free
        /// for what waits (or a shutdown waits for the drain): call `sendQueued(now:)`.
        case answered(PublishProgress, completion: Completion?, sendQueued: Bool)
        /// A `PUBSUB NUMSUB` was answered with this count: call `subscriberCountReceived(_:now:)`.
        case subscriberCount(Int)
        /// Nothing was waiting for a reply: the connection is out of step (drop it).
        case unexpected
    }

    /// What the fast path did with a batch.
    package enum DirectSend {
        /// Something waits before the batch (or the link is not ready, or in-flight slots are short): submit its
        /// messages one by one instead.
        case refused
        /// The batch is in flight: write its bytes as they are, and arm the deadline timer if given.
        case sent(armDeadlineTimer: NIODeadline?)
    }

    /// What the outbox knows of the connection.
    private enum Link {
        /// Not connected yet (idle, connecting or handshaking): messages wait without a word.
        case pending
        /// A connect failed and the next is not yet due: messages are queued (outbox) or fail (direct) at once.
        case unreachable(RedisError)
        /// Connected: messages are written.
        case ready
        /// Closed for good: messages fail.
        case shutdown
    }

    private enum InFlightKind {
        case publish(Entry)
        /// `PUBSUB NUMSUB channel`, asked while the outbox is held after a reconnect.
        case subscriberCount
    }

    private struct InFlight {
        var kind: InFlightKind
        var sentAt: NIODeadline
    }

    /// The bounds this outbox keeps.
    package let limits: Limits
    private let redactedURL: String
    private let channel: String
    private var link = Link.pending
    private var queue = CircularBuffer<Entry>()
    private var inFlight = CircularBuffer<InFlight>()
    /// Subscribers the last PUBLISH reached.
    private var lastSubscribers = 0
    /// Set while the queue is held after a reconnect, waiting for subscribers to come back (until this time).
    private var holdUntil: NIODeadline?
    /// A deadline timer is armed.
    private var deadlineTimerArmed = false
    /// Set once a shutdown waits for the drain: the earliest deadline asked for.
    private var drainDeadline: NIODeadline?
    /// Messages adopted from another outbox wait for subscribers when the link becomes ready, as after a reconnect.
    private var holdWhenReady = false

    /// Creates an empty outbox.
    /// - Parameters:
    ///   - limits: Bounds and waits.
    ///   - redactedURL: The server's URL with the password masked (named in errors).
    ///   - channel: The channel published to (named in errors).
    package init(limits: Limits, redactedURL: String, channel: String) {
        self.limits = limits
        self.redactedURL = redactedURL
        self.channel = channel
    }

    // MARK: - Reading

    /// Whether messages are held while Redis is unreachable (rather than failed).
    package var isOutboxMode: Bool { self.limits.outboxCapacity > 0 }

    /// Messages waiting to be written.
    package var queuedCount: Int { self.queue.count }

    /// Commands written and not yet answered.
    package var inFlightCount: Int { self.inFlight.count }

    /// Whether a connection is needed: messages wait, or a shutdown waits for the drain.
    package var wantsConnection: Bool { !self.queue.isEmpty || self.drainDeadline != nil }

    /// When the oldest unanswered command was written (for the publisher's reply timeout).
    package var oldestUnansweredSince: NIODeadline? { self.inFlight.first?.sentAt }

    /// Whether the queue is held until subscribers return.
    package var isHolding: Bool { self.holdUntil != nil }

    // MARK: - Messages

    /// Drops the oldest queued messages while the queue holds more than the outbox's capacity, failing their
    /// completions as `overloaded` and counting them.
    private mutating func dropOldestBeyondCapacity(_ actions: inout Actions) {
        while self.queue.count > self.limits.outboxCapacity {
            let dropped = self.queue.removeFirst()
            actions.dropped += 1
            if let completion = dropped.completion {
                let capacity = self.limits.outboxCapacity
                let error = self.error(.overloaded, "dropped from the full outbox (capacity \(capacity))")
                actions.reports.append(Report(completion: completion, outcome: .progress(.failed(error))))
            }
        }
    }

    /// The fast path: `count` new messages go into flight at once when the link is ready and nothing waits
    /// before them; their bytes are then written as they were framed.
    /// - Parameters:
    ///   - count: How many messages the batch holds.
    ///   - now: The time they are written.
    ///   - entry: The batch's message at an index (called once per index, in order, only when sent).
    package mutating func sendDirectly(count: Int, now: NIODeadline, entry: (Int) -> Entry) -> DirectSend {
        guard case .ready = self.link, self.queue.isEmpty, self.holdUntil == nil,
            self.inFlight.count + count <= self.limits.maxInFlight
        else { return .refused }
        var arm: NIODeadline?
        for index in 0..<count {
            let entry = entry(index)
            if !self.deadlineTimerArmed, let deadline = entry.deadline {
                self.deadlineTimerArmed = true
                arm = deadline
            }
            self.inFlight.append(InFlight(kind: .publish(entry), sentAt: now))
        }
        return .sent(armDeadlineTimer: arm)
    }

    /// A new message: written, queued, or told at once what became of it.
    package mutating func submit(_ entry: Entry, now: NIODeadline) -> Actions {
        var actions = Actions()
        switch self.link {
        case .shutdown:
            if let completion = entry.completion {
                let error = self.error(.shutdown, "the publisher was shut down")
                actions.reports.append(Report(completion: completion, outcome: .progress(.failed(error))))
            }
        case .ready:
            if self.queue.isEmpty && self.holdUntil == nil && self.inFlight.count < self.limits.maxInFlight {
                self.armDeadlineTimer(for: entry, &actions)
                self.inFlight.append(InFlight(kind: .publish(entry), sentAt: now))
                actions.writes.append(Write(channel: entry.channel, payload: entry.payload))
            } else {
                self.enqueue(entry, &actions)
            }
        case .pending:
            self.enqueue(entry, &actions)
        case .unreachable(let lastError):
            if self.isOutboxMode {
                var entry = entry
                let completion = entry.completion
                entry.completion = nil
                entry.deadline = nil
                if self.enqueue(entry, &actions), let completion {
                    let outcome = PublishOutcome.progress(.queued(reason: lastError.message))
                    actions.reports.append(Report(completion: completion, outcome: outcome))
                }
            } else {
                actions.failures += 1
                if let completion = entry.completion {
                    actions.reports.append(Report(completion: completion, outcome: .progress(.failed(lastError))))
                }
            }
        }
        return actions
    }

    /// A reply from Redis, matched to the oldest command in flight.
    ///
    /// What a reply means does not depend on the time, so this input takes none (the hot path reads no clock);
    /// what follows does, and comes through `sendQueued(now:)` or `subscriberCountReceived(_:now:)`.
    package mutating func replyReceived(_ value: RESPValue) -> Reply {
        guard let sent = self.inFlight.popFirst() else { return .unexpected }
        switch sent.kind {
        case .subscriberCount:
            var count = 0
            if case .array(let items) = value, items.count == 2, case .integer(let number) = items[1] {
                count = Int(number)
            }
            return .subscriberCount(count)
        case .publish(let entry):
            let progress: PublishProgress
            switch value {
            case .integer(let subscribers):
                self.lastSubscribers = Int(subscribers)
                progress = .published(subscribers: Int(subscribers))
            case .error(let message):
                progress = .failed(self.error(.commandFailed, "Redis refused PUBLISH: \(message)"))
            default:
                progress = .failed(self.error(.protocolError, "unexpected reply to PUBLISH: \(value)"))
            }
            let sendQueued = !self.queue.isEmpty || self.drainDeadline != nil
            return .answered(progress, completion: entry.completion, sendQueued: sendQueued)
        }
    }

    /// Writes what waits, as far as in-flight slots allow, unless the link is down or the queue held; ends a
    /// shutdown's drain when all is answered.
    package mutating func sendQueued(now: NIODeadline) -> Actions {
        var actions = Actions()
        self.sendQueued(now: now, &actions)
        return actions
    }

    /// The answer to `PUBSUB NUMSUB` while the queue is held: release it when as many subscribers as before are
    /// back (or the wait ran out, or a shutdown waits), else ask again shortly.
    package mutating func subscriberCountReceived(_ count: Int, now: NIODeadline) -> Actions {
        var actions = Actions()
        guard let until = self.holdUntil, case .ready = self.link else { return actions }
        let expired = now >= until || self.drainDeadline != nil
        if count >= self.lastSubscribers || expired {
            if count < self.lastSubscribers {
                actions.shortRelease = ShortRelease(subscribers: count, before: self.lastSubscribers)
            }
            self.holdUntil = nil
            self.sendQueued(now: now, &actions)
            return actions
        }
        actions.subscriberCount = .sendAt(now + self.limits.subscriberPollInterval)
        return actions
    }

    /// The deadline timer fired: every message whose deadline passed is told `.timedOut` (and nothing more).
    ///
    /// Deadlines come in the order messages are submitted (every timed publish of a gateway has the same
    /// timeout), so one timer at a time, for the oldest unanswered one, expires them all.
    package mutating func deadlineTimerFired(now: NIODeadline) -> Actions {
        self.deadlineTimerArmed = false
        var actions = Actions()
        var next: NIODeadline?
        /// Expires `entry` if due; returns false at the first timed entry not yet due.
        func visit(_ entry: inout Entry) -> Bool {
            guard let deadline = entry.deadline, let completion = entry.completion else { return true }
            if deadline > now {
                next = deadline
                return false
            }
            entry.completion = nil
            entry.deadline = nil
            actions.reports.append(Report(completion: completion, outcome: .timedOut))
            return true
        }
        var pending = true
        for index in self.inFlight.indices where pending {
            guard case .publish(var entry) = self.inFlight[index].kind else { continue }
            pending = visit(&entry)
            self.inFlight[index].kind = .publish(entry)
        }
        for index in self.queue.indices where pending {
            pending = visit(&self.queue[index])
        }
        if let next {
            self.deadlineTimerArmed = true
            actions.armDeadlineTimer = next
        }
        return actions
    }

    // MARK: - The connection

    /// A connection attempt is coming (the publisher connects, or will on the next message): messages wait for
    /// it without a word.
    package mutating func awaitingConnection() {
        if case .shutdown = self.link { return }
        self.link = .pending
    }

    /// The connection is ready (past AUTH/SELECT). After a reconnect, with subscribers to wait for, the queue is
    /// held and `PUBSUB NUMSUB` asked; otherwise what waits is written.
    /// - Parameter reconnected: Whether an earlier connection was ready before this one.
    package mutating func connectionReady(reconnected: Bool, now: NIODeadline) -> Actions {
        var actions = Actions()
        guard case .pending = self.link else { return actions }
        self.link = .ready
        let adopted = self.holdWhenReady
        self.holdWhenReady = false
        if reconnected || adopted, self.isOutboxMode, !self.queue.isEmpty, self.lastSubscribers > 0,
            self.limits.subscriberWait > .zero, self.drainDeadline == nil
        {
            self.holdUntil = now + self.limits.subscriberWait
            self.inFlight.append(InFlight(kind: .subscriberCount, sentAt: now))
            actions.subscriberCount = .send
            return actions
        }
        self.sendQueued(now: now, &actions)
        return actions
    }

    /// A connect (or its handshake) failed; the next attempt waits for the backoff. Outbox mode tells queued
    /// messages `.queued`; direct mode fails them.
    package mutating func connectFailed(_ error: RedisError, now: NIODeadline) -> Actions {
        var actions = Actions()
        if case .shutdown = self.link { return actions }
        self.link = .unreachable(error)
        self.holdUntil = nil
        self.inFlight.removeAll()
        if self.isOutboxMode {
            self.tellQueued(reason: error.message, &actions)
        } else {
            while let entry = self.queue.popFirst() {
                actions.fail(entry, with: error)
            }
        }
        self.checkDrain(now: now, &actions)
        return actions
    }

    /// A ready connection was lost. Outbox mode puts unanswered messages back at the front of the queue, in
    /// order, and tells them `.queued` (at least once); direct mode fails them.
    /// - Returns: The actions, and how many messages were unanswered.
    package mutating func connectionLost(_ error: RedisError, now: NIODeadline) -> (actions: Actions, unanswered: Int) {
        var actions = Actions()
        if case .shutdown = self.link { return (actions, 0) }
        self.holdUntil = nil
        var unanswered = CircularBuffer<Entry>()
        while let sent = self.inFlight.popFirst() {
            if case .publish(let entry) = sent.kind { unanswered.append(entry) }
        }
        let count = unanswered.count
        if self.isOutboxMode {
            self.link = .unreachable(error)
            let reason = "connection lost before Redis answered: \(error.message)"
            for index in unanswered.indices {
                if let completion = unanswered[index].completion {
                    actions.reports.append(Report(completion: completion, outcome: .progress(.queued(reason: reason))))
                }
                unanswered[index].completion = nil
                unanswered[index].deadline = nil
            }
            while let entry = unanswered.popLast() {
                self.queue.prepend(entry)
            }
            self.dropOldestBeyondCapacity(&actions)
        } else {
            self.link = .pending
            let failure =
                error.code == .timeout
                ? error
                : RedisError(
                    code: .connectionClosed,
                    message: "connection closed before Redis answered PUBLISH",
                    redactedURL: self.redactedURL,
                    command: "PUBLISH",
                    channel: self.channel,
                    underlying: error
                )
            for entry in unanswered {
                actions.fail(entry, with: failure)
            }
        }
        self.checkDrain(now: now, &actions)
        return (actions, count)
    }

    /// The subscriber-count poll timer fired: ask again if the queue is still held.
    package mutating func subscriberCountTimerFired(now: NIODeadline) -> Actions {
        var actions = Actions()
        guard self.holdUntil != nil, case .ready = self.link else { return actions }
        self.inFlight.append(InFlight(kind: .subscriberCount, sentAt: now))
        actions.subscriberCount = .send
        return actions
    }

    /// The periodic tick: ends a drain whose deadline passed.
    package mutating func tick(now: NIODeadline) -> Actions {
        var actions = Actions()
        self.checkDrain(now: now, &actions)
        return actions
    }

    // MARK: - Moving messages between outboxes (Redis Cluster)

    /// The oldest command in flight was answered with a redirection (a Redis Cluster's `MOVED` or `ASK`, or
    /// `TRYAGAIN`/`CLUSTERDOWN`): its message leaves this outbox, completion and deadline included, for the caller
    /// to send where it now belongs. Call `sendQueued(now:)` afterwards.
    /// - Returns: The message; `nil` when the oldest command in flight is not a publish (the connection is out of
    ///   step: drop it) or nothing is in flight.
    package mutating func replyRedirected() -> Entry? {
        guard let first = self.inFlight.first, case .publish(let entry) = first.kind else { return nil }
        self.inFlight.removeFirst()
        return entry
    }

    /// Takes every message out, for another outbox: the connection is gone for good (a Redis Cluster primary that
    /// lost its slots in a failover). Unanswered messages come first, then queued ones, in order, with whatever
    /// completion they still have (at least once: an unanswered one may have been published). The outbox is left
    /// empty and waiting for a connection.
    /// - Returns: The messages, and how many subscribers the last publish reached (for the adopter's hold).
    package mutating func evacuate() -> (entries: [Entry], subscribersBefore: Int) {
        var entries: [Entry] = []
        entries.reserveCapacity(self.inFlight.count + self.queue.count)
        while let sent = self.inFlight.popFirst() {
            if case .publish(let entry) = sent.kind { entries.append(entry) }
        }
        while let entry = self.queue.popFirst() {
            entries.append(entry)
        }
        if case .shutdown = self.link {} else { self.link = .pending }
        self.holdUntil = nil
        self.holdWhenReady = false
        let before = self.lastSubscribers
        self.lastSubscribers = 0
        return (entries, before)
    }

    /// Messages another outbox ``evacuate()``d join this one's queue, ahead of what waits here (they are older),
    /// within the capacity (the oldest dropped, as on any overflow). When the last publish through the other
    /// reached subscribers, they are waited for as after a reconnect (`subscriberWait`): at once when the link is
    /// ready, else when it becomes ready; an unreachable link tells the adopted messages `.queued`.
    /// - Parameters:
    ///   - entries: The messages, oldest first.
    ///   - subscribersBefore: How many subscribers the last publish through the other outbox reached.
    package mutating func adopt(_ entries: [Entry], subscribersBefore: Int, now: NIODeadline) -> Actions {
        var actions = Actions()
        guard !entries.isEmpty else { return actions }
        if case .shutdown = self.link {
            let error = self.error(.shutdown, "the publisher was shut down")
            for entry in entries { actions.fail(entry, with: error) }
            return actions
        }
        guard self.isOutboxMode else {
            for entry in entries {
                let submitted = self.submit(entry, now: now)
                Self.merge(&actions, submitted)
            }
            return actions
        }
        for entry in entries.reversed() { self.queue.prepend(entry) }
        self.dropOldestBeyondCapacity(&actions)
        for entry in entries where entry.completion != nil && entry.deadline != nil {
            self.armDeadlineTimer(for: entry, &actions)
            break
        }
        self.lastSubscribers = max(self.lastSubscribers, subscribersBefore)
        let hold = subscribersBefore > 0 && self.limits.subscriberWait > .zero && self.drainDeadline == nil
        switch self.link {
        case .ready:
            if hold, self.holdUntil == nil {
                self.holdUntil = now + self.limits.subscriberWait
                self.inFlight.append(InFlight(kind: .subscriberCount, sentAt: now))
                actions.subscriberCount = .send
            } else {
                self.sendQueued(now: now, &actions)
            }
        case .pending:
            self.holdWhenReady = self.holdWhenReady || hold
        case .unreachable(let error):
            self.holdWhenReady = self.holdWhenReady || hold
            self.tellQueued(reason: error.message, &actions)
        case .shutdown:
            break
        }
        return actions
    }

    // MARK: - Shutdown

    /// A shutdown waits until everything is answered or `deadline` passes (`drainFinished`). A held queue is
    /// released at once.
    package mutating func shutdownRequested(deadline: NIODeadline, now: NIODeadline) -> Actions {
        var actions = Actions()
        if case .shutdown = self.link {
            actions.drainFinished = true
            return actions
        }
        self.drainDeadline = min(self.drainDeadline ?? deadline, deadline)
        if self.holdUntil != nil {
            // Shutting down: send what is held now rather than wait for subscribers.
            self.holdUntil = nil
        }
        self.sendQueued(now: now, &actions)
        return actions
    }

    /// Closes for good: everything still queued or unanswered fails with `.shutdown`.
    /// - Returns: The actions, and how many messages were unsent.
    package mutating func close() -> (actions: Actions, unsent: Int) {
        var actions = Actions()
        self.link = .shutdown
        self.holdUntil = nil
        self.drainDeadline = nil
        let error = self.error(.shutdown, "the publisher was shut down before this message was sent")
        var unsent = 0
        while let sent = self.inFlight.popFirst() {
            if case .publish(let entry) = sent.kind {
                unsent += 1
                if let completion = entry.completion {
                    actions.reports.append(Report(completion: completion, outcome: .progress(.failed(error))))
                }
            }
        }
        while let entry = self.queue.popFirst() {
            unsent += 1
            if let completion = entry.completion {
                actions.reports.append(Report(completion: completion, outcome: .progress(.failed(error))))
            }
        }
        return (actions, unsent)
    }

    // MARK: - Private

    /// Writes what waits, as far as in-flight slots allow, when the link is ready and not held; then checks the
    /// drain.
    private mutating func sendQueued(now: NIODeadline, _ actions: inout Actions) {
        if case .ready = self.link, self.holdUntil == nil {
            while self.inFlight.count < self.limits.maxInFlight, let entry = self.queue.popFirst() {
                self.inFlight.append(InFlight(kind: .publish(entry), sentAt: now))
                actions.writes.append(Write(channel: entry.channel, payload: entry.payload))
            }
        }
        self.checkDrain(now: now, &actions)
    }

    /// Appends to the queue; on overflow drops the oldest (outbox mode) or refuses the new one (direct mode).
    @discardableResult
    private mutating func enqueue(_ entry: Entry, _ actions: inout Actions) -> Bool {
        let capacity = self.isOutboxMode ? self.limits.outboxCapacity : self.limits.maxQueued
        if self.queue.count >= capacity {
            if self.isOutboxMode {
                let dropped = self.queue.removeFirst()
                actions.dropped += 1
                if let completion = dropped.completion {
                    let error = self.error(.overloaded, "dropped from the full outbox (capacity \(capacity))")
                    actions.reports.append(Report(completion: completion, outcome: .progress(.failed(error))))
                }
            } else {
                actions.fail(entry, with: self.error(.overloaded, "\(capacity) messages already wait for Redis"))
                return false
            }
        }
        self.armDeadlineTimer(for: entry, &actions)
        self.queue.append(entry)
        return true
    }

    /// Appends `other` to `actions` (writes and reports in order; a timer or request already set stays).
    private static func merge(_ actions: inout Actions, _ other: Actions) {
        actions.writes += other.writes
        actions.reports += other.reports
        actions.failures += other.failures
        actions.dropped += other.dropped
        actions.armDeadlineTimer = actions.armDeadlineTimer ?? other.armDeadlineTimer
        actions.subscriberCount = actions.subscriberCount ?? other.subscriberCount
        actions.shortRelease = actions.shortRelease ?? other.shortRelease
        actions.drainFinished = actions.drainFinished || other.drainFinished
    }

    /// Tells every queued message that has a completion `.queued` (it is told nothing more).
    private mutating func tellQueued(reason: String, _ actions: inout Actions) {
        for index in self.queue.indices {
            guard let completion = self.queue[index].completion else { continue }
            self.queue[index].completion = nil
            self.queue[index].deadline = nil
            actions.reports.append(Report(completion: completion, outcome: .progress(.queued(reason: reason))))
        }
    }

    private mutating func armDeadlineTimer(for entry: Entry, _ actions: inout Actions) {
        guard !self.deadlineTimerArmed, let deadline = entry.deadline, entry.completion != nil else { return }
        self.deadlineTimerArmed = true
        actions.armDeadlineTimer = deadline
    }

    private func checkDrain(now: NIODeadline, _ actions: inout Actions) {
        guard let deadline = self.drainDeadline else { return }
        if (self.queue.isEmpty && self.inFlight.isEmpty) || deadline <= now {
            actions.drainFinished = true
        }
    }

    private func error(_ code: RedisError.Code, _ message: String) -> RedisError {
        RedisError(
            code: code,
            message: message,
            redactedURL: self.redactedURL,
            command: "PUBLISH",
            channel: self.channel
        )
    }
}

extension RedisOutbox.Entry: Sendable where Completion: Sendable {}
