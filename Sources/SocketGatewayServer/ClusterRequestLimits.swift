/// The bounds on cluster-wide requests (``SocketGateway/fetchSockets(_:options:timeout:)`` and the other cluster
/// operations) that one server keeps, asking and answering; ``SocketServerRedisConfiguration/requestLimits``.
///
/// Each bound holds against a peer that floods the request channel (any process that can publish on the Redis
/// server can, unless `SOCKET_REDIS_SIGNING_SECRET` is set): what is over it is refused at once and counted, never
/// queued.
public struct ClusterRequestLimits: Sendable, Hashable {
    /// The most requests of this server waiting for answers at once (`SOCKET_REDIS_REQUESTS_MAX_PENDING`, default
    /// 64); one more throws ``ClusterRequestError`` `tooManyPending` at once.
    public var maxPending: Int
    /// The most other servers' requests this server answers at once (`SOCKET_REDIS_REQUESTS_MAX_ANSWERING`, default
    /// 64); one more gets an error answer (`busy`) at once and is counted (`cluster_requests.refused_busy`).
    public var maxAnswering: Int
    /// The largest request or answer sent or read, in bytes (`SOCKET_REDIS_REQUESTS_MAX_BYTES`, default 1 MiB): a
    /// larger answer is replaced by an error answer, a larger request is not sent (the call's `failure` says why),
    /// a larger message received is counted (`cluster_requests.garbled`) and skipped.
    public var maxMessageBytes: Int

    /// The default `maxPending` and `maxAnswering`.
    public static let defaultMaxRequests = 64
    /// The default `maxMessageBytes`, 1 MiB.
    public static let defaultMaxMessageBytes = 1 << 20
    /// The smallest `maxMessageBytes` accepted: below it a server could not answer a `serverCount`.
    public static let minimumMessageBytes = 1024

    /// Creates bounds.
    public init(
        maxPending: Int = ClusterRequestLimits.defaultMaxRequests,
        maxAnswering: Int = ClusterRequestLimits.defaultMaxRequests,
        maxMessageBytes: Int = ClusterRequestLimits.defaultMaxMessageBytes
    ) {
        self.maxPending = maxPending
        self.maxAnswering = maxAnswering
        self.maxMessageBytes = maxMessageBytes
    }

    /// The first bound that cannot be used, as (name, message).
    func problem() -> (name: String, message: String)? {
        if self.maxPending < 1 { return ("maxPending", "must be at least 1, got \(self.maxPending)") }
        if self.maxAnswering < 1 { return ("maxAnswering", "must be at least 1, got \(self.maxAnswering)") }
        if self.maxMessageBytes < Self.minimumMessageBytes {
            return (
                "maxMessageBytes",
                "must be at least \(Self.minimumMessageBytes) bytes, got \(self.maxMessageBytes)"
            )
        }
        return nil
    }
}
