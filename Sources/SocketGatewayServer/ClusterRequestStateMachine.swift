import NIOCore
import SocketGatewayCore

/// The cluster requests one server is waiting on (fetch sockets, sockets join/leave/disconnect, server-side emit,
/// server count): a pure value, fed with what Redis reports and the time, returning what to do.
///
/// A request is published once to every server's request channel; Redis' answer to the PUBLISH says how many
/// subscribers got it (this server included), which is how many answers to wait for. Each answer comes from one
/// server (its host id) on this server's own response channel. A request ends when every server that got it has
/// answered, at its deadline (with what did arrive), when it could not be published, or when it is cancelled.
///
/// Servers heard from lately (an answer, or a request of theirs) are remembered, at most `maxKnownServers` for
/// `knownServerLifetime` each, so that a request that ends incomplete can name the servers that did not answer,
/// not only count them.
struct ClusterRequestStateMachine: Sendable {
    /// The bounds.
    struct Limits: Sendable, Hashable {
        /// The most requests waiting at once; one more is refused (default 64).
        var maxPending = 64
        /// The most servers remembered by host id (default 256).
        var maxKnownServers = 256
        /// How long a server not heard from is still named among the missing (default 60 s).
        var knownServerLifetime = TimeAmount.seconds(60)
    }

    /// What one server answered.
    enum Reply: Sendable, Hashable {
        /// Its answer.
        case value(JSONValue)
        /// It refused or failed, for this reason (e.g. its answer was too large).
        case error(String)
    }

    /// Why a request ended.
    enum End: Sendable, Hashable {
        /// Every server that got it answered.
        case allAnswered
        /// Its deadline passed first.
        case timedOut
        /// It was not (or may not have been) published: no server got it.
        case notPublished(String)
        /// The caller stopped waiting.
        case cancelled
    }

    /// The result of one request.
    struct Outcome: Sendable, Hashable {
        var id: UInt64
        var end: End
        /// Each answering server's answer, by host id.
        var replies: [String: Reply]
        /// How many other servers Redis delivered it to (`nil`: not known).
        var expected: Int?
        /// How many of those did not answer (when `expected` is not known: the named ones).
        var unansweredCount: Int
        /// The servers heard from lately that did not answer.
        var unanswered: Set<String>
    }

    enum StartAction: Sendable, Hashable {
        /// Publish request `id`; call ``deadlinePassed(_:now:)`` at `deadline`.
        case publish(id: UInt64, deadline: NIODeadline)
        /// Too many requests wait already: refuse this one.
        case refuse(pending: Int)
    }

    enum Action: Sendable, Hashable {
        /// Nothing to do yet.
        case wait
        /// The request ended: hand the outcome to its caller.
        case finish(Outcome)
        /// An answer that belongs to no waiting request (late, after its deadline, or never asked), or a second
        /// answer from the same server: count it and drop it.
        case ignoreUnknown
        case ignoreDuplicate
    }

    private struct Pending: Sendable {
        var deadline: NIODeadline
        var expected: Int?
        var replies: [String: Reply] = [:]
    }

    let limits: Limits
    /// This server's host id (never counted or named among the others).
    let hostID: String
    private var pending: [UInt64: Pending] = [:]
    private var nextID: UInt64 = 1
    private var known: [String: NIODeadline] = [:]

    init(hostID: String, limits: Limits = Limits()) {
        self.hostID = hostID
        self.limits = limits
    }

    /// How many requests wait now.
    var pendingCount: Int { self.pending.count }

    /// The servers remembered now (for tests).
    func knownServers(now: NIODeadline) -> Set<String> {
        Set(self.known.filter { now - $0.value <= self.limits.knownServerLifetime }.keys)
    }

