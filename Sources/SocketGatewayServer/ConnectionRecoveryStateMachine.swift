import NIOCore

/// What one server keeps so that a client which lost its connection can come back to the same session within a
/// window (socket.io's connection state recovery, Socket.IO v5's `pid` and per-packet offsets): the sessions that
/// ended on a transport failure, and a log of the events emitted to rooms, each with an offset.
///
/// A pure value type with time passed in; ``ConnectionRecovery`` keeps it under a lock. `Packet` is the encoded
/// packet (the server stores the bytes it sent, so a replay writes them again); tests use plain values.
///
/// Bounds (see ``Limits``): a disconnected session is kept for `maxDisconnectionDuration`, with at most
/// `maxRoomsPerSession` rooms, and at most `maxSessions` of them (the oldest is dropped first). The packet log keeps
/// what was emitted within `maxDisconnectionDuration`, and at most `maxPackets` packets and `maxPacketBytes` bytes
/// (the oldest are dropped first). A recovery replays at most `maxMissedPackets` packets. Whenever a bound is hit
/// recovery fails cleanly: the client gets a fresh session (a new sid, no rooms), as when it comes back too late.
struct ConnectionRecoveryStateMachine<Packet: Sendable>: Sendable {
    /// The bounds of the state, with socket.io's window as the default.
    struct Limits: Sendable, Hashable {
        /// How long a disconnected session (and an emitted packet) is kept. Default 2 minutes.
        var maxDisconnectionDuration: TimeAmount = .minutes(2)
        /// Disconnected sessions kept at once. Default 10,000.
        var maxSessions: Int = 10_000
        /// Rooms one session may be in to be kept (its own sid and user room included). Default 256.
        var maxRoomsPerSession: Int = 256
        /// Packets kept in the log. Default 10,000.
        var maxPackets: Int = 10_000
        /// Bytes of the packets kept in the log. Default 16 MiB.
        var maxPacketBytes: Int = 16 << 20
        /// Packets one recovery may replay. Default 1,000.
        var maxMissedPackets: Int = 1_000
    }

    /// A connection that ended on a transport failure and may be recovered.
    struct Session: Sendable {
        /// The Socket.IO sid the connection had (and gets back).
        var sid: String
        /// The private session id the client presents to recover it.
        var pid: String
        var namespace: String
        /// The authenticated user, if any: only the same user may recover the session (unless the claim skips
        /// authentication: then the session's user is restored as it was).
        var userID: String?
        /// Every room it was in.
        var rooms: [String]
        /// The user as the middlewares set it (restored when a recovery skips the middlewares).
        var user: AuthenticatedUser? = nil
        /// The per-socket data the connection had (restored on recovery, as socket.io restores `socket.data`).
        var data = SocketData()
    }

    /// Why a client that asked for recovery gets a fresh session.
    enum Refusal: String, Hashable, Sendable {
        /// No session with that pid: never persisted, already claimed, dropped for `maxSessions`, or expired long
        /// enough ago to have been swept by another call.
        case unknownSession = "unknown session"
        /// The session was disconnected longer than `maxDisconnectionDuration` ago.
        case expired
        /// The pid belongs to another namespace or another user.
        case mismatch
        /// The offset is not one this server issued.
        case unknownOffset = "unknown offset"
        /// Packets after the client's offset were dropped from the log (by age, `maxPackets` or `maxPacketBytes`).
        case packetsDropped = "packets dropped"
        /// More than `maxMissedPackets` packets would be replayed.
        case tooManyMissedPackets = "too many missed packets"
    }

    /// The outcome of presenting a pid and an offset (the first step of a recovery).
    enum Claim {
        /// The session is taken out of the store; the client had every packet up to `counter`.
        case claimed(Session, lastReceived: UInt64)
        /// A fresh session.
        case refused(Refusal)
    }

    /// The packets to replay for a claimed session (the second step, when its connection joins its rooms).
    enum Replay {
        /// Send `missed` in order; every logged packet up to `replayedThrough` was considered (so a live delivery
        /// of one of them must be skipped).
        case replay(missed: [Packet], replayedThrough: UInt64)
        /// A fresh session.
        case refused(Refusal)
    }

    /// What happened to a session that asked to be kept.
    enum Persist: Hashable {
        case persisted
        /// Kept, and the oldest session was dropped to make room (`maxSessions`).
        case persistedDroppingOldest
        /// Not kept: in more than `maxRoomsPerSession` rooms.
        case tooManyRooms
    }

    private struct LoggedPacket: Sendable {
        var counter: UInt64
        var namespace: String
        /// nil: the whole namespace.
        var rooms: [String]?
        var excluding: Set<String>
        var packet: Packet
        var bytes: Int
        var emittedAt: NIODeadline
    }

