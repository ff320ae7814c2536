package import NIOCore

/// The life of one Redis connection, without I/O: the one place that decides when the publisher, the subscriber
/// and the command client connect, what their handshake expects, when a connection is ready, when it is given up,
/// whether and when it is tried again (backoff), when it is pinged and when it is declared dead (liveness).
///
/// Each input is a `mutating func` that takes the time as `now` (when it needs it) and returns the one `Action`
/// the client must perform; the clients (`RedisPublisher`, `RedisSubscriber`, `RedisCommandClient`) are thin NIO
/// shells that feed it what their channel reports and do what it says. What a client does with its own commands
/// (queue, outbox, pending replies) is the client's business; this machine only says that the connection became
/// ready or is gone.
///
/// Every connection attempt gets a new `generation`; the shell tags the channel's callbacks with it and passes it
/// back, and callbacks from a connection the machine has already given up are ignored (`.nothing`), or, for a
/// connect that completes too late, answered with `.discardConnection`.
///
/// ```
/// idle ──start──▶ connecting ──connected──▶ handshaking ──last reply──▶ ready
///   ▲                 │                         │                         │ connectionClosed / abandon /
///   │                 │ connectFailed           │ refused / closed /      │ liveness timeout
///   │                 ▼                         ▼ timeout                 ▼
///   └──(not needed)── waitingToReconnect ◀── per `Recovery`: backoff, or straight to idle
/// any state ──shutdown──▶ closed (final)
/// ```
///
/// The clients' policies (set in their `init`):
/// - `RedisSubscriber`: connects on `start()`; handshake AUTH/SELECT then SUBSCRIBE (ready = every channel
///   confirmed), each reply within `pingTimeout`; every failure, a refused AUTH included, is retried after the
///   backoff, forever; a ready connection is pinged after `pingInterval` of silence and dropped after `pingTimeout`.
/// - `RedisPublisher`: connects on the first publish; AUTH/SELECT replies within `replyTimeout`; a failed connect or
///   a refused AUTH/SELECT is retried after the backoff while messages wait; a lost connection is retried after the
///   backoff in outbox mode, at once in direct mode; no ping (the reply timeout of publishes finds a dead link).
/// - `RedisCommandClient`: connects on the first command; never backs off: every failure, a refused AUTH included,
///   fails what waits and leaves it idle, and the next command connects again.
package struct RedisConnectionStateMachine {
    /// What to do after a connection attempt failed or a ready connection was lost.
    package enum Recovery: Sendable, Hashable {
        /// Wait a backoff delay (`Retry`), then connect again if the client still needs a connection.
        case reconnectAfterBackoff
        /// Go idle at once; the client's next `start` connects again (immediately).
        case becomeIdle
    }

    /// The policies of one client.
    package struct Configuration: Sendable {
        /// The commands written, pipelined, as soon as the connection is open; every one must be answered
        /// before the connection is ready (see `RedisHandshakeStep.handshake(for:)`).
        package var handshake: [RedisHandshakeStep]
        /// The Redis URL with its password masked, for the errors' context.
        package var redactedURL: String
        /// Reconnect delays.
        package var backoff: ReconnectBackoff
        /// The longest the handshake may wait for its replies before the connection is given up; `nil`: no limit.
        package var handshakeTimeout: TimeAmount?
        /// When set, a ready connection is pinged after `interval` of silence and given up when the ping is not
        /// answered within `timeout` (see `LivenessMonitor`); `nil`: never pinged.
        package var liveness: (interval: TimeAmount, timeout: TimeAmount)?
        /// After a connect failed (TCP, or the connection closed or timed out before the handshake finished).
        package var afterConnectFailure: Recovery
        /// After Redis refused a handshake command (AUTH, SELECT, SUBSCRIBE) or answered it unexpectedly.
        package var afterHandshakeRefused: Recovery
        /// After a ready connection closed, was abandoned by the client, or missed its liveness deadline.
        package var afterConnectionLost: Recovery

        /// Creates a configuration.
        package init(
            handshake: [RedisHandshakeStep],
            redactedURL: String,
            backoff: ReconnectBackoff = ReconnectBackoff(),
            handshakeTimeout: TimeAmount? = nil,
            liveness: (interval: TimeAmount, timeout: TimeAmount)? = nil,
            afterConnectFailure: Recovery,
            afterHandshakeRefused: Recovery,
            afterConnectionLost: Recovery
        ) {
            self.handshake = handshake
            self.redactedURL = redactedURL
            self.backoff = backoff
            self.handshakeTimeout = handshakeTimeout
            self.liveness = liveness
            self.afterConnectFailure = afterConnectFailure
            self.afterHandshakeRefused = afterHandshakeRefused
            self.afterConnectionLost = afterConnectionLost
        }
    }

    /// When and why to connect again.
    package struct Retry: Sendable, Hashable {
        /// Pass back to `reconnectTimerFired`.
        package var generation: UInt64
        /// When to call `reconnectTimerFired`.
        package var at: NIODeadline
        /// The backoff delay (`at - now`), for logs.
        package var delay: TimeAmount
        /// Failed attempts since the last ready connection, for logs.
        package var attempt: Int
    }

    /// What the client must do.
    package enum Action {
        /// Nothing.
        case nothing
        /// Open a connection and tag its callbacks with `generation`.
        case connect(generation: UInt64)
        /// A connect completed for an attempt that is over (shut down, timed out): close that new channel.
        case discardConnection
        /// Write these commands, pipelined, on the new connection.
        case sendHandshake([RedisHandshakeStep])
        /// The connection is ready for the client's commands; `isReconnect` unless it is the first one ever.
        case becomeReady(isReconnect: Bool)
        /// The reply is the client's (the connection is ready): handle it.
        case deliver
        /// Write a PING.
        case sendPing
        /// The attempt failed before the connection was ready. Close the channel if `closeConnection`; then
        /// schedule `reconnectTimerFired` at `retry.at`, or, without `retry`, the machine is idle.
        case connectFailed(RedisError, closeConnection: Bool, retry: Retry?)
        /// The ready connection is gone. Close the channel if `closeConnection`; then as for `connectFailed`.
        case connectionLost(RedisError, closeConnection: Bool, retry: Retry?)
        /// Shut down: close the channel if `closeConnection`, fail what waits. Nothing follows.
        case shutDown(closeConnection: Bool)
    }

    /// Where the machine is, for the client's own decisions (queue or write, fail at once).
    package enum Phase: Sendable, Hashable {
        case idle
        case connecting
        case handshaking
        case ready
        case waitingToReconnect
        case closed
    }

    private enum State {
        case idle
        case connecting
        /// `step` is the handshake step whose reply comes next; `repliesLeft` how many it still expects.
        case handshaking(step: Int, repliesLeft: Int, since: NIODeadline)
        case ready(LivenessMonitor?)
        case waitingToReconnect(until: NIODeadline, lastError: RedisError)
        case closed
    }

    package let configuration: Configuration
    private var state: State = .idle
    /// The current attempt's number; callbacks carrying another one are stale.
    package private(set) var generation: UInt64 = 0
    private var backoff: ReconnectBackoff
    private var random: any RandomNumberGenerator
    private var everReady = false
    /// Set while the client does not read (the subscriber's backpressure): the connection is not pinged.
    private var livenessSuspended = false

    /// Creates an idle machine.
    /// - Parameters:
    ///   - configuration: The client's handshake and policies.
    ///   - random: The source of the backoff's jitter (a seeded generator in tests).
    package init(configuration: Configuration, random: any RandomNumberGenerator = SystemRandomNumberGenerator()) {
        self.configuration = configuration
        self.backoff = configuration.backoff
        self.random = random
    }

    /// Where the machine is.
    package var phase: Phase {
        switch self.state {
        case .idle: .idle
        case .connecting: .connecting
        case .handshaking: .handshaking
        case .ready: .ready
        case .waitingToReconnect: .waitingToReconnect
        case .closed: .closed
        }
    }

    /// Whether the connection is ready for the client's commands.
    package var isReady: Bool {
        if case .ready = self.state { return true }
        return false
    }

    /// While waiting to reconnect: why the last attempt failed.
    package var lastError: RedisError? {
        if case .waitingToReconnect(_, let error) = self.state { return error }
        return nil
    }

    /// Failed attempts since the last ready connection.
    package var failedAttempts: Int { self.backoff.attempts }

    // MARK: - Inputs

    /// The client wants a connection: connects when idle; otherwise one is on its way, ready, or the machine waits
    /// for its backoff (`reconnectTimerFired`) or is closed.
    package mutating func start(now: NIODeadline) -> Action {
        guard case .idle = self.state else { return .nothing }
        return self.connect()
    }

    /// The TCP (or unix-socket) connection of attempt `generation` is open.
    package mutating func connected(generation: UInt64, now: NIODeadline) -> Action {
        guard generation == self.generation, case .connecting = self.state else { return .discardConnection }
        guard let first = self.configuration.handshake.first else { return self.becomeReady(now: now) }
        self.state = .handshaking(step: 0, repliesLeft: first.expectedReplies, since: now)
        return .sendHandshake(self.configuration.handshake)
    }

    /// Attempt `generation` could not connect.
    package mutating func connectFailed(generation: UInt64, error: any Error, now: NIODeadline) -> Action {
        guard generation == self.generation, case .connecting = self.state else { return .nothing }
        let reason =
            (error as? RedisError)
            ?? self.error(
                .connectionFailed,
                "cannot connect to Redis; is redis-server running there?",
                underlying: error
            )
        return self.attemptFailed(
            reason,
            closeConnection: false,
            recovery: self.configuration.afterConnectFailure,
            now: now
        )
    }

    /// A reply (or push) arrived on connection `generation`. `now` is read only when the machine needs it (the
    /// handshake completes, or the connection's liveness is checked), so pass `.now()`.
    package mutating func received(
        _ value: RESPValue,
        generation: UInt64,
        now: @autoclosure () -> NIODeadline
    ) -> Action {
        guard generation == self.generation else { return .nothing }
        switch self.state {
        case .ready(var monitor):
            if monitor != nil {
                monitor!.activity(at: now())
                self.state = .ready(monitor)
            }
            return .deliver
        case .handshaking(let index, let repliesLeft, let since):
            let step = self.configuration.handshake[index]
            if let refusal = step.refusal(of: value, redactedURL: self.configuration.redactedURL) {
                return self.attemptFailed(
                    refusal,
                    closeConnection: true,
                    recovery: self.configuration.afterHandshakeRefused,
                    now: now()
                )
            }
            if repliesLeft > 1 {
                self.state = .handshaking(step: index, repliesLeft: repliesLeft - 1, since: since)
                return .nothing
            }
            let next = index + 1
            guard next < self.configuration.handshake.count else { return self.becomeReady(now: now()) }
            self.state = .handshaking(
                step: next,
                repliesLeft: self.configuration.handshake[next].expectedReplies,
                since: since
            )
            return .nothing
        case .idle, .connecting, .waitingToReconnect, .closed:
            return .nothing
        }
    }

    /// Connection `generation` closed (`error` is what closed it, if known).
    package mutating func connectionClosed(generation: UInt64, error: (any Error)?, now: NIODeadline) -> Action {
        guard generation == self.generation else { return .nothing }
        let reason =
            (error as? RedisError)
            ?? self.error(.connectionClosed, "Redis closed the connection", underlying: error)
        return self.giveUp(reason, closeConnection: false, now: now)
    }

    /// The client found the open connection unusable (a reply that did not come in time, a reply nobody asked
    /// for): it is given up with `error`. Does nothing when no connection is open (connecting, waiting, idle).
    package mutating func abandon(_ error: RedisError, now: NIODeadline) -> Action {
        self.giveUp(error, closeConnection: true, now: now)
    }

    /// The periodic check: gives up a handshake that took longer than `handshakeTimeout`, pings a silent ready
    /// connection and gives it up when the ping is not answered in time.
    package mutating func tick(now: NIODeadline) -> Action {
        switch self.state {
        case .handshaking(let index, _, let since):
            guard let timeout = self.configuration.handshakeTimeout, now - since >= timeout else { return .nothing }
            let command = self.configuration.handshake[index].name
            let error = self.error(
                .timeout,
                "Redis did not answer \(command) within \(timeout)",
                command: command
            )
            return self.attemptFailed(
                error,
                closeConnection: true,
                recovery: self.configuration.afterConnectFailure,
                now: now
            )
        case .ready(var monitor?):
            guard !self.livenessSuspended else { return .nothing }
            let action = monitor.tick(now: now)
            self.state = .ready(monitor)
            switch action {
            case .none:
                return .nothing
            case .sendPing:
                return .sendPing
            case .declareDead:
                let error = self.error(
                    .livenessTimeout,
                    "no reply to PING within \(monitor.timeout)",
                    command: "PING"
                )
                return self.lost(error, closeConnection: true, now: now)
            }
        case .idle, .connecting, .ready(nil), .waitingToReconnect, .closed:
            return .nothing
        }
    }

    /// The client stopped reading from the connection (backpressure): replies wait unread, so silence says
    /// nothing; the connection is not pinged until `resumeLiveness`.
    package mutating func suspendLiveness() {
        self.livenessSuspended = true
    }

    /// The client reads again: the liveness check starts over from `now` (replies that waited unread while
    /// suspended do not count against it).
    package mutating func resumeLiveness(now: NIODeadline) {
        self.livenessSuspended = false
        if case .ready(let monitor?) = self.state {
            self.state = .ready(LivenessMonitor(interval: monitor.interval, timeout: monitor.timeout, now: now))
        }
    }

    /// The backoff of `retry.generation` is over: connects again when `stillNeeded`, otherwise goes idle.
    package mutating func reconnectTimerFired(generation: UInt64, now: NIODeadline, stillNeeded: Bool) -> Action {
        guard generation == self.generation, case .waitingToReconnect = self.state else { return .nothing }
        guard stillNeeded else {
            self.state = .idle
            return .nothing
        }
        return self.connect()
    }

    /// Stops for good: closes what is open; every later input does nothing.
    package mutating func shutdown() -> Action {
        let open: Bool
        switch self.state {
        case .closed: return .nothing
        case .handshaking, .ready: open = true
        case .idle, .connecting, .waitingToReconnect: open = false
        }
        self.state = .closed
        self.generation &+= 1
        return .shutDown(closeConnection: open)
    }

    // MARK: - Transitions

    private mutating func connect() -> Action {
        self.generation &+= 1
        self.state = .connecting
        return .connect(generation: self.generation)
    }

    private mutating func becomeReady(now: NIODeadline) -> Action {
        let monitor = self.configuration.liveness.map {
            LivenessMonitor(interval: $0.interval, timeout: $0.timeout, now: now)
        }
        self.state = .ready(monitor)
        self.backoff.reset()
        let isReconnect = self.everReady
        self.everReady = true
        return .becomeReady(isReconnect: isReconnect)
    }

    /// The open (or opening) connection is given up: a failed attempt or a lost connection, by state.
    private mutating func giveUp(_ error: RedisError, closeConnection: Bool, now: NIODeadline) -> Action {
        switch self.state {
        case .connecting:
            // Nothing is open yet to give up; a close reported here means the connect failed.
            guard !closeConnection else { return .nothing }
            return self.attemptFailed(
                error,
                closeConnection: false,
                recovery: self.configuration.afterConnectFailure,
                now: now
            )
        case .handshaking:
            return self.attemptFailed(
                error,
                closeConnection: closeConnection,
                recovery: self.configuration.afterConnectFailure,
                now: now
            )
        case .ready:
            return self.lost(error, closeConnection: closeConnection, now: now)
        case .idle, .waitingToReconnect, .closed:
            return .nothing
        }
    }

    private mutating func attemptFailed(
        _ error: RedisError,
        closeConnection: Bool,
        recovery: Recovery,
        now: NIODeadline
    ) -> Action {
        .connectFailed(error, closeConnection: closeConnection, retry: self.recover(recovery, error: error, now: now))
    }

    private mutating func lost(_ error: RedisError, closeConnection: Bool, now: NIODeadline) -> Action {
        let retry = self.recover(self.configuration.afterConnectionLost, error: error, now: now)
        return .connectionLost(error, closeConnection: closeConnection, retry: retry)
    }

    /// Leaves the current attempt (its callbacks become stale) for `recovery`.
    private mutating func recover(_ recovery: Recovery, error: RedisError, now: NIODeadline) -> Retry? {
        self.generation &+= 1
        switch recovery {
        case .becomeIdle:
            self.state = .idle
            return nil
        case .reconnectAfterBackoff:
            let delay = TimeAmount(self.backoff.nextDelay(using: &self.random))
            self.state = .waitingToReconnect(until: now + delay, lastError: error)
            return Retry(generation: self.generation, at: now + delay, delay: delay, attempt: self.backoff.attempts)
        }
    }

    private func error(
        _ code: RedisError.Code,
        _ message: String,
        command: String? = nil,
        underlying: (any Error)? = nil
    ) -> RedisError {
        RedisError(
            code: code,
            message: message,
            redactedURL: self.configuration.redactedURL,
            command: command,
            underlying: underlying
        )
    }
}

