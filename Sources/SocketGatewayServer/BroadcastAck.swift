import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
public import SocketGatewayCore
import SocketGatewayEngineIO

/// What a broadcast with acks collected: every addressed client's answer, and who did not answer and why.
///
/// socket.io's `io.timeout(ms).to(room).emitWithAck(...)` rejects on timeout and loses the answers that did
/// arrive; this value keeps both. ``isComplete`` says whether every addressed client answered.
public struct SocketBroadcastAcks<Answer: Sendable>: Sendable {
    /// The event that was sent.
    public var event: String
    /// The namespace it was sent in.
    public var namespace: String
    /// Each answering client's answer, by Socket.IO session id.
    public var answers: [String: Answer]
    /// The addressed clients that gave no (valid) answer, by session id: `timeout` (no answer by the deadline),
    /// `disconnected` (the connection ended while waiting; counted at once, not at the deadline), `notConnected`
    /// (it ended before the event went out), or `invalidAnswer` (a typed broadcast whose answer did not decode).
    public var missing: [String: SocketAckError]
    /// The servers whose clients are counted in ``answers`` and ``missing``: this server's host id (the Redis host
    /// id when clustered, `local` otherwise). A cluster-wide broadcast adds each server that reported in time.
    public var servers: Set<String>
    /// The servers that did not report in time (those heard from lately, by host id), or reported an error (e.g.
    /// more than `maxRecipients` clients there); their clients are in neither ``answers`` nor ``missing``. Always
    /// empty for a broadcast on one server.
    public var unreachableServers: Set<String>
    /// How many servers did not report in time or reported an error: at least ``unreachableServers``' count (a
    /// server never heard from has no known id). 0 on one server.
    public var unreachableServerCount = 0
    /// Set when the broadcast could not be sent to the other servers (e.g. Redis unreachable): why.
    public var clusterFailure: String?

    /// Creates a result (for cluster adapters merging other servers' answers, and for tests).
    public init(
        event: String,
        namespace: String,
        answers: [String: Answer] = [:],
        missing: [String: SocketAckError] = [:],
        servers: Set<String> = [],
        unreachableServers: Set<String> = []
    ) {
        self.event = event
        self.namespace = namespace
        self.answers = answers
        self.missing = missing
        self.servers = servers
        self.unreachableServers = unreachableServers
    }

    /// Whether every addressed client answered (and every server reported).
    public var isComplete: Bool {
        self.missing.isEmpty && self.unreachableServers.isEmpty && self.unreachableServerCount == 0
            && self.clusterFailure == nil
    }

    /// The answers, if every addressed client answered.
    /// - Throws: `SocketBroadcastAckError` (`incomplete`) naming who did not answer, and why.
    public func requireComplete() throws -> [String: Answer] {
        guard self.isComplete else {
            throw SocketBroadcastAckError(
                code: .incomplete,
                event: self.event,
                namespace: self.namespace,
                missing: self.missing,
                unreachableServers: self.unreachableServers,
                answered: self.answers.count
            )
        }
        return self.answers
    }
}

/// Why a broadcast with acks was not sent, or not complete.
public struct SocketBroadcastAckError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case tooManyRecipients, incomplete
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// More clients were addressed than the call's `maxRecipients`: the event was sent to none of them.
        public static let tooManyRecipients = Code(.tooManyRecipients)
        /// Some addressed clients did not answer (``SocketBroadcastAcks/requireComplete()``).
        public static let incomplete = Code(.incomplete)
        /// The text shown when this value is printed or logged.
        public var description: String { "\(self.base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// The event.
    public var event: String
    /// The namespace.
    public var namespace: String
    /// For `incomplete`: the clients that gave no answer, by session id.
    public var missing: [String: SocketAckError] = [:]
    /// For `incomplete`: the servers that did not report.
    public var unreachableServers: Set<String> = []
    /// For `incomplete`: how many clients answered. For `tooManyRecipients`: how many were addressed.
    public var answered: Int = 0
    /// For `tooManyRecipients`: the limit.
    public var maxRecipients: Int = 0

    /// The text shown when this value is printed or logged.
    public var description: String {
        if self.code == .tooManyRecipients {
            return "broadcast with acks of event \(self.event) in \(self.namespace) not sent: it addresses "
                + "\(self.answered) clients, more than maxRecipients \(self.maxRecipients)"
        }
        let sids = self.missing.keys.sorted().prefix(10).joined(separator: ", ")
        return "broadcast with acks of event \(self.event) in \(self.namespace): \(self.answered) answered, "
            + "\(self.missing.count) did not (\(sids)\(self.missing.count > 10 ? ", …" : ""))"
            + (self.unreachableServers.isEmpty ? "" : ", servers not reporting: \(self.unreachableServers.sorted())")
    }
}

