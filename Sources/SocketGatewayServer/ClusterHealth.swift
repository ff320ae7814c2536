package import NIOCore
package import NIOHTTP1
import SocketGatewayCore
package import SocketGatewayEngineIO
package import SocketGatewayRedis

/// How a server's link to the other servers of its cluster is doing.
public struct ClusterHealth: Sendable, Hashable {
    /// Whether the server is clustered.
    public enum Mode: Sendable, Hashable {
        /// No Redis configured: emits reach only this server's clients.
        case localOnly
        /// Subscribed to a Redis channel shared with the other servers and workers.
        case redis(channel: String)
        /// Clustered by an application's own ``ClusterAdapter``, named `name` in `/healthz` (`mode`).
        case custom(name: String)
    }

    /// The mode.
    public var mode: Mode
    /// This server's `host_id` on the channel (Redis mode only).
    public var hostID: String?
    /// Whether the subscriber is connected and subscribed (Redis mode; `nil` when local-only). A ``Mode/custom(name:)``
    /// adapter reports its own link here (`false`: down, so `/healthz` answers 503).
    public var redisConnected: Bool?
    /// Time since the subscriber last received a message (any host's); `nil` before the first.
    public var lastMessageAge: Duration?
    /// How many times the subscriber had to resubscribe after losing its connection.
    public var reconnects: Int
    /// Why the subscriber is not subscribed right now; `nil` while it is (past errors are in the log).
    public var lastError: String?
    /// Why the subscriber's last subscribed connection ended; kept after it recovered (Redis mode).
    public var lastDisconnect: String?
    /// Whether the publisher currently has an open connection (Redis mode only).
    public var publisherConnected: Bool?
    /// Emits dropped from the publisher's full outbox since start.
    public var droppedFromOutbox: Int
    /// Remote events rejected by `SocketServerConfiguration.inboundValidation` since start (dropped in strict
    /// mode, delivered anyway in log-only mode).
    public var inboundRejected: Int
    /// Messages on the channel that could not be decoded (not JSON, wrong types, unknown method) and were
    /// skipped, since start. An emit whose target names nobody here is not read further, so it counts in
    /// ``skippedNotLocal`` even when it is malformed past its target.
    public var undecodable: Int
    /// Messages skipped because the server requires signed messages and theirs was missing, wrong or too old
    /// (see ``SocketServerRedisConfiguration/signingSecret``), since start.
    public var unverified: Int
    /// Whether this server has stopped reading Redis because its event loops are behind with what it read (they
    /// catch up first; Redis holds what is published meanwhile).
    public var readingPaused: Bool
    /// How many times reading Redis was paused since start.
    public var readingPauses: Int
    /// The Redis channel layout (`python` or `rooms`, see ``SocketServerRedisConfiguration/mode``); Redis mode only.
    public var channelMode: String?
    /// Room channels subscribed now (room-channel mode; the ones waiting out their unsubscribe delay included).
    public var roomChannels: Int
    /// Emits from other hosts skipped on arrival because no member of their rooms (or namespace) is connected
    /// to this server, since start: read up to their target (`method`, `namespace`, `room`, `host_id`), never
    /// decoded, checked nor handed to an event loop, so a message malformed past its target counts here, not in
    /// ``undecodable``.
    public var skippedNotLocal: Int
    /// The sharded pub/sub client that carries room channels on a Redis Cluster (room-channel mode with a
    /// `redis+cluster://` URL); `nil` otherwise.
    public var sharded: Sharded?
    /// Cluster-wide requests (fetch sockets, server-side emit, …) waiting and being answered, and what was refused
    /// or skipped since start; `nil` when not clustered through Redis.
    public var clusterRequests: ClusterRequests?

    /// Cluster-wide requests on this server (``ClusterRequestLimits`` bounds them).
    public struct ClusterRequests: Sendable, Hashable {
        /// This server's requests waiting for answers.
        public var pending: Int
        /// Other servers' requests being answered here.
        public var answering: Int
        /// Messages on the request channels that could not be read or were over the size bound, skipped.
        public var garbled: Int
        /// Other servers' requests refused (an error answer) because `maxAnswering` were being answered.
        public var refusedBusy: Int
        /// Answers that belonged to no waiting request (late, duplicate, or forged), ignored.
        public var ignoredResponses: Int