    let limits: Limits
    /// Starts every offset this server issues, so an offset from another server or an earlier run (or a client
    /// argument that happens to be a string) is not mistaken for one of ours.
    let offsetPrefix: String
    private var nextCounter: UInt64 = 1
    /// The log, oldest first, from `head` on (the slots before it are dropped and compacted away in batches).
    private var packets: [LoggedPacket] = []
    private var head = 0
    private(set) var loggedBytes = 0
    private var sessions: [String: (session: Session, disconnectedAt: NIODeadline)] = [:]
    /// pids in the order they were persisted (with that time), for expiry and `maxSessions`; entries whose session
    /// was recovered or replaced are skipped when reached.
    private var sessionOrder: [(pid: String, disconnectedAt: NIODeadline)] = []
    private var sessionOrderHead = 0
    /// Sessions that left the store other than by a claim (expired, dropped for `maxSessions`, replaced by a new
    /// persist of the same pid), until ``takeReleased()``: the server stops holding their rooms present.
    private var released: [Session] = []
    /// Whether the owner has a sweep scheduled (``armSweep()`` / ``sweep(now:)``).
    private var sweepArmed = false

    init(limits: Limits, offsetPrefix: String) {
        self.limits = limits
        self.offsetPrefix = offsetPrefix
    }

    /// The packets in the log.
    var loggedPackets: Int { self.packets.count - self.head }
    /// The disconnected sessions kept.
    var sessionCount: Int { self.sessions.count }

    /// The sessions that left the store since the last call, other than by a claim.
    mutating func takeReleased() -> [Session] {
        defer { self.released = [] }
        return self.released
    }

    /// The offset string of the packet numbered `counter`.
    func offset(_ counter: UInt64) -> String {
        self.offsetPrefix + String(counter, radix: 36)
    }

    /// The counter of `offset`, if this server issued it.
    func counter(of offset: String) -> UInt64? {
        guard offset.hasPrefix(self.offsetPrefix),
            let counter = UInt64(offset.dropFirst(self.offsetPrefix.count), radix: 36),
            counter > 0, counter < self.nextCounter
        else { return nil }
        return counter
    }

    /// Reserves the next offset; the caller builds the packet with it as its last argument and logs it at once
    /// (the log must stay in offset order, without gaps).
    mutating func nextOffset() -> (counter: UInt64, offset: String) {
        defer { self.nextCounter += 1 }
        return (self.nextCounter, self.offset(self.nextCounter))
    }

    /// Logs an emitted packet (its offset from ``nextOffset()``), then drops what is beyond the bounds.
    mutating func log(
        _ packet: Packet,
        counter: UInt64,
        bytes: Int,
        namespace: String,
        rooms: [String]?,
        excluding: Set<String>,
        now: NIODeadline
    ) {
        self.packets.append(
            LoggedPacket(
                counter: counter,
                namespace: namespace,
                rooms: rooms,
                excluding: excluding,
                packet: packet,
                bytes: bytes,
                emittedAt: now
            )
        )
        self.loggedBytes += bytes
        self.expire(now: now)
    }

    /// Keeps the session of a connection that ended on a transport failure.
    mutating func persist(_ session: Session, now: NIODeadline) -> Persist {
        self.expire(now: now)
        guard session.rooms.count <= self.limits.maxRoomsPerSession else { return .tooManyRooms }
        var outcome = Persist.persisted
        if self.sessions[session.pid] == nil, self.sessions.count >= self.limits.maxSessions {
            self.dropOldestSession()
            outcome = .persistedDroppingOldest
        }
        if let replaced = self.sessions.updateValue((session, now), forKey: session.pid) {
            self.released.append(replaced.session)
        }
        self.sessionOrder.append((session.pid, now))
        return outcome
    }

    /// A client presents `pid` and the `offset` of the last packet it received, connecting to `namespace` as
    /// `userID`. A session is claimed at most once: it is removed unless the pid belongs to another namespace or
    /// user (then it stays for its owner).
    ///
    /// With `authenticated` false (socket.io's `skipMiddlewares`: no middleware ran, so no user is known) the user
    /// is not compared: the pid alone, a secret only that client was given, claims the session and its user.
    mutating func claim(
        pid: String,
        offset: String,
        namespace: String,
        userID: String?,
        authenticated: Bool = true,
        now: NIODeadline
    ) -> Claim {
        guard let kept = self.sessions[pid] else {
            self.expire(now: now)
            return .refused(.unknownSession)
        }
        let session = kept.session
        guard kept.disconnectedAt + self.limits.maxDisconnectionDuration >= now else {
            self.expire(now: now)
            return .refused(.expired)
        }
        self.expire(now: now)
        guard session.namespace == namespace, !authenticated || session.userID == userID else {
            return .refused(.mismatch)
        }
        self.sessions.removeValue(forKey: pid)
        guard let last = self.counter(of: offset) else { return .refused(.unknownOffset) }
        return .claimed(session, lastReceived: last)
    }