extension SocketGateway {
    /// The default bound on the clients one broadcast with acks may address.
    public static let defaultMaxBroadcastAckRecipients = 10_000

    /// Emits `event` to the addressed clients of every server, each with an ack id of its own, and collects every
    /// answer (socket.io's `io.timeout(ms).to(room).except(...).emitWithAck(...)`).
    ///
    /// This server's clients: returns when every addressed client answered, disconnected, or its deadline passed: a
    /// client that disconnects while waiting is missing at once, not at the deadline. Each recipient's packet is
    /// encoded for its own ack id (one encoding per recipient, written on its event loop, one flush per loop).
    /// Memory is bounded by `maxRecipients` per server: each addressed client holds one ack entry and its answer
    /// until the call returns.
    ///
    /// Clustered through Redis, every other server does the same with its clients and reports at its own
    /// deadline; the call waits at most `timeout` plus `answerGrace` for them. A server that does not
    /// report (stopped, or its answer over 1 MiB) or reports an error (more than `maxRecipients` of its clients
    /// addressed) is in ``SocketBroadcastAcks/unreachableServers`` / ``SocketBroadcastAcks/unreachableServerCount``;
    /// ``SocketBroadcastAcks/servers`` names those whose clients are counted. ``local``'s broadcast reaches this
    /// server's clients only.
    /// - Parameters:
    ///   - event: The event name.
    ///   - arguments: The event's arguments.
    ///   - target: The addressed clients: the whole namespace, a room, several rooms (each client once), a user.
    ///   - options: The namespace and the rooms or session ids excluded.
    ///   - timeout: How long to wait for the answers.
    ///   - maxRecipients: The most clients this call may address on each server (default 10 000).
    ///   - answerGrace: How much longer than `timeout` to wait for the other servers' reports (default
    ///     ``clusterAnswerGrace``, 1 s): a server that gets the request late (a busy machine, a slow Redis) reports
    ///     late, and a report after this grace is lost, its clients counted nowhere.
    /// - Returns: The answers by session id, and the clients and servers that gave none.
    /// - Throws: `SocketBroadcastAckError` (`tooManyRecipients` on this server, nothing sent here);
    ///   ``ClusterRequestError``; `CancellationError` when the task is cancelled (the waiting acks are dropped).
    public func broadcastWithAck(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget = .broadcast,
        options: EmitOptions = EmitOptions(),
        timeout: Duration,
        maxRecipients: Int = SocketGateway.defaultMaxBroadcastAckRecipients,
        answerGrace: Duration = SocketGateway.clusterAnswerGrace
    ) async throws -> SocketBroadcastAcks<[JSONValue]> {
        guard !(self.cluster is LocalOnlyClusterAdapter) else {
            return try await self.broadcastWithAckHere(
                event,
                arguments: arguments,
                rooms: target.roomNames,
                options: options,
                timeout: timeout,
                maxRecipients: maxRecipients
            )
        }
        let query = ClusterQuery.broadcastWithAck(
            event: event,
            arguments: arguments,
            ClusterSocketSelector(target, options: options),
            timeout: timeout,
            maxRecipients: maxRecipients
        )
        async let remote = self.cluster.request(query, timeout: timeout + answerGrace)
        var result = try await self.broadcastWithAckHere(
            event,
            arguments: arguments,
            rooms: target.roomNames,
            options: options,
            timeout: timeout,
            maxRecipients: maxRecipients
        )
        result.merge(try await remote)
        return result
    }

    /// How much longer than its `timeout` a cluster-wide broadcast with acks waits by default for the other servers'
    /// reports, which each sends at its own deadline (1 s).
    public static let clusterAnswerGrace: Duration = .seconds(1)

