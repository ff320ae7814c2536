import NIOConcurrencyHelpers
public import SocketGatewayCore

/// Which clients a cluster-wide operation addresses: those of a namespace, in some rooms (or all of them), except
/// the members of some rooms — on every server.
public struct ClusterSocketSelector: Sendable, Hashable {
    /// The namespace, `/` by default.
    public var namespace: String
    /// The rooms whose members are addressed (each client once); `nil` addresses the whole namespace.
    public var rooms: [String]?
    /// Rooms (or session ids) whose members are not addressed.
    public var excluding: Set<String>

    /// Creates a selector.
    /// - Parameters:
    ///   - target: The whole namespace, a room, several rooms or a user.
    ///   - options: The namespace and the rooms excluded.
    public init(_ target: EmitTarget = .broadcast, options: EmitOptions = EmitOptions()) {
        self.namespace = options.namespace
        self.rooms = target.roomNames
        self.excluding = options.excluding
    }
}

/// One operation a server asks every other server of its cluster to apply to its own clients, and answer.
public enum ClusterQuery: Sendable, Hashable {
    /// Answers with nothing (`null`): counts the servers.
    case ping
    /// Answers with a summary of each selected client (``SocketSummary``, as JSON).
    case fetchSockets(ClusterSocketSelector)
    /// Puts each selected client into `rooms`; answers with how many clients it touched.
    case socketsJoin(ClusterSocketSelector, rooms: [String])
    /// Takes each selected client out of `rooms`; answers with how many clients it touched.
    case socketsLeave(ClusterSocketSelector, rooms: [String])
    /// Disconnects each selected client from the namespace; answers with how many.
    case disconnectSockets(ClusterSocketSelector)
    /// Calls the server's ``SocketGateway/onServerSideEmit(_:_:)`` handler of `event`; answers with what it
    /// returns (an error when the server has no handler for it).
    case serverSideEmit(event: String, arguments: [JSONValue])
    /// Emits `event` to each selected client with an ack id and collects the answers for `timeout`
    /// (``SocketGateway/broadcastWithAck(_:arguments:to:options:timeout:maxRecipients:)`` on each server); answers
    /// with `{"answers": {sid: [args]}, "missing": {sid: code}}`, or an error when more than `maxRecipients` of
    /// its clients are selected.
    case broadcastWithAck(
        event: String,
        arguments: [JSONValue],
        ClusterSocketSelector,
        timeout: Duration,
        maxRecipients: Int
    )
}

/// One client as ``SocketGateway/fetchSockets(_:options:timeout:)`` reports it, from whichever server it is
/// connected to.
public struct SocketSummary: Sendable, Hashable {
    /// Its Socket.IO session id.
    public var id: String
    /// Its namespace.
    public var namespace: String
    /// Its rooms (its own session id and `user:<id>` included).
    public var rooms: Set<String>
    /// Its per-socket data (``SocketConnection/data``) as JSON; `null` when it cannot be written as JSON.
    public var data: JSONValue
    /// The authenticated user's id, if any.
    public var userID: String?
    /// The client's address as the handshake saw it (e.g. `[IPv4]127.0.0.1/127.0.0.1:50000`), if known.
    public var address: String?
    /// The handshake's query parameters. (Headers and `auth` are not included: they may hold credentials.)
    public var query: [String: String]
    /// The host id of the server it is connected to (`local` when not clustered).
    public var serverID: String

    /// Creates a summary.
    public init(
        id: String,
        namespace: String,
        rooms: Set<String>,
        data: JSONValue = .null,
        userID: String? = nil,
        address: String? = nil,
        query: [String: String] = [:],
        serverID: String
    ) {
        self.id = id
        self.namespace = namespace
        self.rooms = rooms
        self.data = data
        self.userID = userID
        self.address = address
        self.query = query
        self.serverID = serverID
    }
}

