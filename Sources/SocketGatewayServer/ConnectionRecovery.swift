import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayEngineIO

/// Connection state recovery (socket.io 4.6's `connectionStateRecovery`): a client that lost its connection and
/// comes back within ``maxDisconnectionDuration`` gets the same sid, its rooms, and the events emitted to it
/// meanwhile, in order; ``SocketConnection/recovered`` is then true. Off unless
/// ``SocketServerConfiguration/connectionStateRecovery`` is set.
///
/// With it on, the CONNECT reply carries a private session id (`pid`), and every event emitted through
/// ``SocketGateway/emit(_:arguments:to:options:)`` or ``SocketConnection/emit(_:arguments:)`` carries an offset as
/// its last argument (as socket.io's do; socket.io-client keeps the last one and sends both back when it
/// reconnects). Events with an ack and volatile events carry none and are not replayed. Only sessions that ended
/// on a transport failure (ping timeout, closed transport, server shutdown) are kept — not a client's or the
/// server's `disconnect()`, nor a client closed for breaking a limit. The middlewares (the authenticator among
/// them) run on every reconnect and only the same user gets the session back, unless ``skipMiddlewares`` is set.
/// The connection's ``SocketConnection/data`` is restored, with what the middlewares set on top.
///
/// Memory is bounded (the defaults in parentheses): a session is kept with at most ``maxRoomsPerSession`` (256)
/// rooms, and at most ``maxSessions`` (10,000) at once (the oldest is dropped first); the log of emitted events
/// keeps those of the window, at most ``maxPackets`` (10,000) and ``maxPacketBytes`` (16 MiB), oldest dropped
/// first; one recovery replays at most ``maxMissedPackets`` (1,000). When a bound is hit, recovery fails cleanly:
/// the client gets a fresh session (a new sid and pid, no rooms), exactly as when it comes back too late.
///
/// Recovery is per server: the session and the log live in this server's memory, so behind a load balancer the
/// client must come back to the same server (sticky sessions, which long-polling needs anyway).
public struct ConnectionStateRecoveryConfiguration: Sendable, Hashable {
    /// How long a disconnected session, and an emitted event, are kept. Default 2 minutes (socket.io's).
    public var maxDisconnectionDuration: Duration
    /// Disconnected sessions kept at once. Default 10,000.
    public var maxSessions: Int = 10_000
    /// Rooms a session may be in to be kept (its sid and user room included). Default 256.
    public var maxRoomsPerSession: Int = 256
    /// Emitted events kept. Default 10,000.
    public var maxPackets: Int = 10_000
    /// Bytes of emitted events kept. Default 16 MiB.
    public var maxPacketBytes: Int = 16 << 20
    /// Events one recovery may replay. Default 1,000.
    public var maxMissedPackets: Int = 1_000
    /// Whether a recovered session skips the middlewares (socket.io's `skipMiddlewares`). Default false.
    ///
    /// When set, a client presenting a kept session's `pid` and a usable `offset` gets the session back without
    /// any middleware running: its user and data are restored as they were (the `pid`, given only to that client
    /// in its CONNECT reply, is the credential). A client whose recovery fails runs the middlewares as any other.
    public var skipMiddlewares: Bool = false

    /// Turns recovery on with the window `maxDisconnectionDuration` (default 2 minutes).
    public init(maxDisconnectionDuration: Duration = .seconds(120)) {
        self.maxDisconnectionDuration = maxDisconnectionDuration
    }

    /// Throws for a bound below 1 or a window that is not positive.
    func validate() throws(SocketServerConfigurationError) {
        if self.maxDisconnectionDuration <= .zero {
            throw SocketServerConfigurationError(
                variable: "connectionStateRecovery.maxDisconnectionDuration",
                message: "must be positive, got \(self.maxDisconnectionDuration)"
            )
        }
        for (name, value) in [
            ("maxSessions", self.maxSessions), ("maxRoomsPerSession", self.maxRoomsPerSession),
            ("maxPackets", self.maxPackets), ("maxPacketBytes", self.maxPacketBytes),
            ("maxMissedPackets", self.maxMissedPackets),
        ] where value < 1 {
            throw SocketServerConfigurationError(
                variable: "connectionStateRecovery.\(name)",
                message: "must be at least 1, got \(value)"
            )
        }
    }

    var limits: ConnectionRecoveryStateMachine<EngineIOOutboundMessage>.Limits {
        .init(
            maxDisconnectionDuration: TimeAmount(self.maxDisconnectionDuration),
            maxSessions: self.maxSessions,
            maxRoomsPerSession: self.maxRoomsPerSession,
            maxPackets: self.maxPackets,
            maxPacketBytes: self.maxPacketBytes,
            maxMissedPackets: self.maxMissedPackets
        )
    }
}

