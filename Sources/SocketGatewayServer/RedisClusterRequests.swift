import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayEngineIO
import SocketGatewayRedis

/// Cluster-wide requests over Redis (fetch sockets, sockets join/leave/disconnect, server-side emit, server count):
/// asking the other servers, and answering theirs. See ``ClusterRequestWire`` for the channels and messages and
/// ``ClusterRequestStateMachine`` for how a request waits.
///
/// Bounded: at most `limits.maxPending` requests of this server wait at once (one more throws), at most
/// `limits.maxAnswering` of the others' requests are answered at once (one more gets an error answer), and a
/// message or an answer larger than `limits.maxMessageBytes` is not sent (an error answer instead) and, received,
/// skipped. A message that cannot be read is counted (``garbled``) and skipped, logged at most once per 10 s.
final class RedisClusterRequests: Sendable {
    struct Limits: Sendable, Hashable {
        var machine = ClusterRequestStateMachine.Limits()
        /// The most other servers' requests answered at once (default 64).
        var maxAnswering = 64
        /// The largest request or answer sent or read, in bytes (default 1 MiB).
        var maxMessageBytes = 1 << 20

        init() {}

        /// The bounds a server was configured with.
        init(_ limits: ClusterRequestLimits) {
            self.machine.maxPending = limits.maxPending
            self.maxAnswering = limits.maxAnswering
            self.maxMessageBytes = limits.maxMessageBytes
        }
    }

    let hostID: String
    let requestChannel: String
    let responseChannel: String
    private let channelName: String
    private let limits: Limits
    /// `nil` on a Redis Cluster, where a PUBLISH counts one node's subscribers only.
    private let countsReceivers: Bool
    private let logger: Logger
    private let garbledWarning = RateLimitedWarning()
    private let garbledCounter = Counter(label: "socketgateway_cluster_requests_garbled_total")
    private let refusedCounter = Counter(label: "socketgateway_cluster_requests_refused_total")
    private let state: NIOLockedValueBox<State>

    private struct State {
        var machine: ClusterRequestStateMachine
        var waiters: [UInt64: CheckedContinuation<ClusterRequestStateMachine.Outcome, Never>] = [:]
        /// Outcomes reached before their caller stored its continuation.
        var early: [UInt64: ClusterRequestStateMachine.Outcome] = [:]
        var pubsub: SocketIOPubSubChannel?
        var gateway: SocketGateway?
        var answering = 0
        var garbled = 0
        var refusedAnswers = 0
        var ignoredResponses = 0
    }

    init(channel: String, hostID: String, countsReceivers: Bool, limits: Limits = Limits(), logger: Logger) {
        self.hostID = hostID
        self.channelName = channel
        self.requestChannel = ClusterRequestWire.requestChannel(channel)
        self.responseChannel = ClusterRequestWire.responseChannel(channel, hostID: hostID)
        self.countsReceivers = countsReceivers
        self.limits = limits
        self.logger = logger
        self.state = NIOLockedValueBox(
            State(machine: ClusterRequestStateMachine(hostID: hostID, limits: limits.machine))
        )
    }

    /// The channels every server subscribes to for this.
    var channels: [String] { [self.requestChannel, self.responseChannel] }

    func attach(_ pubsub: SocketIOPubSubChannel) {
        self.state.withLockedValue { $0.pubsub = pubsub }
    }

    func start(gateway: SocketGateway) {
        self.state.withLockedValue { $0.gateway = gateway }
    }

    /// Ends every waiting request (as cancelled) and stops answering.
    func shutdown() {
        let finished = self.state.withLockedValue { state in
            state.gateway = nil
            let outcomes = state.machine.cancelAll(now: .now())
            return outcomes.compactMap { outcome in state.waiters.removeValue(forKey: outcome.id).map { ($0, outcome) }
            }
        }
        for (waiter, outcome) in finished { waiter.resume(returning: outcome) }
    }

    /// Messages that could not be read, other servers' requests refused for `maxAnswering`, and answers that
    /// belonged to no waiting request (for tests and health).
    var counts: (garbled: Int, refusedAnswers: Int, ignoredResponses: Int) {
        self.state.withLockedValue { ($0.garbled, $0.refusedAnswers, $0.ignoredResponses) }
    }

    /// What `/healthz` shows of these requests.
    var health: ClusterHealth.ClusterRequests {
        self.state.withLockedValue { state in
            ClusterHealth.ClusterRequests(
                pending: state.machine.pendingCount,
                answering: state.answering,
                garbled: state.garbled,
                refusedBusy: state.refusedAnswers,
                ignoredResponses: state.ignoredResponses
            )
        }
    }