        /// Creates a report.
        public init(
            pending: Int = 0,
            answering: Int = 0,
            garbled: Int = 0,
            refusedBusy: Int = 0,
            ignoredResponses: Int = 0
        ) {
            self.pending = pending
            self.answering = answering
            self.garbled = garbled
            self.refusedBusy = refusedBusy
            self.ignoredResponses = ignoredResponses
        }

        var json: JSONValue {
            .object([
                ("pending", .int(Int64(self.pending))),
                ("answering", .int(Int64(self.answering))),
                ("garbled", .int(Int64(self.garbled))),
                ("refused_busy", .int(Int64(self.refusedBusy))),
                ("ignored_responses", .int(Int64(self.ignoredResponses))),
            ])
        }
    }

    /// How the sharded subscriptions (`SSUBSCRIBE` on each primary) of room channels on a Redis Cluster are doing.
    public struct Sharded: Sendable, Hashable {
        /// The primaries of the latest topology (0 before the first `CLUSTER SHARDS` answered).
        public var shards: Int
        /// Subscription connections up (handshake done).
        public var connectionsUp: Int
        /// Primaries owning a subscribed room channel whose connection was lost or refused and is not back (a
        /// dead primary until the cluster fails it over): the server is degraded meanwhile.
        public var connectionsDown: Int
        /// Room channels confirmed on the primary that owns them.
        public var channelsSubscribed: Int
        /// Room channels wanted and not confirmed (yet) on their owner.
        public var channelsPending: Int
        /// Topology refreshes answered since start.
        public var topologyRefreshes: Int
        /// The latest lost connection or failed refresh while something is down or pending; `nil` otherwise.
        public var lastError: String?
        /// Whether the sharded connections stopped reading (with the classic one, see ``readingPaused``).
        public var readingPaused: Bool
        /// How many times they were paused since start.
        public var readingPauses: Int
        /// Room-channel emits waiting in the primaries' outboxes now (a primary that cannot be reached, a failover
        /// not finished, or no topology yet); see ``SocketServerRedisConfiguration/outboxCapacity``.
        public var outboxQueued: Int
        /// Room-channel emits dropped from the primaries' full outboxes since start.
        public var droppedFromOutbox: Int

        /// Creates a report.
        public init(
            shards: Int = 0,
            connectionsUp: Int = 0,
            connectionsDown: Int = 0,
            channelsSubscribed: Int = 0,
            channelsPending: Int = 0,
            topologyRefreshes: Int = 0,
            lastError: String? = nil,
            readingPaused: Bool = false,
            readingPauses: Int = 0,
            outboxQueued: Int = 0,
            droppedFromOutbox: Int = 0
        ) {
            self.shards = shards
            self.connectionsUp = connectionsUp
            self.connectionsDown = connectionsDown
            self.channelsSubscribed = channelsSubscribed
            self.channelsPending = channelsPending
            self.topologyRefreshes = topologyRefreshes
            self.lastError = lastError
            self.readingPaused = readingPaused
            self.readingPauses = readingPauses
            self.outboxQueued = outboxQueued
            self.droppedFromOutbox = droppedFromOutbox
        }

        /// The report of a `RedisClusterPubSub`'s health.
        package init(_ health: RedisClusterPubSubHealth) {
            self.init(
                shards: health.primaries,
                connectionsUp: health.connectionsUp,
                connectionsDown: health.connectionsDown,
                channelsSubscribed: health.activeChannels,
                channelsPending: health.pendingChannels,
                topologyRefreshes: health.topologyRefreshes,
                lastError: health.lastError,
                readingPaused: health.readingPaused,
                readingPauses: health.readingPauses,
                outboxQueued: health.outboxQueued,
                droppedFromOutbox: health.droppedFromOutbox
            )
        }