/// What the servers of a cluster answered to one request: each server's answer by host id, and which servers did
/// not answer. This server's own answer is included (under ``SocketGateway/serverID``).
///
/// A request waits for as many answers as Redis delivered it to; it returns at its timeout with what arrived,
/// counting (``unansweredCount``) and, where it heard from them lately, naming (``unansweredServers``) the
/// servers that did not answer.
public struct ClusterReplies<Reply: Sendable>: Sendable {
    /// Each answering server's answer, by host id (this server's included).
    public var replies: [String: Reply]
    /// Servers that answered with an error (e.g. an answer too large, or no handler for a server-side emit).
    public var errors: [String: String]
    /// How many other servers got the request but did not answer in time (0 when complete).
    public var unansweredCount: Int
    /// The servers heard from lately that did not answer; may be fewer than ``unansweredCount`` (a server never
    /// heard from has no known id), or name a server that left meanwhile.
    public var unansweredServers: Set<String>
    /// How many other servers Redis delivered the request to; `nil` when not known (not clustered, not
    /// published, or a Redis Cluster, where the request then waits for its whole timeout).
    public var expectedServers: Int?
    /// Set when the request could not be sent to the other servers: why. ``replies`` then holds this server's.
    public var failure: String?

    /// Creates a result (for cluster adapters and tests).
    public init(
        replies: [String: Reply] = [:],
        errors: [String: String] = [:],
        unansweredCount: Int = 0,
        unansweredServers: Set<String> = [],
        expectedServers: Int? = nil,
        failure: String? = nil
    ) {
        self.replies = replies
        self.errors = errors
        self.unansweredCount = unansweredCount
        self.unansweredServers = unansweredServers
        self.expectedServers = expectedServers
        self.failure = failure
    }

    /// Whether every server that got the request answered without an error.
    public var isComplete: Bool { self.errors.isEmpty && self.unansweredCount == 0 && self.failure == nil }

    /// The servers that answered.
    public var servers: Set<String> { Set(self.replies.keys) }

    /// The same result with each answer converted, given the host id of the server that gave it; an answer
    /// `transform` returns `nil` for becomes an error.
    func compactMapReplies<Other>(_ transform: (_ server: String, Reply) -> Other?) -> ClusterReplies<Other> {
        var result = ClusterReplies<Other>(
            errors: self.errors,
            unansweredCount: self.unansweredCount,
            unansweredServers: self.unansweredServers,
            expectedServers: self.expectedServers,
            failure: self.failure
        )
        for (server, reply) in self.replies {
            if let converted = transform(server, reply) {
                result.replies[server] = converted
            } else {
                result.errors[server] = "an answer that cannot be read"
            }
        }
        return result
    }
}

extension ClusterReplies where Reply == [SocketSummary] {
    /// Every server's clients, in one list ordered by server id, then session id.
    public var sockets: [SocketSummary] {
        self.replies.keys.sorted().flatMap { server in
            (self.replies[server] ?? []).sorted { $0.id < $1.id }
        }
    }
}

extension ClusterReplies where Reply == Int {
    /// The sum of every server's count.
    public var total: Int { self.replies.values.reduce(0, +) }
}

/// Why a cluster-wide request was not sent.
public struct ClusterRequestError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case tooManyPending
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// This server waits on as many requests as its limit allows (``SocketServerRedisConfiguration``'s
        /// `maxPendingClusterRequests`); try again later.
        public static let tooManyPending = Code(.tooManyPending)
        /// The text shown when this value is printed or logged.
        public var description: String { "\(self.base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// What was asked (e.g. `fetch_sockets`).
    public var operation: String
    /// The limit.
    public var limit: Int

    /// The text shown when this value is printed or logged.
    public var description: String {
        "cluster request \(self.operation) not sent: \(self.limit) requests wait already (the limit); try again later"
    }
}

/// The server-side emit handlers of one server, by event.
final class ServerSideEmitHandlers: Sendable {
    typealias Handler = @Sendable (_ arguments: [JSONValue], _ fromServer: String) async -> [JSONValue]
    private let handlers = NIOLockedValueBox<[String: Handler]>([:])

    func set(_ event: String, _ handler: Handler?) {
        self.handlers.withLockedValue { $0[event] = handler }
    }

    func handler(_ event: String) -> Handler? {
        self.handlers.withLockedValue { $0[event] }
    }
}