    // MARK: Asking

    func request(_ query: ClusterQuery, timeout: Duration) async throws -> ClusterReplies<JSONValue> {
        let start = self.state.withLockedValue { $0.machine.start(timeout: TimeAmount(timeout), now: .now()) }
        guard case .publish(let id, let deadline) = start else {
            throw ClusterRequestError(
                code: .tooManyPending,
                operation: query.operation,
                limit: self.limits.machine.maxPending
            )
        }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<ClusterRequestStateMachine.Outcome, Never>) in
                let early = self.state.withLockedValue { state -> ClusterRequestStateMachine.Outcome? in
                    if let outcome = state.early.removeValue(forKey: id) { return outcome }
                    state.waiters[id] = continuation
                    return nil
                }
                if let early {
                    continuation.resume(returning: early)
                    return
                }
                self.send(id: id, query: query, deadline: deadline, timeout: timeout)
            }
        } onCancel: {
            self.apply { $0.cancelled(id, now: .now()) }
        }
        if outcome.end == .cancelled { try Task.checkCancellation() }
        return Self.replies(outcome)
    }

    private func send(id: UInt64, query: ClusterQuery, deadline: NIODeadline, timeout: Duration) {
        guard let pubsub = self.state.withLockedValue({ $0.pubsub }) else {
            self.apply { $0.notPublished(id, reason: "the server is not clustered yet", now: .now()) }
            return
        }
        let (seconds, attoseconds) = timeout.components
        let request = ClusterRequestWire.Request(
            id: id,
            hostID: self.hostID,
            expiresMilliseconds: PubSubSigner.wallClockMilliseconds() + seconds * 1000
                + attoseconds / 1_000_000_000_000_000,
            query: query
        )
        var encoded = ByteBuffer()
        ClusterRequestWire.encode(request, into: &encoded)
        guard encoded.readableBytes <= self.limits.maxMessageBytes else {
            let reason =
                "the request is \(encoded.readableBytes) bytes, over the limit of \(self.limits.maxMessageBytes)"
            self.apply { $0.notPublished(id, reason: reason, now: .now()) }
            return
        }
        pubsub.publisher.eventLoop.scheduleTask(deadline: deadline) {
            self.apply { $0.deadlinePassed(id, now: .now()) }
        }
        let countsReceivers = self.countsReceivers
        pubsub.publishOwn(channel: self.requestChannel, deadline: deadline) { outcome in
            switch outcome {
            case .progress(.published(let subscribers)):
                self.apply { $0.published(id, receivers: countsReceivers ? subscribers : nil, now: .now()) }
            case .progress(.queued(let reason)):
                self.apply { $0.notPublished(id, reason: "Redis unreachable (\(reason))", now: .now()) }
            case .progress(.failed(let error)):
                self.apply { $0.notPublished(id, reason: "\(error)", now: .now()) }
            case .timedOut:
                self.apply { $0.notPublished(id, reason: "Redis did not answer the publish in time", now: .now()) }
            }
        } writePayload: { buffer in
            buffer.writeImmutableBuffer(encoded)
        }
    }

    /// Applies one input to the state machine, under the lock, and hands a finished request to its caller.
    private func apply(_ input: (inout ClusterRequestStateMachine) -> ClusterRequestStateMachine.Action) {
        let resume = self.state.withLockedValue {
            state -> (
                CheckedContinuation<ClusterRequestStateMachine.Outcome, Never>, ClusterRequestStateMachine.Outcome
            )? in
            switch input(&state.machine) {
            case .wait:
                return nil
            case .ignoreUnknown, .ignoreDuplicate:
                state.ignoredResponses += 1
                return nil
            case .finish(let outcome):
                guard let waiter = state.waiters.removeValue(forKey: outcome.id) else {
                    state.early[outcome.id] = outcome
                    return nil
                }
                return (waiter, outcome)
            }
        }
        if let resume { resume.0.resume(returning: resume.1) }
    }

    static func replies(_ outcome: ClusterRequestStateMachine.Outcome) -> ClusterReplies<JSONValue> {
        var result = ClusterReplies<JSONValue>(
            unansweredCount: outcome.unansweredCount,
            unansweredServers: outcome.unanswered,
            expectedServers: outcome.expected
        )
        for (server, reply) in outcome.replies {
            switch reply {
            case .value(let value): result.replies[server] = value
            case .error(let reason): result.errors[server] = reason
            }
        }
        switch outcome.end {
        case .notPublished(let reason): result.failure = "not sent to the other servers: \(reason)"
        case .cancelled: result.failure = "cancelled (the server is shutting down)"
        case .allAnswered, .timedOut: break
        }
        return result
    }

    // MARK: Receiving

    /// A message on the request or response channel (called on the subscriber's loop; signature checked).
    func received(_ message: RedisPubSubMessage) {
        guard message.payload.readableBytes <= self.limits.maxMessageBytes else {
            self.garbled("a message of \(message.payload.readableBytes) bytes, over the limit", message.payload)
            return
        }
        if message.channel == self.responseChannel {
            do {
                let response = try ClusterRequestWire.decodeResponse(message.payload)
                self.apply { $0.received(response.id, from: response.hostID, reply: response.reply, now: .now()) }
            } catch {
                self.garbled("an unreadable cluster response: \(error)", message.payload)
            }
            return
        }
        let request: ClusterRequestWire.Request
        do {
            request = try ClusterRequestWire.decodeRequest(message.payload)
        } catch {
            self.garbled("an unreadable cluster request: \(error)", message.payload)
            return
        }
        guard request.hostID != self.hostID else { return }
        guard request.expiresMilliseconds >= PubSubSigner.wallClockMilliseconds() else {
            self.logger.debug("skipped an expired cluster request", metadata: ["origin_host_id": "\(request.hostID)"])
            return
        }
        let admission = self.state.withLockedValue { state -> Admission in
            state.machine.heard(from: request.hostID, now: .now())
            guard let gateway = state.gateway else { return .stopped }
            guard state.answering < self.limits.maxAnswering else {
                state.refusedAnswers += 1
                return .busy
            }
            state.answering += 1
            return .admitted(gateway)
        }
        switch admission {
        case .stopped:
            return
        case .busy:
            self.refusedCounter.increment()
            self.respond(to: request, .error("busy: \(self.limits.maxAnswering) requests are being answered"))
        case .admitted(let gateway):
            let submitted = gateway.tasks.submit {
                defer { self.state.withLockedValue { $0.answering -= 1 } }
                let reply = await gateway.answer(request.query, from: request.hostID)
                self.respond(to: request, reply)
            }
            if !submitted {
                self.state.withLockedValue { $0.answering -= 1 }
            }
        }
    }

    private enum Admission {
        case stopped, busy
        case admitted(SocketGateway)
    }

    private func respond(to request: ClusterRequestWire.Request, _ reply: ClusterRequestStateMachine.Reply) {
        guard let pubsub = self.state.withLockedValue({ $0.pubsub }) else { return }
        var encoded = ByteBuffer()
        ClusterRequestWire.encode(
            ClusterRequestWire.Response(id: request.id, hostID: self.hostID, reply: reply),
            into: &encoded
        )
        if encoded.readableBytes > self.limits.maxMessageBytes {
            let reason =
                "the answer is \(encoded.readableBytes) bytes, over the limit of \(self.limits.maxMessageBytes)"
            encoded.clear()
            ClusterRequestWire.encode(
                ClusterRequestWire.Response(id: request.id, hostID: self.hostID, reply: .error(reason)),
                into: &encoded
            )
        }
        let channel = ClusterRequestWire.responseChannel(self.channelName, hostID: request.hostID)
        pubsub.publishOwn(channel: channel, deadline: .now() + .seconds(5)) { outcome in
            if case .progress(.failed(let error)) = outcome {
                self.logger.debug("cluster answer not published", metadata: ["error": "\(error)"])
            }
        } writePayload: { buffer in
            buffer.writeImmutableBuffer(encoded)
        }
    }

    private func garbled(_ what: String, _ payload: ByteBuffer) {
        self.state.withLockedValue { $0.garbled += 1 }
        self.garbledCounter.increment()
        self.garbledWarning.log(
            self.logger,
            "skipped a message on a cluster request channel",
            metadata: [
                "problem": "\(LogSafe.text(what))",
                "message": "\(LogSafe.excerpt(payload.readableBytesView, limit: 200))",
            ]
        )
    }
}

extension ClusterQuery {
    /// The operation's name in errors and on the wire.
    var operation: String {
        switch self {
        case .ping: return "ping"
        case .fetchSockets: return "fetch_sockets"
        case .socketsJoin: return "sockets_join"
        case .socketsLeave: return "sockets_leave"
        case .disconnectSockets: return "disconnect_sockets"
        case .serverSideEmit: return "server_side_emit"
        case .broadcastWithAck: return "broadcast_with_ack"
        }
    }
}
