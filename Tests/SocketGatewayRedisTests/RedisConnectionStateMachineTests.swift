import NIOCore
import Testing

@testable import SocketGatewayRedis

/// Drives the pure Redis connection machine with explicit times (no sockets, no waiting) and a seeded jitter.
@Suite struct RedisConnectionStateMachineTests {
    typealias Machine = RedisConnectionStateMachine
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let url = "redis://:***@127.0.0.1:6379/2"
    static let seed: UInt64 = 7

    func at(_ milliseconds: Int64) -> NIODeadline { self.start + .milliseconds(milliseconds) }

    /// The policies each client uses today.
    enum Client { case subscriber, publisher, publisherWithOutbox, commandClient }

    func configuration(
        _ client: Client,
        handshake: [RedisHandshakeStep] = [],
        handshakeTimeout: TimeAmount? = nil
    ) -> Machine.Configuration {
        let backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .milliseconds(400))
        switch client {
        case .subscriber:
            return .init(
                handshake: handshake,
                redactedURL: self.url,
                backoff: backoff,
                handshakeTimeout: handshakeTimeout,
                liveness: (interval: .seconds(1), timeout: .seconds(2)),
                afterConnectFailure: .reconnectAfterBackoff,
                afterHandshakeRefused: .reconnectAfterBackoff,
                afterConnectionLost: .reconnectAfterBackoff
            )
        case .publisher, .publisherWithOutbox:
            return .init(
                handshake: handshake,
                redactedURL: self.url,
                backoff: backoff,
                handshakeTimeout: handshakeTimeout,
                afterConnectFailure: .reconnectAfterBackoff,
                afterHandshakeRefused: .reconnectAfterBackoff,
                afterConnectionLost: client == .publisher ? .becomeIdle : .reconnectAfterBackoff
            )
        case .commandClient:
            return .init(
                handshake: handshake,
                redactedURL: self.url,
                backoff: backoff,
                handshakeTimeout: handshakeTimeout,
                afterConnectFailure: .becomeIdle,
                afterHandshakeRefused: .becomeIdle,
                afterConnectionLost: .becomeIdle
            )
        }
    }

    func machine(
        _ client: Client,
        handshake: [RedisHandshakeStep] = [],
        handshakeTimeout: TimeAmount? = nil
    )
        -> Machine
    {
        Machine(
            configuration: self.configuration(client, handshake: handshake, handshakeTimeout: handshakeTimeout),
            random: SplitMix64(state: Self.seed)
        )
    }

    /// The delays the machine's backoff will pick, in order (same seed, same backoff).
    func expectedDelays(_ count: Int) -> [TimeAmount] {
        var generator = SplitMix64(state: Self.seed)
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .milliseconds(400))
        return (0..<count).map { _ in TimeAmount(backoff.nextDelay(using: &generator)) }
    }

    func error(_ code: RedisError.Code, _ message: String, command: String? = nil) -> RedisError {
        RedisError(code: code, message: message, redactedURL: self.url, command: command)
    }

    /// What a connect to a closed port fails with.
    let refused = IOError(errnoCode: 111, reason: "connect")

    func retry(_ generation: UInt64, at now: NIODeadline, after delay: TimeAmount, attempt: Int) -> Machine.Retry {
        .init(generation: generation, at: now + delay, delay: delay, attempt: attempt)
    }

    let auth = RedisHandshakeStep.auth(["AUTH", "secret"])
    let select = RedisHandshakeStep.select(["SELECT", "2"])
    let subscribe = RedisHandshakeStep.subscribe(channels: ["a", "b"])
    func confirmation(_ channel: String, _ count: Int64) -> RESPValue {
        .array([
            .bulkString(ByteBuffer(string: "subscribe")), .bulkString(ByteBuffer(string: channel)), .integer(count),
        ])
    }

    /// A ready machine (generation 1) with no handshake.
    func readyMachine(_ client: Client) -> Machine {
        var machine = self.machine(client)
        #expect(machine.start(now: self.start) == .connect(generation: 1))
        #expect(machine.connected(generation: 1, now: self.start) == .becomeReady(isReconnect: false))
        return machine
    }

    // MARK: connect and handshake

    @Test func connectsOnceAndIsReadyWithoutHandshake() {
        var machine = self.machine(.publisher)
        #expect(machine.phase == .idle)
        #expect(machine.start(now: self.start) == .connect(generation: 1))
        #expect(machine.phase == .connecting)
        #expect(machine.start(now: self.start) == .nothing)
        #expect(machine.connected(generation: 1, now: self.at(5)) == .becomeReady(isReconnect: false))
        #expect(machine.isReady)
        #expect(machine.start(now: self.at(6)) == .nothing)
        #expect(machine.received(.integer(1), generation: 1, now: self.at(7)) == .deliver)
    }

    @Test func handshakeIsPipelinedAndEveryReplyIsAwaited() {
        var machine = self.machine(.subscriber, handshake: [self.auth, self.select, self.subscribe])
        #expect(machine.start(now: self.start) == .connect(generation: 1))
        #expect(
            machine.connected(generation: 1, now: self.at(1))
                == .sendHandshake([self.auth, self.select, self.subscribe])
        )
        #expect(machine.phase == .handshaking)
        #expect(machine.received(.simpleString("OK"), generation: 1, now: self.at(2)) == .nothing)
        #expect(machine.received(.simpleString("OK"), generation: 1, now: self.at(2)) == .nothing)
        #expect(machine.received(self.confirmation("a", 1), generation: 1, now: self.at(3)) == .nothing)
        #expect(machine.phase == .handshaking)
        #expect(
            machine.received(self.confirmation("b", 2), generation: 1, now: self.at(3))
                == .becomeReady(isReconnect: false)
        )
        #expect(machine.isReady)
    }

    @Test func handshakeStepsFollowTheURL() throws {
        #expect(RedisHandshakeStep.handshake(for: try RedisURL(parsing: "redis://127.0.0.1:6379")) == [])
        #expect(
            RedisHandshakeStep.handshake(for: try RedisURL(parsing: "redis://:pw@127.0.0.1/3")) == [
                .auth(["AUTH", "pw"]), .select(["SELECT", "3"]),
            ]
        )
        #expect(
            RedisHandshakeStep.handshake(for: try RedisURL(parsing: "redis://user:pw@127.0.0.1")) == [
                .auth(["AUTH", "user", "pw"])
            ]
        )
        #expect(RedisHandshakeStep.subscribe(channels: ["x", "y"]).arguments == ["SUBSCRIBE", "x", "y"])
    }

    // MARK: refusals: each client's decision

    @Test(arguments: [Client.subscriber, .publisher, .publisherWithOutbox])
    func refusedAuthRetriesAfterBackoff(client: Client) {
        var machine = self.machine(client, handshake: [self.auth, self.select])
        _ = machine.start(now: self.start)
        _ = machine.connected(generation: 1, now: self.start)
        let delay = self.expectedDelays(1)[0]
        #expect(
            machine.received(.error("WRONGPASS invalid password"), generation: 1, now: self.at(1))
                == .connectFailed(
                    self.error(
                        .authenticationFailed,
                        "Redis refused AUTH: WRONGPASS invalid password",
                        command: "AUTH"
                    ),
                    closeConnection: true,
                    retry: self.retry(2, at: self.at(1), after: delay, attempt: 1)
                )
        )
        #expect(machine.phase == .waitingToReconnect)
        #expect(machine.lastError?.code == .authenticationFailed)
        // The SELECT reply of the given-up connection is stale.
        #expect(machine.received(.simpleString("OK"), generation: 1, now: self.at(2)) == .nothing)
        #expect(machine.start(now: self.at(2)) == .nothing, "the backoff is not cut short")
        #expect(
            machine.reconnectTimerFired(generation: 2, now: self.at(1) + delay, stillNeeded: true)
                == .connect(generation: 3)
        )
    }

    @Test func refusedAuthMakesTheCommandClientIdleAndTheNextCommandConnectsAtOnce() {
        var machine = self.machine(.commandClient, handshake: [self.auth])
        _ = machine.start(now: self.start)
        #expect(machine.connected(generation: 1, now: self.start) == .sendHandshake([self.auth]))
        #expect(
            machine.received(.error("WRONGPASS"), generation: 1, now: self.at(1))
                == .connectFailed(
                    self.error(.authenticationFailed, "Redis refused AUTH: WRONGPASS", command: "AUTH"),
                    closeConnection: true,
                    retry: nil
                )
        )
        #expect(machine.phase == .idle)
        #expect(machine.start(now: self.at(2)) == .connect(generation: 3))
    }

    @Test func refusedSelectAndSubscribeAndAnUnexpectedReply() {
        var machine = self.machine(.subscriber, handshake: [self.select, self.subscribe])
        _ = machine.start(now: self.start)
        _ = machine.connected(generation: 1, now: self.start)
        let delays = self.expectedDelays(3)
        #expect(
            machine.received(.error("ERR DB index is out of range"), generation: 1, now: self.start)
                == .connectFailed(
                    self.error(
                        .selectFailed,
                        "Redis refused SELECT 2: ERR DB index is out of range",
                        command: "SELECT"
                    ),
                    closeConnection: true,
                    retry: self.retry(2, at: self.start, after: delays[0], attempt: 1)
                )
        )

        var now = self.start + delays[0]
        #expect(machine.reconnectTimerFired(generation: 2, now: now, stillNeeded: true) == .connect(generation: 3))
        _ = machine.connected(generation: 3, now: now)
        #expect(machine.received(.simpleString("OK"), generation: 3, now: now) == .nothing)
        #expect(
            machine.received(.error("NOPERM"), generation: 3, now: now)
                == .connectFailed(
                    self.error(.commandFailed, "Redis refused SUBSCRIBE: NOPERM", command: "SUBSCRIBE"),
                    closeConnection: true,
                    retry: self.retry(4, at: now, after: delays[1], attempt: 2)
                )
        )

        now = now + delays[1]
        #expect(machine.reconnectTimerFired(generation: 4, now: now, stillNeeded: true) == .connect(generation: 5))
        _ = machine.connected(generation: 5, now: now)
        _ = machine.received(.simpleString("OK"), generation: 5, now: now)
        #expect(
            machine.received(.integer(1), generation: 5, now: now)
                == .connectFailed(
                    self.error(.protocolError, "unexpected reply to SUBSCRIBE: :1", command: "SUBSCRIBE"),
                    closeConnection: true,
                    retry: self.retry(6, at: now, after: delays[2], attempt: 3)
                )
        )
    }

    // MARK: backoff

    @Test func connectFailuresBackOffExponentiallyAndReadinessResetsTheBackoff() {
        var machine = self.machine(.subscriber)
        let delays = self.expectedDelays(5)
        let bases: [Int64] = [100, 200, 400, 400]
        var now = self.start
        #expect(machine.start(now: now) == .connect(generation: 1))
        for attempt in 1...4 {
            let generation = UInt64(2 * attempt - 1)
            let delay = delays[attempt - 1]
            let base = TimeAmount.milliseconds(bases[attempt - 1])
            #expect(delay >= .nanoseconds(base.nanoseconds / 2) && delay <= base, "attempt \(attempt): \(delay)")
            #expect(
                machine.connectFailed(generation: generation, error: self.refused, now: now)
                    == .connectFailed(
                        self.error(.connectionFailed, "cannot connect to Redis; is redis-server running there?"),
                        closeConnection: false,
                        retry: self.retry(generation + 1, at: now, after: delay, attempt: attempt)
                    )
            )
            #expect(machine.failedAttempts == attempt)
            // Early or stale timers do nothing.
            #expect(
                machine.reconnectTimerFired(generation: generation, now: now + delay, stillNeeded: true) == .nothing
            )
            now = now + delay
            #expect(
                machine.reconnectTimerFired(generation: generation + 1, now: now, stillNeeded: true)
                    == .connect(generation: generation + 2)
            )
        }
        #expect(machine.connected(generation: 9, now: now) == .becomeReady(isReconnect: false))
        #expect(machine.failedAttempts == 0)
        // The backoff starts over at its first step, with the generator's next number.
        var generator = SplitMix64(state: Self.seed)
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .milliseconds(400))
        for _ in 1...4 { _ = backoff.nextDelay(using: &generator) }
        backoff.reset()
        let next = TimeAmount(backoff.nextDelay(using: &generator))
        #expect(next <= .milliseconds(100))
        #expect(
            machine.connectionClosed(generation: 9, error: nil, now: now)
                == .connectionLost(
                    self.error(.connectionClosed, "Redis closed the connection"),
                    closeConnection: false,
                    retry: .init(generation: 10, at: now + next, delay: next, attempt: 1)
                )
        )
    }

    @Test func aLazyClientGoesIdleWhenTheBackoffEndsWithNothingToDo() {
        var machine = self.machine(.publisherWithOutbox)
        _ = machine.start(now: self.start)
        let delay = self.expectedDelays(1)[0]
        _ = machine.connectFailed(generation: 1, error: self.refused, now: self.start)
        #expect(machine.reconnectTimerFired(generation: 2, now: self.start + delay, stillNeeded: false) == .nothing)
        #expect(machine.phase == .idle)
        #expect(machine.start(now: self.start + delay) == .connect(generation: 3))
    }

    @Test func theCommandClientNeverBacksOff() {
        var machine = self.machine(.commandClient)
        _ = machine.start(now: self.start)
        #expect(
            machine.connectFailed(generation: 1, error: self.refused, now: self.start)
                == .connectFailed(
                    self.error(.connectionFailed, "cannot connect to Redis; is redis-server running there?"),
                    closeConnection: false,
                    retry: nil
                )
        )
        #expect(machine.phase == .idle)
        #expect(machine.start(now: self.start) == .connect(generation: 3))
        _ = machine.connected(generation: 3, now: self.start)
        #expect(
            machine.connectionClosed(generation: 3, error: nil, now: self.start)
                == .connectionLost(
                    self.error(.connectionClosed, "Redis closed the connection"),
                    closeConnection: false,
                    retry: nil
                )
        )
        #expect(machine.phase == .idle)
    }

    // MARK: losing a ready connection

    @Test func aLostConnectionIsRetriedOrLeftIdleByPolicy() {
        let failure = self.error(.timeout, "Redis did not answer within 5 seconds")
        let delay = self.expectedDelays(1)[0]
        var outbox = self.readyMachine(.publisherWithOutbox)
        #expect(
            outbox.abandon(failure, now: self.at(10))
                == .connectionLost(
                    failure,
                    closeConnection: true,
                    retry: self.retry(2, at: self.at(10), after: delay, attempt: 1)
                )
        )
        #expect(outbox.phase == .waitingToReconnect)

        var plain = self.readyMachine(.publisher)
        #expect(plain.abandon(failure, now: self.at(10)) == .connectionLost(failure, closeConnection: true, retry: nil))
        #expect(plain.phase == .idle)
        #expect(plain.start(now: self.at(10)) == .connect(generation: 3))
        #expect(plain.connected(generation: 3, now: self.at(11)) == .becomeReady(isReconnect: true))
    }

    @Test func aCloseErrorThatIsARedisErrorIsKept() {
        var machine = self.readyMachine(.commandClient)
        let cause = self.error(.protocolError, "not RESP")
        #expect(
            machine.connectionClosed(generation: 1, error: cause, now: self.start)
                == .connectionLost(cause, closeConnection: false, retry: nil)
        )
    }

    @Test func abandonNeedsAnOpenConnection() {
        let failure = self.error(.timeout, "late")
        var machine = self.machine(.commandClient, handshake: [self.auth])
        #expect(machine.abandon(failure, now: self.start) == .nothing)
        _ = machine.start(now: self.start)
        #expect(machine.abandon(failure, now: self.start) == .nothing, "connecting: the connect has its own timeout")
        #expect(machine.phase == .connecting)
        _ = machine.connected(generation: 1, now: self.start)
        #expect(machine.abandon(failure, now: self.start) == .connectFailed(failure, closeConnection: true, retry: nil))
        #expect(machine.phase == .idle)
    }

    // MARK: liveness

    @Test func silentConnectionIsPingedThenDeclaredDead() {
        var machine = self.readyMachine(.subscriber)
        #expect(machine.tick(now: self.at(999)) == .nothing)
        #expect(machine.tick(now: self.at(1000)) == .sendPing)
        #expect(machine.tick(now: self.at(2999)) == .nothing)
        let delay = self.expectedDelays(1)[0]
        #expect(
            machine.tick(now: self.at(3000))
                == .connectionLost(
                    self.error(.livenessTimeout, "no reply to PING within 2 s", command: "PING"),
                    closeConnection: true,
                    retry: self.retry(2, at: self.at(3000), after: delay, attempt: 1)
                )
        )
        // The dead connection's late pong and close are stale.
        #expect(machine.received(.array([]), generation: 1, now: self.at(3001)) == .nothing)
        #expect(machine.connectionClosed(generation: 1, error: nil, now: self.at(3002)) == .nothing)
        #expect(machine.phase == .waitingToReconnect)
    }

    @Test func anyReplyCountsAsLife() {
        var machine = self.readyMachine(.subscriber)
        #expect(machine.tick(now: self.at(1000)) == .sendPing)
        #expect(machine.received(.array([]), generation: 1, now: self.at(1500)) == .deliver)
        #expect(machine.tick(now: self.at(2499)) == .nothing)
        #expect(machine.tick(now: self.at(2500)) == .sendPing)
        #expect(machine.received(.integer(0), generation: 1, now: self.at(2600)) == .deliver)
        #expect(machine.tick(now: self.at(3599)) == .nothing)
    }

    @Test func suspendedLivenessIsNotCheckedAndRestartsFromTheResume() {
        var machine = self.readyMachine(.subscriber)
        machine.suspendLiveness()
        #expect(machine.tick(now: self.at(60_000)) == .nothing)
        machine.resumeLiveness(now: self.at(60_000))
        #expect(machine.tick(now: self.at(60_999)) == .nothing)
        #expect(machine.tick(now: self.at(61_000)) == .sendPing)
        // Suspended while reconnecting: the new connection is not pinged either.
        machine.suspendLiveness()
        _ = machine.connectionClosed(generation: 1, error: nil, now: self.at(61_001))
        let delay = self.expectedDelays(1)[0]
        _ = machine.reconnectTimerFired(generation: 2, now: self.at(61_001) + delay, stillNeeded: true)
        #expect(machine.connected(generation: 3, now: self.at(62_000)) == .becomeReady(isReconnect: true))
        #expect(machine.tick(now: self.at(90_000)) == .nothing)
    }

    @Test func clientsWithoutLivenessAreNeverPinged() {
        var machine = self.readyMachine(.publisher)
        #expect(machine.tick(now: self.at(3_600_000)) == .nothing)
        #expect(machine.isReady)
    }

    @Test func handshakeTimeout() {
        var machine = self.machine(.publisher, handshake: [self.auth, self.select], handshakeTimeout: .seconds(5))
        _ = machine.start(now: self.start)
        _ = machine.connected(generation: 1, now: self.start)
        #expect(machine.tick(now: self.at(4999)) == .nothing)
        _ = machine.received(.simpleString("OK"), generation: 1, now: self.at(4999))
        let delay = self.expectedDelays(1)[0]
        #expect(
            machine.tick(now: self.at(5000))
                == .connectFailed(
                    self.error(.timeout, "Redis did not answer SELECT within 5 s", command: "SELECT"),
                    closeConnection: true,
                    retry: self.retry(2, at: self.at(5000), after: delay, attempt: 1)
                )
        )

        var unbounded = self.machine(.subscriber, handshake: [self.subscribe])
        _ = unbounded.start(now: self.start)
        _ = unbounded.connected(generation: 1, now: self.start)
        #expect(unbounded.tick(now: self.at(3_600_000)) == .nothing)
    }

    // MARK: stale callbacks

    @Test func callbacksOfAGivenUpAttemptAreIgnored() {
        var machine = self.machine(.subscriber, handshake: [self.auth])
        _ = machine.start(now: self.start)
        _ = machine.connectFailed(generation: 1, error: self.refused, now: self.start)
        // The failed attempt reports again, and a stale success arrives: ignored, the new channel closed.
        #expect(machine.connectFailed(generation: 1, error: self.refused, now: self.start) == .nothing)
        #expect(machine.connected(generation: 1, now: self.start) == .discardConnection)
        #expect(machine.connectionClosed(generation: 1, error: nil, now: self.start) == .nothing)
        #expect(machine.received(.simpleString("OK"), generation: 1, now: self.start) == .nothing)
        #expect(machine.phase == .waitingToReconnect)
        let delay = self.expectedDelays(1)[0]
        #expect(machine.reconnectTimerFired(generation: 1, now: self.start + delay, stillNeeded: true) == .nothing)
        #expect(
            machine.reconnectTimerFired(generation: 2, now: self.start + delay, stillNeeded: true)
                == .connect(generation: 3)
        )
        #expect(machine.connected(generation: 2, now: self.start + delay) == .discardConnection)
        #expect(machine.connected(generation: 3, now: self.start + delay) == .sendHandshake([self.auth]))
        // A second `connected` for the same attempt is a protocol bug in the shell; the machine refuses it.
        #expect(machine.connected(generation: 3, now: self.start + delay) == .discardConnection)
        #expect(machine.phase == .handshaking)
    }

    @Test func inputsThatDoNotApplyInAStateDoNothing() {
        var machine = self.machine(.subscriber)
        #expect(machine.received(.integer(1), generation: 0, now: self.start) == .nothing)
        #expect(machine.connectionClosed(generation: 0, error: nil, now: self.start) == .nothing)
        #expect(machine.tick(now: self.start) == .nothing)
        #expect(machine.reconnectTimerFired(generation: 0, now: self.start, stillNeeded: true) == .nothing)
        #expect(machine.phase == .idle)
        _ = machine.start(now: self.start)
        #expect(machine.received(.integer(1), generation: 1, now: self.start) == .nothing)
        #expect(machine.tick(now: self.at(10_000)) == .nothing)
        #expect(machine.reconnectTimerFired(generation: 1, now: self.start, stillNeeded: true) == .nothing)
        #expect(machine.phase == .connecting)
        // A close while connecting is a failed connect.
        let delay = self.expectedDelays(1)[0]
        #expect(
            machine.connectionClosed(generation: 1, error: nil, now: self.start)
                == .connectFailed(
                    self.error(.connectionClosed, "Redis closed the connection"),
                    closeConnection: false,
                    retry: self.retry(2, at: self.start, after: delay, attempt: 1)
                )
        )
    }

    // MARK: shutdown in every state

    enum Where: CaseIterable { case idle, connecting, handshaking, ready, waitingToReconnect, closed }

    /// A subscriber machine driven to `place`; returns it with its current generation.
    func machine(at place: Where) -> (Machine, UInt64) {
        var machine = self.machine(.subscriber, handshake: [self.auth])
        if place == .idle { return (machine, 0) }
        _ = machine.start(now: self.start)
        switch place {
        case .idle, .connecting: break
        case .handshaking: _ = machine.connected(generation: 1, now: self.start)
        case .ready:
            _ = machine.connected(generation: 1, now: self.start)
            _ = machine.received(.simpleString("OK"), generation: 1, now: self.start)
        case .waitingToReconnect:
            _ = machine.connectFailed(generation: 1, error: self.refused, now: self.start)
        case .closed: _ = machine.shutdown()
        }
        return (machine, machine.generation)
    }

    @Test(arguments: Where.allCases)
    func callbacksOfAnotherGenerationChangeNothing(place: Where) {
        var (machine, generation) = self.machine(at: place)
        let phase = machine.phase
        for stale in [generation &- 1, generation &+ 1] {
            let later = self.at(100_000)
            #expect(machine.connected(generation: stale, now: later) == .discardConnection)
            #expect(machine.connectFailed(generation: stale, error: self.refused, now: later) == .nothing)
            #expect(machine.received(.simpleString("OK"), generation: stale, now: later) == .nothing)
            #expect(machine.connectionClosed(generation: stale, error: nil, now: later) == .nothing)
            #expect(machine.reconnectTimerFired(generation: stale, now: later, stillNeeded: true) == .nothing)
        }
        #expect(machine.phase == phase)
        #expect(machine.generation == generation)
    }

    @Test(arguments: Where.allCases)
    func abandonGivesUpOnlyAnOpenConnection(place: Where) {
        var (machine, generation) = self.machine(at: place)
        let failure = self.error(.protocolError, "Redis sent a reply nobody asked for: :1")
        let now = self.at(7)
        // The first failure since the machine was created (or last ready): the backoff's first step.
        let retry = self.retry(generation + 1, at: now, after: self.expectedDelays(1)[0], attempt: 1)
        switch place {
        case .idle, .connecting, .waitingToReconnect, .closed:
            #expect(machine.abandon(failure, now: now) == .nothing)
            #expect(machine.phase == .init(place))
        case .handshaking:
            // Not ready yet: a failed connect.
            #expect(machine.abandon(failure, now: now) == .connectFailed(failure, closeConnection: true, retry: retry))
            #expect(machine.phase == .waitingToReconnect)
        case .ready:
            #expect(machine.abandon(failure, now: now) == .connectionLost(failure, closeConnection: true, retry: retry))
            #expect(machine.phase == .waitingToReconnect)
        }
    }

    @Test(arguments: Where.allCases)
    func shutdownClosesWhatIsOpenAndEndsEverything(place: Where) {
        var (machine, generation) = self.machine(at: place)
        #expect(machine.phase == .init(place))
        let expected: Machine.Action
        switch place {
        case .idle, .connecting, .waitingToReconnect: expected = .shutDown(closeConnection: false)
        case .handshaking, .ready: expected = .shutDown(closeConnection: true)
        case .closed: expected = .nothing
        }
        #expect(machine.shutdown() == expected)
        #expect(machine.phase == .closed)
        #expect(machine.shutdown() == .nothing)
        // Nothing the old connection or a timer reports does anything, and nothing starts again.
        let later = self.at(100_000)
        #expect(machine.connected(generation: generation, now: later) == .discardConnection)
        #expect(machine.connectFailed(generation: generation, error: self.refused, now: later) == .nothing)
        #expect(machine.received(.simpleString("OK"), generation: generation, now: later) == .nothing)
        #expect(machine.connectionClosed(generation: generation, error: nil, now: later) == .nothing)
        #expect(machine.abandon(self.error(.timeout, "late"), now: later) == .nothing)
        #expect(machine.tick(now: later) == .nothing)
        #expect(machine.reconnectTimerFired(generation: generation, now: later, stillNeeded: true) == .nothing)
        #expect(machine.start(now: later) == .nothing)
        #expect(machine.phase == .closed)
    }
}

extension RedisConnectionStateMachine.Phase {
    init(_ place: RedisConnectionStateMachineTests.Where) {
        switch place {
        case .idle: self = .idle
        case .connecting: self = .connecting
        case .handshaking: self = .handshaking
        case .ready: self = .ready
        case .waitingToReconnect: self = .waitingToReconnect
        case .closed: self = .closed
        }
    }
}
