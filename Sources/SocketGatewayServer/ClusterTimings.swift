/// The timings of a clustered server's link to the other servers (``SocketServerRedisConfiguration/timings``).
///
/// The defaults suit servers next to their Redis (same data centre): a lost connection is noticed within about
/// two seconds and retried within a second of Redis coming back. Every value must be positive
/// (``SocketServerConfiguration/validate()`` throws otherwise).
public struct ClusterTimings: Sendable, Hashable {
    /// How long a client here has to ack an emit that another server sent with a callback
    /// (``SocketGateway/emitWithAck(_:arguments:to:namespace:timeout:)`` there); default 60 s. The emitting server
    /// applies its own timeout too; this one bounds how long this server holds the pending ack.
    public var remoteAckTimeout: Duration
    /// How long opening a Redis connection (TCP, `AUTH`, `SELECT`, `SUBSCRIBE`) may take; default 1 s.
    public var connectTimeout: Duration
    /// How long Redis may take to answer a `PUBLISH` before the publisher's connection is taken as broken and
    /// reopened (the message is sent again); default 5 s.
    public var replyTimeout: Duration
    /// The base wait before the first reconnect to Redis; default 100 ms. The actual wait is 50–100 % of the base
    /// (jitter), and the base doubles with each failed attempt, up to ``maxReconnectDelay``.
    public var reconnectDelay: Duration
    /// The largest base wait between reconnect attempts; default 1 s.
    public var maxReconnectDelay: Duration
    /// How often the subscriber checks a silent connection with a `PING`; default 1 s.
    public var livenessInterval: Duration
    /// How long that `PING` may go unanswered before the subscriber reconnects (and resubscribes); default 1 s.
    /// A dead connection is noticed within ``livenessInterval`` + ``livenessTimeout``.
    public var livenessTimeout: Duration
    /// With a signing secret: how far a signed message's timestamp may be from this server's clock before the
    /// message is refused (replay window); default 60 s.
    public var signedMessageMaxAge: Duration

    /// Creates timings; every parameter defaults to the value documented on its property.
    public init(
        remoteAckTimeout: Duration = .seconds(60),
        connectTimeout: Duration = .seconds(1),
        replyTimeout: Duration = .seconds(5),
        reconnectDelay: Duration = .milliseconds(100),
        maxReconnectDelay: Duration = .seconds(1),
        livenessInterval: Duration = .seconds(1),
        livenessTimeout: Duration = .seconds(1),
        signedMessageMaxAge: Duration = .seconds(60)
    ) {
        self.remoteAckTimeout = remoteAckTimeout
        self.connectTimeout = connectTimeout
        self.replyTimeout = replyTimeout
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
        self.livenessInterval = livenessInterval
        self.livenessTimeout = livenessTimeout
        self.signedMessageMaxAge = signedMessageMaxAge
    }

    /// The first setting that cannot be used, as (name, problem); nil when all can.
    func problem() -> (name: String, message: String)? {
        let all: [(String, Duration)] = [
            ("remoteAckTimeout", self.remoteAckTimeout), ("connectTimeout", self.connectTimeout),
            ("replyTimeout", self.replyTimeout), ("reconnectDelay", self.reconnectDelay),
            ("maxReconnectDelay", self.maxReconnectDelay), ("livenessInterval", self.livenessInterval),
            ("livenessTimeout", self.livenessTimeout), ("signedMessageMaxAge", self.signedMessageMaxAge),
        ]
        for (name, value) in all where value <= .zero {
            return (name, "must be positive, got \(value)")
        }
        if self.maxReconnectDelay < self.reconnectDelay {
            return ("maxReconnectDelay", "must be at least reconnectDelay (\(self.reconnectDelay))")
        }
        return nil
    }
}