extension RedisConnectionStateMachine.Action: Equatable {
    /// Errors compare by code, message and command (their `underlying` error is not comparable).
    package static func == (lhs: Self, rhs: Self) -> Bool {
        func same(_ left: RedisError, _ right: RedisError) -> Bool {
            left.code == right.code && left.message == right.message && left.command == right.command
        }
        switch (lhs, rhs) {
        case (.nothing, .nothing), (.discardConnection, .discardConnection), (.deliver, .deliver),
            (.sendPing, .sendPing):
            return true
        case (.connect(let left), .connect(let right)):
            return left == right
        case (.sendHandshake(let left), .sendHandshake(let right)):
            return left == right
        case (.becomeReady(let left), .becomeReady(let right)):
            return left == right
        case (.connectFailed(let a, let closeA, let retryA), .connectFailed(let b, let closeB, let retryB)),
            (.connectionLost(let a, let closeA, let retryA), .connectionLost(let b, let closeB, let retryB)):
            return same(a, b) && closeA == closeB && retryA == retryB
        case (.shutDown(let left), .shutDown(let right)):
            return left == right
        default:
            return false
        }
    }
}

/// One command of the connection handshake, and what its reply must be.
package enum RedisHandshakeStep: Sendable, Hashable {
    /// `AUTH [username] password`.
    case auth([String])
    /// `SELECT db`.
    case select([String])
    /// `SUBSCRIBE channel…`: one confirmation per channel.
    case subscribe(channels: [String])
    /// `ROLE`, which must answer `master`: a node that a sentinel named is checked before it is used.
    case verifyPrimary

    /// The handshake for `url`, in order: AUTH when there is a password, SELECT when db ≠ 0, ROLE for a sentinel
    /// URL.
    package static func handshake(for url: RedisURL) -> [RedisHandshakeStep] {
        var steps: [RedisHandshakeStep] = []
        if let password = url.password {
            if let username = url.username {
                steps.append(.auth(["AUTH", username, password]))
            } else {
                steps.append(.auth(["AUTH", password]))
            }
        }
        if url.database != 0 {
            steps.append(.select(["SELECT", String(url.database)]))
        }
        if case .sentinel = url.endpoint { steps.append(.verifyPrimary) }
        return steps
    }

    /// The command to write.
    package var arguments: [String] {
        switch self {
        case .auth(let arguments), .select(let arguments): arguments
        case .subscribe(let channels): ["SUBSCRIBE"] + channels
        case .verifyPrimary: ["ROLE"]
        }
    }

    /// The command's name, for errors (never its arguments: AUTH's are secret).
    var name: String {
        switch self {
        case .auth: "AUTH"
        case .select: "SELECT"
        case .subscribe: "SUBSCRIBE"
        case .verifyPrimary: "ROLE"
        }
    }

    /// How many replies the command gets.
    var expectedReplies: Int {
        if case .subscribe(let channels) = self { return channels.count }
        return 1
    }

    /// The error when `reply` refuses the step (or is not what the step expects); `nil` when it is accepted.
    func refusal(of reply: RESPValue, redactedURL: String) -> RedisError? {
        switch (self, reply) {
        case (.auth, .error(let message)):
            return RedisError(
                code: .authenticationFailed,
                message: "Redis refused AUTH: \(message)",
                redactedURL: redactedURL,
                command: "AUTH"
            )
        case (.select(let arguments), .error(let message)):
            return RedisError(
                code: .selectFailed,
                message: "Redis refused SELECT \(arguments.last ?? ""): \(message)",
                redactedURL: redactedURL,
                command: "SELECT"
            )
        case (.auth, _), (.select, _):
            return nil
        case (.subscribe, .array(let items)) where items.first?.string == "subscribe":
            return nil
        case (.subscribe, .error(let message)):
            return RedisError(
                code: .commandFailed,
                message: "Redis refused SUBSCRIBE: \(message)",
                redactedURL: redactedURL,
                command: "SUBSCRIBE"
            )
        case (.subscribe, _):
            return RedisError(
                code: .protocolError,
                message: "unexpected reply to SUBSCRIBE: \(reply)",
                redactedURL: redactedURL,
                command: "SUBSCRIBE"
            )
        case (.verifyPrimary, .array(let items)) where items.first?.string == "master":
            return nil
        case (.verifyPrimary, _):
            // Only a known role is quoted: the reply is the peer's.
            let role = if case .array(let items) = reply { items.first?.string } else { String?.none }
            let known = role.flatMap { ["slave", "sentinel"].contains($0) ? $0 : nil } ?? "not master"
            return RedisError(
                code: .notPrimary,
                message: "the node the sentinels named is not the primary (ROLE: \(known)); a failover is under way",
                redactedURL: redactedURL,
                command: "ROLE"
            )
        }
    }
}