/// The server's ``ConnectionRecoveryStateMachine`` under a lock: emits on every event loop log into it, connects
/// and disconnects consult it. Every call is short (no I/O under the lock).
///
/// A kept session holds its namespace and rooms present in ``LocalRoomPresence`` (on shard 0, with no member), so
/// that emits from other servers and workers for them still reach this server and are logged while the client is
/// away; the hold ends when the session is claimed (after its connection joined the rooms), expires or is dropped.
final class ConnectionRecovery: Sendable {
    typealias Machine = ConnectionRecoveryStateMachine<EngineIOOutboundMessage>
    private let machine: NIOLockedValueBox<Machine>
    private let presence: LocalRoomPresence
    /// Where the sweeps run that drop what left the window when nothing else calls in (an idle server after a
    /// burst of emits to disconnected sessions gives the memory back within the window).
    private let sweepLoop: any EventLoop

    /// Whether a recovery skips the middlewares (``ConnectionStateRecoveryConfiguration/skipMiddlewares``).
    let skipMiddlewares: Bool

    init(configuration: ConnectionStateRecoveryConfiguration, presence: LocalRoomPresence, sweepLoop: any EventLoop) {
        self.skipMiddlewares = configuration.skipMiddlewares
        // A per-run prefix: offsets of another run (or another server) are never mistaken for this one's.
        self.machine = NIOLockedValueBox(Machine(limits: configuration.limits, offsetPrefix: SessionID.random() + "-"))
        self.presence = presence
        self.sweepLoop = sweepLoop
    }

    /// Schedules the sweep at `deadline` (from the machine's `armSweep()` or `sweep(now:)`).
    private func scheduleSweep(at deadline: NIODeadline?) {
        guard let deadline else { return }
        self.sweepLoop.scheduleTask(deadline: deadline) { [self] in
            let now = NIODeadline.now()
            self.scheduleSweep(at: self.withMachine { $0.sweep(now: now) })
        }
    }

    /// Runs `body` on the machine under the lock, then ends the presence holds of the sessions it released.
    private func withMachine<Result>(_ body: (inout Machine) -> Result) -> Result {
        let (result, released) = self.machine.withLockedValue { machine in
            let result = body(&machine)
            return (result, machine.takeReleased())
        }
        for session in released { self.releaseHold(of: session) }
        return result
    }

    private func hold(_ session: Machine.Session) {
        self.presence.add(namespace: session.namespace, room: nil, shard: 0)
        for room in session.rooms {
            self.presence.add(namespace: session.namespace, room: room, shard: 0, isSessionRoom: room == session.sid)
        }
    }

    /// Ends what ``persist(_:)`` held for `session` (the caller does so for a claimed session once its connection
    /// joined the rooms, or was refused).
    func releaseHold(of session: Machine.Session) {
        for room in session.rooms {
            self.presence.remove(namespace: session.namespace, room: room, shard: 0, isSessionRoom: room == session.sid)
        }
        self.presence.remove(namespace: session.namespace, room: nil, shard: 0)
    }

    /// Encodes an EVENT with the next offset appended to `arguments` and logs it for recovery.
    /// - Returns: The message and its offset's counter (deliveries skip connections that replayed it already).
    func logEvent(
        _ event: String,
        arguments: [JSONValue],
        namespace: String,
        rooms: [String]?,
        excluding: Set<String>
    ) -> (message: EngineIOOutboundMessage, counter: UInt64) {
        let now = NIODeadline.now()
        let logged = self.withMachine { machine in
            // Encoded under the lock so the log stays in offset order.
            let (counter, offset) = machine.nextOffset()
            let message = SocketIOWire.event(
                namespace: namespace,
                event: event,
                arguments: arguments + [.string(offset)],
                ackID: nil
            )
            machine.log(
                message,
                counter: counter,
                bytes: message.webSocketFrames.readableBytes,
                namespace: namespace,
                rooms: rooms,
                excluding: excluding,
                now: now
            )
            return (message: message, counter: counter, sweep: machine.armSweep())
        }
        self.scheduleSweep(at: logged.sweep)
        return (logged.message, logged.counter)
    }

    /// Keeps `session` and holds its rooms present (unless it is not kept).
    func persist(_ session: Machine.Session) -> Machine.Persist {
        let now = NIODeadline.now()
        // Held before it enters the store, so a release (by another thread's expiry) never precedes the hold.
        self.hold(session)
        let (outcome, sweep) = self.withMachine { ($0.persist(session, now: now), $0.armSweep()) }
        if outcome == .tooManyRooms { self.releaseHold(of: session) }
        self.scheduleSweep(at: sweep)
        return outcome
    }

    /// Claims the session `pid`; with `authenticated` false (no middleware ran) the user is not compared.
    func claim(
        pid: String,
        offset: String,
        namespace: String,
        userID: String?,
        authenticated: Bool = true
    )
        -> Machine.Claim
    {
        let now = NIODeadline.now()
        return self.withMachine {
            $0.claim(
                pid: pid,
                offset: offset,
                namespace: namespace,
                userID: userID,
                authenticated: authenticated,
                now: now
            )
        }
    }

    func missedPackets(of session: Machine.Session, after counter: UInt64) -> Machine.Replay {
        let now = NIODeadline.now()
        return self.withMachine { $0.missedPackets(of: session, after: counter, now: now) }
    }

    /// Sessions and packets held (for tests and diagnostics).
    var held: (sessions: Int, packets: Int, bytes: Int) {
        self.machine.withLockedValue { ($0.sessionCount, $0.loggedPackets, $0.loggedBytes) }
    }
}
