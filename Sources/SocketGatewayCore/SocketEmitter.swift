/// Who an emit is addressed to.
public enum EmitTarget: Sendable, Hashable {
    /// Every client connected to the namespace.
    case broadcast
    /// The members of one room. A client's session id is also a room.
    case room(String)
    /// The members of any of these rooms, each client at most once.
    case rooms([String])
    /// The clients authenticated as this user: the room `user:<id>`.
    case user(String)

    /// The room names this target stands for; `nil` means every client of the namespace.
    public var roomNames: [String]? {
        switch self {
        case .broadcast: return nil
        case .room(let room): return [room]
        case .rooms(let rooms): return rooms
        case .user(let id): return [Self.userRoom(id)]
        }
    }

    /// The room every client authenticated as `userID` joins on connect.
    public static func userRoom(_ userID: String) -> String { "user:\(userID)" }
}

/// Options that narrow an emit.
public struct EmitOptions: Sendable, Hashable {
    /// The Socket.IO namespace, `/` by default.
    public var namespace: String
    /// Rooms (or session ids) whose members do not receive the emit.
    public var excluding: Set<String>
    /// Drops the event for each local client that cannot take it at once instead of queueing it (socket.io's
    /// `volatile`; see `SocketVolatileEmitter` in SocketGatewayServer). Applies to a server's own clients; other
    /// servers and workers publish and deliver it as a regular emit. Default false.
    public var volatile: Bool = false

    /// Creates options for an emit.
    /// - Parameters:
    ///   - namespace: The Socket.IO namespace, `/` by default.
    ///   - excluding: Rooms (or session ids) whose members do not receive the emit.
    public init(namespace: String = "/", excluding: Set<String> = []) {
        self.namespace = namespace
        self.excluding = excluding
    }
}

/// What happened to one emit. Callers may ignore it; it never throws.
public struct EmitResult: Sendable, Hashable, CustomStringConvertible {
    /// The outcome, from the caller's point of view.
    public enum Outcome: Sendable, Hashable {
        /// Handed to local clients (and, when clustered, published).
        case delivered
        /// Published to Redis; `redisSubscribers` says how many servers were listening.
        case published
        /// Redis was unreachable; the emit waits in the outbox and is sent on reconnect.
        case queued
        /// The emit could not be sent; `reason` says why.
        case failed
        /// No Redis URL is configured, so a write-only gateway cannot reach any client.
        case notConfigured
    }

    /// The outcome.
    public var outcome: Outcome
    /// How many local client sessions the packet was written to (server gateway only).
    public var localDeliveries: Int
    /// The number of subscribers Redis reported for the PUBLISH, when one was made.
    public var redisSubscribers: Int?
    /// A one-line reason when the outcome is `failed`, `queued` or `notConfigured`.
    public var reason: String?

    /// Creates a result.
    public init(outcome: Outcome, localDeliveries: Int = 0, redisSubscribers: Int? = nil, reason: String? = nil) {
        self.outcome = outcome
        self.localDeliveries = localDeliveries
        self.redisSubscribers = redisSubscribers
        self.reason = reason
    }

    /// `true` when the emit left this process (delivered locally or published).
    public var isSent: Bool { self.outcome == .delivered || self.outcome == .published }

    /// The text shown when this value is printed or logged.
    public var description: String {
        var parts = ["\(self.outcome)"]
        if self.outcome == .delivered || self.localDeliveries > 0 { parts.append("local=\(self.localDeliveries)") }
        if let subscribers = self.redisSubscribers { parts.append("subscribers=\(subscribers)") }
        if let reason = self.reason { parts.append("reason=\(reason)") }
        return parts.joined(separator: " ")
    }
}

/// The emit API that the server gateway and the worker gateway share, so their signatures stay identical.
///
/// Generated typed emitters are written once as an extension of this protocol.
public protocol SocketEmitter: Sendable {
    /// Emits `event` with `arguments` to `target`.
    /// - Parameters:
    ///   - event: The event name, e.g. `sheet:sync:completed`.
    ///   - arguments: The event's arguments; most events have exactly one.
    ///   - target: Who receives it.
    ///   - options: Namespace and exclusions.
    /// - Returns: What happened. Never throws; failures are logged and reported here.
    @discardableResult
    func emit(_ event: String, arguments: [JSONValue], to target: EmitTarget, options: EmitOptions) async -> EmitResult

    /// Puts the client with session id `sid` into `room`, wherever in the cluster it is connected.
    @discardableResult
    func joinRoom(_ sid: String, room: String, namespace: String) async -> EmitResult

    /// Takes the client with session id `sid` out of `room`, wherever in the cluster it is connected.
    @discardableResult
    func leaveRoom(_ sid: String, room: String, namespace: String) async -> EmitResult

    /// Removes every client from `room`.
    @discardableResult
    func closeRoom(_ room: String, namespace: String) async -> EmitResult

    /// Disconnects the client with session id `sid` from `namespace`, wherever it is connected.
    @discardableResult
    func disconnect(_ sid: String, namespace: String) async -> EmitResult
}

extension SocketEmitter {
    /// Emits one value to every client authenticated as `userID` (the room `user:<id>`).
    @discardableResult
    public func emitToUser(
        _ userID: String,
        event: String,
        data: JSONValue,
        namespace: String = "/",
        excluding: Set<String> = []
    ) async -> EmitResult {
        await self.emit(
            event,
            arguments: [data],
            to: .user(userID),
            options: .init(namespace: namespace, excluding: excluding)
        )
    }

    /// Emits one value to the members of `room`.
    @discardableResult
    public func emitToRoom(
        _ room: String,
        event: String,
        data: JSONValue,
        namespace: String = "/",
        excluding: Set<String> = []
    ) async -> EmitResult {
        await self.emit(
            event,
            arguments: [data],
            to: .room(room),
            options: .init(namespace: namespace, excluding: excluding)
        )
    }

    /// Emits one value to every client of the namespace.
    @discardableResult
    public func broadcast(
        event: String,
        data: JSONValue,
        namespace: String = "/",
        excluding: Set<String> = []
    ) async -> EmitResult {
        await self.emit(
            event,
            arguments: [data],
            to: .broadcast,
            options: .init(namespace: namespace, excluding: excluding)
        )
    }

    /// Puts `sid` into `room` in the default namespace.
    @discardableResult
    public func joinRoom(_ sid: String, room: String) async -> EmitResult {
        await self.joinRoom(sid, room: room, namespace: "/")
    }

    /// Takes `sid` out of `room` in the default namespace.
    @discardableResult
    public func leaveRoom(_ sid: String, room: String) async -> EmitResult {
        await self.leaveRoom(sid, room: room, namespace: "/")
    }
}