    /// The packets of `session`'s namespace and rooms logged after `counter`, in order.
    mutating func missedPackets(of session: Session, after counter: UInt64, now: NIODeadline) -> Replay {
        self.expire(now: now)
        // Every packet after `counter` must still be in the log.
        let firstKept = self.head < self.packets.count ? self.packets[self.head].counter : self.nextCounter
        guard counter + 1 >= firstKept else { return .refused(.packetsDropped) }
        var missed: [Packet] = []
        let rooms = Set(session.rooms)
        var index = self.head + Int(counter + 1 - firstKept)
        while index < self.packets.count {
            let logged = self.packets[index]
            index += 1
            guard logged.namespace == session.namespace, logged.excluding.isDisjoint(with: rooms) else { continue }
            if let targets = logged.rooms, !targets.contains(where: rooms.contains) { continue }
            guard missed.count < self.limits.maxMissedPackets else { return .refused(.tooManyMissedPackets) }
            missed.append(logged.packet)
        }
        return .replay(missed: missed, replayedThrough: self.nextCounter - 1)
    }

    /// Drops the sessions and packets older than the window, and packets beyond `maxPackets`/`maxPacketBytes`.
    mutating func expire(now: NIODeadline) {
        let window = self.limits.maxDisconnectionDuration
        while self.head < self.packets.count {
            let oldest = self.packets[self.head]
            guard
                oldest.emittedAt + window < now || self.loggedPackets > self.limits.maxPackets
                    || self.loggedBytes > self.limits.maxPacketBytes
            else { break }
            self.loggedBytes -= oldest.bytes
            self.head += 1
        }
        if self.head > 64, self.head * 2 > self.packets.count {
            self.packets.removeFirst(self.head)
            self.head = 0
        }
        while self.sessionOrderHead < self.sessionOrder.count {
            let (pid, disconnectedAt) = self.sessionOrder[self.sessionOrderHead]
            if let kept = self.sessions[pid], kept.disconnectedAt == disconnectedAt {
                guard disconnectedAt + window < now else { break }
                self.sessions.removeValue(forKey: pid)
                self.released.append(kept.session)
            }
            self.sessionOrderHead += 1
        }
        self.compactSessionOrder()
    }

    /// The earliest time at which ``expire(now:)`` drops something for age: the oldest packet's or kept
    /// session's end of window; nil when nothing is held.
    var nextExpiry: NIODeadline? {
        let window = self.limits.maxDisconnectionDuration
        var earliest: NIODeadline?
        if self.head < self.packets.count {
            earliest = self.packets[self.head].emittedAt + window + .nanoseconds(1)
        }
        for (pid, disconnectedAt) in self.sessionOrder[self.sessionOrderHead...] {
            guard let kept = self.sessions[pid], kept.disconnectedAt == disconnectedAt else { continue }
            let end = disconnectedAt + window + .nanoseconds(1)
            earliest = min(earliest ?? end, end)
            break
        }
        return earliest
    }

    /// Something was logged or kept: when the owner must sweep, unless a sweep is already armed (then nil).
    /// Without sweeps, what a burst left would stay until the next emit or connect.
    mutating func armSweep() -> NIODeadline? {
        guard !self.sweepArmed, let next = self.nextExpiry else { return nil }
        self.sweepArmed = true
        return next
    }

    /// The armed sweep ran at `now`: drops what left the window, then returns when to sweep next (nil when
    /// nothing is held any more; the next log or persist arms it again).
    mutating func sweep(now: NIODeadline) -> NIODeadline? {
        self.sweepArmed = false
        self.expire(now: now)
        return self.armSweep()
    }

    private mutating func dropOldestSession() {
        while self.sessionOrderHead < self.sessionOrder.count {
            let (pid, disconnectedAt) = self.sessionOrder[self.sessionOrderHead]
            self.sessionOrderHead += 1
            if let kept = self.sessions[pid], kept.disconnectedAt == disconnectedAt {
                self.sessions.removeValue(forKey: pid)
                self.released.append(kept.session)
                break
            }
        }
        self.compactSessionOrder()
    }

    private mutating func compactSessionOrder() {
        if self.sessionOrderHead > 64, self.sessionOrderHead * 2 > self.sessionOrder.count {
            self.sessionOrder.removeFirst(self.sessionOrderHead)
            self.sessionOrderHead = 0
        }
    }
}