    /// The broadcast with acks on this server's clients only.
    func broadcastWithAckHere(
        _ event: String,
        arguments: [JSONValue],
        rooms: [String]?,
        options: EmitOptions,
        timeout: Duration,
        maxRecipients: Int
    ) async throws -> SocketBroadcastAcks<[JSONValue]> {
        let (namespace, excluding) = (options.namespace, options.excluding)
        var byShard: [(RoomShard, [SocketConnection])] = []
        var addressed = 0
        for shard in self.shards.all {
            let recipients =
                await shard.run { $0.recipients(namespace: namespace, rooms: rooms, excluding: excluding) } ?? []
            if !recipients.isEmpty {
                byShard.append((shard, recipients))
                addressed += recipients.count
            }
        }
        guard addressed <= maxRecipients else {
            var error = SocketBroadcastAckError(code: .tooManyRecipients, event: event, namespace: namespace)
            error.answered = addressed
            error.maxRecipients = maxRecipients
            throw error
        }
        var result = SocketBroadcastAcks<[JSONValue]>(event: event, namespace: namespace, servers: [self.serverID])
        guard addressed > 0 else { return result }
        self.metrics.emits.increment()
        let collector = BroadcastAckCollector(addressed: byShard.flatMap { $0.1.map(\.id) }, metrics: self.metrics)
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        for (shard, recipients) in byShard {
            shard.eventLoop.execute {
                for connection in recipients {
                    connection.emitForBroadcastAck(
                        event,
                        arguments: arguments,
                        deadline: deadline,
                        collector: collector,
                        flushingIn: shard.flushBatch
                    )
                }
                shard.flushBatch.flush()
            }
        }
        let tally = await collector.wait()
        try Task.checkCancellation()
        self.metrics.deliveries.increment(by: Int64(addressed))
        result.answers = tally.answers
        for (sid, code) in tally.missing {
            result.missing[sid] = SocketAckError(code: code, event: event, sid: sid, namespace: namespace)
        }
        return result
    }

    /// The id of this server in results that say which servers answered.
    var serverID: String {
        (self.cluster as? RedisClusterAdapter)?.channel.hostID ?? "local"
    }
}

extension SocketGateway {
    /// Emits a typed event to the addressed clients of this server and collects every typed answer: see
    /// ``broadcastWithAck(_:arguments:to:options:timeout:maxRecipients:)``.
    /// - Parameters:
    ///   - event: The payload; its type gives the event name, the namespace and the answer's type.
    ///   - target: The addressed clients.
    ///   - excluding: Rooms or session ids whose members do not get it.
    ///   - timeout: How long to wait for the answers.
    ///   - maxRecipients: The most clients this call may address (default 10 000).
    ///   - answerGrace: How much longer than `timeout` to wait for the other servers' reports (default 1 s).
    /// - Returns: The decoded answers by session id; an answer that does not decode is in
    ///   ``SocketBroadcastAcks/missing`` as `invalidAnswer` with its ``SocketAckError/answerError``.
    /// - Throws: `SocketBroadcastAckError` (`tooManyRecipients`); `CancellationError`.
    public func broadcastWithAck<Event: SocketAcknowledgedEvent>(
        _ event: Event,
        to target: EmitTarget = .broadcast,
        excluding: Set<String> = [],
        timeout: Duration,
        maxRecipients: Int = SocketGateway.defaultMaxBroadcastAckRecipients,
        answerGrace: Duration = SocketGateway.clusterAnswerGrace
    ) async throws -> SocketBroadcastAcks<Event.Ack> {
        let raw = try await self.broadcastWithAck(
            Event.eventName,
            arguments: [event.jsonValue],
            to: target,
            options: EmitOptions(namespace: Event.namespace, excluding: excluding),
            timeout: timeout,
            maxRecipients: maxRecipients,
            answerGrace: answerGrace
        )
        var typed = SocketBroadcastAcks<Event.Ack>(
            event: raw.event,
            namespace: raw.namespace,
            missing: raw.missing,
            servers: raw.servers,
            unreachableServers: raw.unreachableServers
        )
        typed.unreachableServerCount = raw.unreachableServerCount
        typed.clusterFailure = raw.clusterFailure
        for (sid, answer) in raw.answers {
            do {
                typed.answers[sid] = try SocketAckError.decodeAnswer(
                    Event.self,
                    answer,
                    sid: sid,
                    namespace: raw.namespace
                )
            } catch let error as SocketAckError {
                typed.missing[sid] = error
            }
        }
        return typed
    }
}

/// The answers of one broadcast with acks so far: a pure value, fed by the connections' event loops through
/// ``BroadcastAckCollector``.
struct BroadcastAckTally: Sendable, Equatable {
    private(set) var answers: [String: [JSONValue]] = [:]
    private(set) var missing: [String: SocketAckError.Code] = [:]
    /// The addressed clients that have not answered nor failed yet.
    private(set) var pending: Set<String>

    init(addressed: some Sequence<String>) {
        self.pending = Set(addressed)
    }

    /// Whether every addressed client answered or failed.
    var isComplete: Bool { self.pending.isEmpty }

