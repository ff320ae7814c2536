import Logging
public import SocketGatewayCore

/// The seam between a server's ``SocketGateway`` and the other servers of its cluster.
///
/// Every gateway operation is applied to this server's clients first; then the gateway hands it to the adapter,
/// which tells the other servers (and returns the ``EmitResult`` the caller sees). What the other servers send
/// is applied by the adapter to this server's clients through ``SocketGateway/local``, which never calls the
/// adapter again. The server ships two adapters: local-only (no `redis` configured) and Redis (python-socketio's
/// pub/sub format, ``SocketServerRedisConfiguration``); pass your own to `SocketServer(configuration:…cluster:)`
/// to cluster over something else.
///
/// Threading: every requirement may be called from any task or event-loop thread, concurrently with the others;
/// an adapter guards its own state. None may block a thread: the `async` ones suspend, the others return at once.
/// Errors: `emitted` and `applied` never throw; a failure to reach the other servers is an ``EmitResult`` with
/// outcome `.failed` (or `.queued` when the adapter holds the operation for later) and a `reason`. Each waits at
/// most a bounded time (the Redis adapter: ``SocketServerRedisConfiguration/publishTimeout``).
public protocol ClusterAdapter: Sendable {
    /// One line for the startup log, e.g. `clustered through Redis redis://…, channel 'socketio'`.
    var modeDescription: String { get }

    /// How the link to the other servers is doing, read for ``SocketServer/clusterHealth`` and `GET /healthz`
    /// (503 when not ``ClusterHealth/isHealthy``). Called often: return a snapshot, do no I/O.
    var health: ClusterHealth { get }

    /// Starts listening to the other servers; called once by ``SocketServer/start()`` after the listener is up.
    /// Apply what they send to `gateway.local` (``SocketGateway/local``). Must return at once: start connections
    /// in the background and report their state through ``health``.
    func start(gateway: SocketGateway)

    /// Stops listening and sends what is still queued, within a bound; called once when the server shuts down.
    /// Waiting ``emitWithAck(_:arguments:sid:namespace:timeout:)`` calls must be ended (thrown out) by it.
    func shutdown() async

    /// Called after an emit was delivered to this server's clients: tell the other servers.
    /// - Parameters:
    ///   - event: The event name.
    ///   - arguments: The event's arguments.
    ///   - target: Whom it is addressed to.
    ///   - options: Namespace and excluded rooms.
    ///   - local: The local delivery's result (`localDeliveries` counts this server's recipients).
    /// - Returns: What the caller of ``SocketGateway/emit(_:arguments:to:options:)`` gets: `local` when not
    ///   clustered, otherwise `.published`, `.queued` or `.failed` with `local.localDeliveries` kept.
    func emitted(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions,
        local: EmitResult
    ) async -> EmitResult

    /// Called after a room change, a room close or a disconnect was applied to this server's clients.
    /// - Parameters:
    ///   - operation: What was done.
    ///   - localMatches: How many local connections it touched (0: the client is not connected here, so
    ///     another server must apply it).
    /// - Returns: What the caller of the gateway method gets.
    func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult

    /// Emits to the client `sid`, connected to another server, and waits for its acknowledgement. Called only
    /// when `sid` is not connected here.
    /// - Parameters:
    ///   - event: The event name.
    ///   - arguments: The event's arguments.
    ///   - sid: The client's Socket.IO session id.
    ///   - namespace: Its namespace.
    ///   - timeout: The longest wait for the ack.
    /// - Returns: The arguments the client acknowledged with, or `nil` when this adapter cannot reach other
    ///   servers (the gateway then throws ``SocketAckError`` `notConnected`).
    /// - Throws: ``SocketAckError`` (`timeout` after `timeout`, `notConnected` when the emit could not be sent),
    ///   or `CancellationError` when the server shuts down while waiting.
    func emitWithAck(
        _ event: String,
        arguments: [JSONValue],
        sid: String,
        namespace: String,
        timeout: Duration
    ) async throws -> [JSONValue]?

    /// Asks every other server to apply `query` to its own clients and answer (the cluster-wide operations such
    /// as ``SocketGateway/fetchSockets(_:options:timeout:)``; the gateway does this server's part). The default
    /// implementation asks no other server (not clustered).
    /// - Parameters:
    ///   - query: What to apply.
    ///   - timeout: The longest wait for the answers; the result then says which servers did not answer.
    /// - Returns: Each other server's answer by host id, and who did not answer.
    /// - Throws: ``ClusterRequestError`` when the request was not sent; `CancellationError`.
    func request(_ query: ClusterQuery, timeout: Duration) async throws -> ClusterReplies<JSONValue>
}

/// A room operation the gateway applied locally, then hands to the ``ClusterAdapter``.
public enum ClusterOperation: Sendable, Hashable {
    /// Put client `sid` of `namespace` into `room`.
    case joinRoom(sid: String, room: String, namespace: String)
    /// Take client `sid` of `namespace` out of `room`.
    case leaveRoom(sid: String, room: String, namespace: String)
    /// Remove every client of `namespace` from `room`.
    case closeRoom(room: String, namespace: String)
    /// Disconnect client `sid` from `namespace`.
    case disconnect(sid: String, namespace: String)
}

/// No cluster: emits reach only this server's clients.
struct LocalOnlyClusterAdapter: ClusterAdapter {
    var modeDescription: String { "no Redis configured: running local-only; emits reach only this server's clients" }

    var health: ClusterHealth { ClusterHealth(mode: .localOnly) }

    func start(gateway: SocketGateway) {}

    func shutdown() async {}

    func emitWithAck(
        _ event: String,
        arguments: [JSONValue],
        sid: String,
        namespace: String,
        timeout: Duration
    ) async throws -> [JSONValue]? {
        nil
    }

    func emitted(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        options: EmitOptions,
        local: EmitResult
    ) async -> EmitResult {
        local
    }

    func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult {
        switch operation {
        case .closeRoom:
            return EmitResult(outcome: .delivered, localDeliveries: localMatches)
        case .joinRoom(let sid, _, let namespace), .leaveRoom(let sid, _, let namespace),
            .disconnect(let sid, let namespace):
            guard localMatches > 0 else {
                return EmitResult(
                    outcome: .failed,
                    reason: "no client \(sid) in namespace \(namespace) on this server (local-only, no cluster)"
                )
            }
            return EmitResult(outcome: .delivered, localDeliveries: localMatches)
        }
    }
}