        var json: JSONValue {
            .object([
                ("shards", .int(Int64(self.shards))),
                ("connections_up", .int(Int64(self.connectionsUp))),
                ("connections_down", .int(Int64(self.connectionsDown))),
                ("channels_subscribed", .int(Int64(self.channelsSubscribed))),
                ("channels_pending", .int(Int64(self.channelsPending))),
                ("topology_refreshes", .int(Int64(self.topologyRefreshes))),
                ("reading_paused", .bool(self.readingPaused)),
                ("reading_pauses", .int(Int64(self.readingPauses))),
                ("outbox_queued", .int(Int64(self.outboxQueued))),
                ("dropped_from_outbox", .int(Int64(self.droppedFromOutbox))),
                ("last_error", self.lastError.map { .string($0) } ?? .null),
            ])
        }
    }

    /// Creates a health report.
    public init(
        mode: Mode,
        hostID: String? = nil,
        redisConnected: Bool? = nil,
        lastMessageAge: Duration? = nil,
        reconnects: Int = 0,
        lastError: String? = nil,
        lastDisconnect: String? = nil,
        publisherConnected: Bool? = nil,
        droppedFromOutbox: Int = 0,
        inboundRejected: Int = 0,
        undecodable: Int = 0,
        unverified: Int = 0,
        readingPaused: Bool = false,
        readingPauses: Int = 0,
        channelMode: String? = nil,
        roomChannels: Int = 0,
        skippedNotLocal: Int = 0,
        sharded: Sharded? = nil,
        clusterRequests: ClusterRequests? = nil
    ) {
        self.mode = mode
        self.hostID = hostID
        self.redisConnected = redisConnected
        self.lastMessageAge = lastMessageAge
        self.reconnects = reconnects
        self.lastError = lastError
        self.lastDisconnect = lastDisconnect
        self.publisherConnected = publisherConnected
        self.droppedFromOutbox = droppedFromOutbox
        self.inboundRejected = inboundRejected
        self.undecodable = undecodable
        self.unverified = unverified
        self.readingPaused = readingPaused
        self.readingPauses = readingPauses
        self.channelMode = channelMode
        self.roomChannels = roomChannels
        self.skippedNotLocal = skippedNotLocal
        self.sharded = sharded
        self.clusterRequests = clusterRequests
    }

    /// `true` when local-only, clustered with a subscribed connection (and, for room channels on a Redis Cluster,
    /// no sharded connection down), or custom with a link not reported down.
    public var isHealthy: Bool {
        switch self.mode {
        case .localOnly: return true
        case .redis: return self.redisConnected == true && (self.sharded?.connectionsDown ?? 0) == 0
        case .custom: return self.redisConnected != false
        }
    }