    /// Records `sid`'s answer. Returns false (and records nothing) when `sid` is not pending.
    mutating func answered(_ sid: String, _ arguments: [JSONValue]) -> Bool {
        guard self.pending.remove(sid) != nil else { return false }
        self.answers[sid] = arguments
        return true
    }

    /// Records that `sid` will not answer. Returns false (and records nothing) when `sid` is not pending.
    mutating func failed(_ sid: String, _ code: SocketAckError.Code) -> Bool {
        guard self.pending.remove(sid) != nil else { return false }
        self.missing[sid] = code
        return true
    }
}

/// Collects the answers of one broadcast with acks from the connections' event loops, and wakes the waiting call
/// when the last one is in.
final class BroadcastAckCollector: @unchecked Sendable {
    private let lock = NIOLock()
    // Guarded by `lock`:
    private var tally: BroadcastAckTally
    private var waiter: CheckedContinuation<BroadcastAckTally, Never>?
    /// The ack ids sent, to drop when the call is cancelled.
    private var sentAcks: [(SocketConnection, UInt64)] = []
    private var cancelled = false
    /// For the ack round-trip histogram, as for a single client's `emitWithAck`.
    private let metrics: SocketServerMetrics
    private let sent = ContinuousClock.now

    init(addressed: some Sequence<String>, metrics: SocketServerMetrics) {
        self.tally = BroadcastAckTally(addressed: addressed)
        self.metrics = metrics
    }

    /// Records that `ackID` was sent to `connection`. Returns false when the call was cancelled meanwhile.
    func registered(_ connection: SocketConnection, ackID: UInt64) -> Bool {
        self.lock.withLock {
            guard !self.cancelled else { return false }
            self.sentAcks.append((connection, ackID))
            return true
        }
    }

    func answered(_ sid: String, _ arguments: [JSONValue]) {
        self.metrics.ackAnswered(after: ContinuousClock.now - self.sent)
        self.record { $0.answered(sid, arguments) }
    }

    func failed(_ sid: String, _ code: SocketAckError.Code) {
        self.record { $0.failed(sid, code) }
    }

    private func record(_ change: (inout BroadcastAckTally) -> Bool) {
        let wake = self.lock.withLock { () -> (CheckedContinuation<BroadcastAckTally, Never>, BroadcastAckTally)? in
            guard change(&self.tally), self.tally.isComplete, let waiter = self.waiter else { return nil }
            self.waiter = nil
            return (waiter, self.tally)
        }
        if case (let waiter, let tally)? = wake { waiter.resume(returning: tally) }
    }

    /// Waits until every addressed client answered or failed, or the task is cancelled (then it returns what is in
    /// and drops the acks still waiting).
    func wait() async -> BroadcastAckTally {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<BroadcastAckTally, Never>) in
                let ready = self.lock.withLock { () -> BroadcastAckTally? in
                    if self.tally.isComplete || self.cancelled { return self.tally }
                    self.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            self.cancel()
        }
    }

    private func cancel() {
        let (sentAcks, waiter, tally) = self.lock.withLock {
            self.cancelled = true
            defer {
                self.sentAcks = []
                self.waiter = nil
            }
            return (self.sentAcks, self.waiter, self.tally)
        }
        for (connection, id) in sentAcks {
            connection.cancelBroadcastAck(id)
        }
        waiter?.resume(returning: tally)
    }
}

extension SocketBroadcastAcks where Answer == [JSONValue] {
    /// Adds the other servers' reports (`{"answers": {sid: [args]}, "missing": {sid: code}}` each).
    mutating func merge(_ replies: ClusterReplies<JSONValue>) {
        var unreachable = Set(replies.errors.keys).union(replies.unansweredServers)
        var unreadable = 0
        for (server, reply) in replies.replies {
            guard let answers = reply["answers"]?.objectValue, let missing = reply["missing"]?.objectValue else {
                unreachable.insert(server)
                unreadable += 1
                continue
            }
            self.servers.insert(server)
            for (sid, arguments) in answers {
                self.answers[sid] = arguments.arrayValue ?? [arguments]
            }
            for (sid, code) in missing {
                let known: [SocketAckError.Code] = [
                    .timeout, .disconnected, .notConnected, .wrongNamespace, .invalidAnswer,
                ]
                let code = known.first { $0.description == code.stringValue } ?? .timeout
                self.missing[sid] = SocketAckError(code: code, event: self.event, sid: sid, namespace: self.namespace)
            }
        }
        self.unreachableServers.formUnion(unreachable)
        self.unreachableServerCount += max(
            replies.unansweredCount + replies.errors.count + unreadable,
            unreachable.count
        )
        if let failure = replies.failure { self.clusterFailure = failure }
    }
}