    /// A new request, waiting at most `timeout` from `now`.
    mutating func start(timeout: TimeAmount, now: NIODeadline) -> StartAction {
        guard self.pending.count < self.limits.maxPending else { return .refuse(pending: self.pending.count) }
        let id = self.nextID
        self.nextID &+= 1
        let deadline = now + timeout
        self.pending[id] = Pending(deadline: deadline)
        return .publish(id: id, deadline: deadline)
    }

    /// Redis took request `id`; `receivers` subscribers got it, this server included (`nil`: not known, as on a
    /// Redis Cluster, where PUBLISH counts one node's subscribers: the request then waits until its deadline).
    mutating func published(_ id: UInt64, receivers: Int?, now: NIODeadline) -> Action {
        guard var request = self.pending[id] else { return .wait }
        request.expected = receivers.map { max($0 - 1, 0) }
        self.pending[id] = request
        return self.finishIfAnswered(id, now: now)
    }

    /// Request `id` was not published (Redis unreachable, or the publish failed).
    mutating func notPublished(_ id: UInt64, reason: String, now: NIODeadline) -> Action {
        self.finish(id, .notPublished(reason), now: now)
    }

    /// Server `host` answered request `id`.
    mutating func received(_ id: UInt64, from host: String, reply: Reply, now: NIODeadline) -> Action {
        self.heard(from: host, now: now)
        guard var request = self.pending[id] else { return .ignoreUnknown }
        guard host != self.hostID, request.replies[host] == nil else { return .ignoreDuplicate }
        request.replies[host] = reply
        self.pending[id] = request
        return self.finishIfAnswered(id, now: now)
    }

    /// The deadline of request `id` came (a deadline scheduled for a request that ended already does nothing).
    mutating func deadlinePassed(_ id: UInt64, now: NIODeadline) -> Action {
        guard let request = self.pending[id], now >= request.deadline else { return .wait }
        return self.finish(id, .timedOut, now: now)
    }

    /// The caller of request `id` stopped waiting.
    mutating func cancelled(_ id: UInt64, now: NIODeadline) -> Action {
        self.finish(id, .cancelled, now: now)
    }

    /// Every waiting request ends as cancelled (the server shuts down).
    mutating func cancelAll(now: NIODeadline) -> [Outcome] {
        self.pending.keys.sorted().compactMap { id in
            guard case .finish(let outcome) = self.finish(id, .cancelled, now: now) else { return nil }
            return outcome
        }
    }

    /// Another server's request arrived: it is alive.
    mutating func heard(from host: String, now: NIODeadline) {
        guard host != self.hostID else { return }
        if self.known[host] == nil, self.known.count >= self.limits.maxKnownServers {
            // Forget the expired first; when none is, the one heard from longest ago.
            self.known = self.known.filter { now - $0.value <= self.limits.knownServerLifetime }
            if self.known.count >= self.limits.maxKnownServers,
                let oldest = self.known.min(by: { $0.value < $1.value })?.key
            {
                self.known[oldest] = nil
            }
        }
        self.known[host] = now
    }

    private mutating func finishIfAnswered(_ id: UInt64, now: NIODeadline) -> Action {
        guard let request = self.pending[id], let expected = request.expected,
            request.replies.count >= expected
        else { return .wait }
        return self.finish(id, .allAnswered, now: now)
    }

    private mutating func finish(_ id: UInt64, _ end: End, now: NIODeadline) -> Action {
        guard let request = self.pending.removeValue(forKey: id) else { return .wait }
        let unanswered = self.knownServers(now: now).subtracting(request.replies.keys)
        let count: Int
        switch end {
        case .allAnswered: count = 0
        case .notPublished: count = request.expected ?? unanswered.count
        case .timedOut, .cancelled:
            count = request.expected.map { max($0 - request.replies.count, 0) } ?? unanswered.count
        }
        return .finish(
            Outcome(
                id: id,
                end: end,
                replies: request.replies,
                expected: request.expected,
                unansweredCount: count,
                unanswered: end == .allAnswered ? [] : unanswered
            )
        )
    }
}