    /// The report as JSON: `status` (`ok` / `degraded`), `mode` (`local-only` / `redis` / a custom adapter's name
    /// with `host_id`, `connected`, `last_error`), and in Redis mode
    /// `channel`, `channel_mode` (`python` / `rooms`), `host_id`, `redis` {`connected`, `publisher_connected`, `last_message_age_seconds`,
    /// `reconnects`, `dropped_from_outbox`, `inbound_rejected`, `undecodable`, `unverified`, `reading_paused`, `reading_pauses`,
    /// `skipped_not_local`, `last_error`, `last_disconnect`, and `room_channels` in room-channel mode, and `sharded` {`shards`,
    /// `connections_up`, `connections_down`, `channels_subscribed`, `channels_pending`, `topology_refreshes`,
    /// `reading_paused`, `reading_pauses`, `outbox_queued`, `dropped_from_outbox`, `last_error`} for room channels on
    /// a Redis Cluster}.
    public var json: JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [("status", .string(self.isHealthy ? "ok" : "degraded"))]
        switch self.mode {
        case .localOnly:
            pairs.append(("mode", "local-only"))
        case .custom(let name):
            pairs.append(("mode", .string(name)))
            pairs.append(("host_id", self.hostID.map { .string($0) } ?? .null))
            pairs.append(("connected", self.redisConnected.map { .bool($0) } ?? .null))
            pairs.append(("last_error", self.lastError.map { .string($0) } ?? .null))
        case .redis(let channel):
            pairs.append(("mode", "redis"))
            pairs.append(("channel", .string(channel)))
            if let channelMode = self.channelMode { pairs.append(("channel_mode", .string(channelMode))) }
            pairs.append(("host_id", self.hostID.map { .string($0) } ?? .null))
            let age: JSONValue =
                self.lastMessageAge.map { age in
                    let (seconds, attoseconds) = age.components
                    return .double(Double(seconds) + Double(attoseconds) / 1e18)
                } ?? .null
            pairs.append(
                (
                    "redis",
                    .object(
                        [
                            ("connected", .bool(self.redisConnected == true)),
                            ("publisher_connected", .bool(self.publisherConnected == true)),
                            ("last_message_age_seconds", age),
                            ("reconnects", .int(Int64(self.reconnects))),
                            ("dropped_from_outbox", .int(Int64(self.droppedFromOutbox))),
                            ("inbound_rejected", .int(Int64(self.inboundRejected))),
                            ("undecodable", .int(Int64(self.undecodable))),
                            ("unverified", .int(Int64(self.unverified))),
                            ("reading_paused", .bool(self.readingPaused)),
                            ("reading_pauses", .int(Int64(self.readingPauses))),
                            ("skipped_not_local", .int(Int64(self.skippedNotLocal))),
                            ("last_error", self.lastError.map { .string($0) } ?? .null),
                            ("last_disconnect", self.lastDisconnect.map { .string($0) } ?? .null),
                        ] + (self.channelMode == "rooms" ? [("room_channels", .int(Int64(self.roomChannels)))] : [])
                            + self.shardedPairs + self.clusterRequestPairs
                    )
                )
            )
        }
        return .object(pairs)
    }

    /// `sharded` for the `redis` object, when there is a sharded client.
    private var shardedPairs: [(key: String, value: JSONValue)] {
        guard let sharded = self.sharded else { return [] }
        return [("sharded", sharded.json)]
    }

    /// `cluster_requests` for the `redis` object, when clustered through Redis.
    private var clusterRequestPairs: [(key: String, value: JSONValue)] {
        guard let requests = self.clusterRequests else { return [] }
        return [("cluster_requests", requests.json)]
    }
}

/// Answers `GET /healthz` (and `HEAD`) with the server's ``ClusterHealth`` as JSON: 200 when healthy, 503 when
/// the Redis subscriber is down. Every other request goes to `next` (e.g. a static-file responder), or gets 404.
///
/// `SocketServer` installs one in front of the fallback responder it is given, so health checks and the
/// application's own pages share the listener.
package struct HealthCheckResponder: HTTPFallbackResponder {
    /// The path answered, `/healthz`.
    package let path: String
    private let health: @Sendable () -> ClusterHealth
    private let next: (any HTTPFallbackResponder)?

    /// Creates a responder.
    /// - Parameters:
    ///   - path: The health path.
    ///   - next: Answers every other request; `nil` answers 404.
    ///   - health: Reads the current health.
    package init(
        path: String = "/healthz",
        next: (any HTTPFallbackResponder)?,
        health: @escaping @Sendable () -> ClusterHealth
    ) {
        self.path = path
        self.next = next
        self.health = health
    }

    /// Answers `/healthz`, or hands the request to `next`.
    package func respond(to head: HTTPRequestHead, body: ByteBuffer) async -> HTTPFallbackResponse {
        if let answer = await HTTPReadOnlyRoute.otherwise(path: self.path, head: head, body: body, next: self.next) {
            return answer
        }
        let health = self.health()
        var body = ByteBuffer()
        health.json.write(to: &body)
        body.writeString("\n")
        return HTTPFallbackResponse(
            status: health.isHealthy ? .ok : .serviceUnavailable,
            headers: ["Content-Type": "application/json", "Cache-Control": "no-store"],
            body: head.method == .HEAD ? ByteBuffer() : body
        )
    }
}
