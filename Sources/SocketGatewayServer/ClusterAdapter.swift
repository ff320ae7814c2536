import Logging
import SocketGatewayCore

/// What the gateway does after handling an emit or room change locally: tell the other servers of a cluster.
///
/// `LocalOnlyClusterAdapter` is the "no Redis configured" mode; a Redis adapter publishes in
/// python-socketio's format and returns `.published`.
protocol ClusterAdapter: Sendable {
    /// A one-line description for the startup log.
    var modeDescription: String { get }

    /// Called after local delivery of an emit.
    func emitted(_ event: String, arguments: [JSONValue], to target: EmitTarget, options: EmitOptions, local: EmitResult) async -> EmitResult

    /// Called after a room change, a room close or a disconnect was applied locally.
    /// - Parameters:
    ///   - operation: What was done.
    ///   - localMatches: How many local connections it touched.
    func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult

    /// How the cluster link is doing (for `SocketServer.clusterHealth` and `/healthz`).
    var health: ClusterHealth { get }

    /// Starts listening to the other servers; messages are applied to `gateway`'s local clients.
    func start(gateway: SocketGateway)

    /// Stops listening and sends what is queued (bounded).
    func shutdown() async

    /// Emits to the client `sid` connected to another server and waits for its ack (nil: not clustered).
    func emitWithAck(
        _ event: String, arguments: [JSONValue], sid: String, namespace: String, timeout: Duration
    ) async throws -> [JSONValue]?
}

/// A room operation the gateway applies locally, then hands to the cluster adapter.
enum ClusterOperation: Sendable, Hashable {
    case joinRoom(sid: String, room: String, namespace: String)
    case leaveRoom(sid: String, room: String, namespace: String)
    case closeRoom(room: String, namespace: String)
    case disconnect(sid: String, namespace: String)
}

/// No cluster: emits reach only this server's clients.
struct LocalOnlyClusterAdapter: ClusterAdapter {
    var modeDescription: String { "no Redis configured: running local-only; emits reach only this server's clients" }

    var health: ClusterHealth { ClusterHealth(mode: .localOnly) }

    func start(gateway: SocketGateway) {}

    func shutdown() async {}

    func emitWithAck(
        _ event: String, arguments: [JSONValue], sid: String, namespace: String, timeout: Duration
    ) async throws -> [JSONValue]? {
        nil
    }

    func emitted(_ event: String, arguments: [JSONValue], to target: EmitTarget, options: EmitOptions, local: EmitResult) async -> EmitResult {
        local
    }

    func applied(_ operation: ClusterOperation, localMatches: Int) async -> EmitResult {
        switch operation {
        case .closeRoom:
            return EmitResult(outcome: .delivered, localDeliveries: localMatches)
        case .joinRoom(let sid, _, let namespace), .leaveRoom(let sid, _, let namespace), .disconnect(let sid, let namespace):
            guard localMatches > 0 else {
                return EmitResult(
                    outcome: .failed, reason: "no client \(sid) in namespace \(namespace) on this server (local-only, no cluster)")
            }
            return EmitResult(outcome: .delivered, localDeliveries: localMatches)
        }
    }
}
