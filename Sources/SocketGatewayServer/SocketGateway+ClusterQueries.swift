import NIOCore
public import SocketGatewayCore

extension ClusterAdapter {
    /// Not clustered: no other server answers.
    public func request(_ query: ClusterQuery, timeout: Duration) async throws -> ClusterReplies<JSONValue> {
        ClusterReplies()
    }
}

extension SocketGateway {
    /// The default wait for the other servers' answers to a cluster-wide operation.
    public static let defaultClusterRequestTimeout: Duration = .seconds(5)

    /// The clients addressed by `target` on every server of the cluster (socket.io's `fetchSockets()`): their
    /// session ids, rooms, data and a handshake summary.
    ///
    /// Returns when every server that got the request answered, or at `timeout` with what arrived; the result
    /// says which servers did not answer (``ClusterReplies/unansweredCount``). ``ClusterReplies/sockets`` lists
    /// every client found.
    /// - Parameters:
    ///   - target: The whole namespace, a room, several rooms or a user.
    ///   - options: The namespace and the rooms excluded.
    ///   - timeout: The longest wait for the other servers.
    /// - Returns: Each server's clients, by host id (this server's included).
    /// - Throws: ``ClusterRequestError`` (`tooManyPending`); `CancellationError`.
    public func fetchSockets(
        _ target: EmitTarget = .broadcast,
        options: EmitOptions = EmitOptions(),
        timeout: Duration = SocketGateway.defaultClusterRequestTimeout
    ) async throws -> ClusterReplies<[SocketSummary]> {
        let raw = try await self.clusterWide(.fetchSockets(ClusterSocketSelector(target, options: options)), timeout)
        // An answer that is not a list (a `null`, an answer to another operation), or holds an entry that is not a
        // socket, is unreadable, not "no sockets there".
        return raw.compactMapReplies { server, reply in
            guard let list = reply.arrayValue else { return nil }
            let summaries = list.compactMap { SocketSummary(json: $0, serverID: server) }
            return summaries.count == list.count ? summaries : nil
        }
    }

    /// Puts the addressed clients of every server into `rooms` (socket.io's `socketsJoin`).
    /// - Parameters:
    ///   - rooms: The rooms to join.
    ///   - target: The clients: the whole namespace, a room, several rooms or a user.
    ///   - options: The namespace and the rooms excluded.
    ///   - timeout: The longest wait for the other servers.
    /// - Returns: How many clients each server put into the rooms (``ClusterReplies/total``).
    /// - Throws: ``ClusterRequestError`` (`tooManyPending`); `CancellationError`.
    @discardableResult
    public func socketsJoin(
        _ rooms: [String],
        _ target: EmitTarget = .broadcast,
        options: EmitOptions = EmitOptions(),
        timeout: Duration = SocketGateway.defaultClusterRequestTimeout
    ) async throws -> ClusterReplies<Int> {
        let query = ClusterQuery.socketsJoin(ClusterSocketSelector(target, options: options), rooms: rooms)
        return try await self.clusterWide(query, timeout).compactMapReplies { _, reply in reply.intValue.map(Int.init) }
    }

    /// Takes the addressed clients of every server out of `rooms` (socket.io's `socketsLeave`).
    /// - Parameters:
    ///   - rooms: The rooms to leave.
    ///   - target: The clients: the whole namespace, a room, several rooms or a user.
    ///   - options: The namespace and the rooms excluded.
    ///   - timeout: The longest wait for the other servers.
    /// - Returns: How many clients each server took out (``ClusterReplies/total``).
    /// - Throws: ``ClusterRequestError`` (`tooManyPending`); `CancellationError`.
    @discardableResult
    public func socketsLeave(
        _ rooms: [String],
        _ target: EmitTarget = .broadcast,
        options: EmitOptions = EmitOptions(),
        timeout: Duration = SocketGateway.defaultClusterRequestTimeout
    ) async throws -> ClusterReplies<Int> {
        let query = ClusterQuery.socketsLeave(ClusterSocketSelector(target, options: options), rooms: rooms)
        return try await self.clusterWide(query, timeout).compactMapReplies { _, reply in reply.intValue.map(Int.init) }
    }

    /// Disconnects the addressed clients of every server from the namespace (socket.io's `disconnectSockets`).
    /// - Parameters:
    ///   - target: The clients: the whole namespace, a room, several rooms or a user.
    ///   - options: The namespace and the rooms excluded.
    ///   - timeout: The longest wait for the other servers.
    /// - Returns: How many clients each server disconnected (``ClusterReplies/total``).
    /// - Throws: ``ClusterRequestError`` (`tooManyPending`); `CancellationError`.
    @discardableResult
    public func disconnectSockets(
        _ target: EmitTarget = .broadcast,
        options: EmitOptions = EmitOptions(),
        timeout: Duration = SocketGateway.defaultClusterRequestTimeout
    ) async throws -> ClusterReplies<Int> {
        let query = ClusterQuery.disconnectSockets(ClusterSocketSelector(target, options: options))
        return try await self.clusterWide(query, timeout).compactMapReplies { _, reply in reply.intValue.map(Int.init) }
    }

    /// How many servers the cluster has, this one included (socket.io's `serverCount()`): the servers that
    /// answered, plus those Redis delivered the request to that did not answer within `timeout`.
    /// - Parameter timeout: The longest wait for the other servers (on a Redis Cluster, the whole wait).
    /// - Returns: The number of servers; 1 when not clustered.
    /// - Throws: ``ClusterRequestError`` (`tooManyPending`); `CancellationError`.
    public func serverCount(timeout: Duration = SocketGateway.defaultClusterRequestTimeout) async throws -> Int {
        let replies = try await self.clusterWide(.ping, timeout)
        return replies.replies.count + replies.errors.count + replies.unansweredCount
    }

    /// Sends `event` to every other server's ``onServerSideEmit(_:_:)`` handler and collects their answers
    /// (socket.io's `serverSideEmit` with an ack). This server's own handler is not called.
    /// - Parameters:
    ///   - event: The event name.
    ///   - arguments: Its arguments, JSON only (a binary value arrives as `null`).
    ///   - timeout: The longest wait for the answers.
    /// - Returns: Each other server's answer by host id; a server without a handler for `event` is in
    ///   ``ClusterReplies/errors``.
    /// - Throws: ``ClusterRequestError`` (`tooManyPending`); `CancellationError`.
    public func serverSideEmit(
        _ event: String,
        arguments: [JSONValue],
        timeout: Duration = SocketGateway.defaultClusterRequestTimeout
    ) async throws -> ClusterReplies<[JSONValue]> {
        try await self.cluster.request(.serverSideEmit(event: event, arguments: arguments), timeout: timeout)
            .compactMapReplies { _, reply in reply.arrayValue }
    }

    /// Sets the handler of other servers' ``serverSideEmit(_:arguments:timeout:)`` of `event` (replacing any);
    /// what it returns is the answer they get. It runs as a task of the server, and should return soon: the
    /// sender stops waiting at its timeout.
    /// - Parameters:
    ///   - event: The event name.
    ///   - handler: Gets the arguments and the sending server's host id; returns the answer.
    public func onServerSideEmit(
        _ event: String,
        _ handler: @escaping @Sendable (_ arguments: [JSONValue], _ fromServer: String) async -> [JSONValue]
    ) {
        self.serverSideEmitHandlers.set(event, handler)
    }

    /// Applies `query` here and on every other server, both at once, and merges the answers.
    private func clusterWide(_ query: ClusterQuery, _ timeout: Duration) async throws -> ClusterReplies<JSONValue> {
        async let remote = self.cluster.request(query, timeout: timeout)
        let local = await self.answer(query, from: self.serverID)
        var result = try await remote
        switch local {
        case .value(let value): result.replies[self.serverID] = value
        case .error(let reason): result.errors[self.serverID] = reason
        }
        return result
    }

    /// Applies `query` to this server's clients and gives the answer sent back to the server that asked.
    func answer(_ query: ClusterQuery, from server: String) async -> ClusterRequestStateMachine.Reply {
        switch query {
        case .ping:
            return .value(.null)
        case .fetchSockets(let selector):
            let serverID = self.serverID
            var summaries: [JSONValue] = []
            for shard in self.shards.all {
                let found =
                    await shard.run { shard in
                        shard.recipients(
                            namespace: selector.namespace,
                            rooms: selector.rooms,
                            excluding: selector.excluding
                        ).map { SocketSummary($0, rooms: shard.rooms(of: $0), serverID: serverID).json }
                    } ?? []
                summaries += found
            }
            return .value(.array(summaries))
        case .socketsJoin(let selector, let rooms):
            let connections = await self.recipients(selector)
            for connection in connections {
                for room in rooms {
                    _ = await self.shards.joinAndWait(connection, room: room)
                }
            }
            return .value(.int(Int64(connections.count)))
        case .socketsLeave(let selector, let rooms):
            var count = 0
            for shard in self.shards.all {
                count +=
                    await shard.run { shard in
                        let found = shard.recipients(
                            namespace: selector.namespace,
                            rooms: selector.rooms,
                            excluding: selector.excluding
                        )
                        for connection in found {
                            for room in rooms { _ = shard.leave(connection, room: room) }
                        }
                        return found.count
                    } ?? 0
            }
            return .value(.int(Int64(count)))
        case .disconnectSockets(let selector):
            let connections = await self.recipients(selector)
            for connection in connections {
                await connection.disconnect()
            }
            return .value(.int(Int64(connections.count)))
        case .serverSideEmit(let event, let arguments):
            guard let handler = self.serverSideEmitHandlers.handler(event) else {
                return .error("no server-side emit handler for event '\(LogSafe.text(event))'")
            }
            return .value(.array(await handler(arguments, server)))
        case .broadcastWithAck(let event, let arguments, let selector, let timeout, let maxRecipients):
            let acks: SocketBroadcastAcks<[JSONValue]>
            do {
                acks = try await self.broadcastWithAckHere(
                    event,
                    arguments: arguments,
                    rooms: selector.rooms,
                    options: EmitOptions(namespace: selector.namespace, excluding: selector.excluding),
                    timeout: timeout,
                    maxRecipients: maxRecipients
                )
            } catch {
                return .error("\(error)")
            }
            let answers = acks.answers.sorted { $0.key < $1.key }.map {
                (key: $0.key, value: JSONValue.array($0.value))
            }
            let missing = acks.missing.sorted { $0.key < $1.key }.map {
                (key: $0.key, value: JSONValue.string($0.value.code.description))
            }
            return .value(.object([("answers", .object(answers)), ("missing", .object(missing))]))
        }
    }

    private func recipients(_ selector: ClusterSocketSelector) async -> [SocketConnection] {
        var connections: [SocketConnection] = []
        for shard in self.shards.all {
            connections +=
                await shard.run {
                    $0.recipients(namespace: selector.namespace, rooms: selector.rooms, excluding: selector.excluding)
                } ?? []
        }
        return connections
    }
}

extension SocketSummary {
    init(_ connection: SocketConnection, rooms: Set<String>, serverID: String) {
        self.init(
            id: connection.id,
            namespace: connection.namespace,
            rooms: rooms,
            data: (try? connection.data.jsonValue()) ?? .null,
            userID: connection.user?.id,
            address: connection.handshake.remoteAddress.map { "\($0)" },
            query: connection.handshake.query,
            serverID: serverID
        )
    }

    /// The summary as a server sends it (its server id is the sender's, not sent).
    var json: JSONValue {
        var members: [(key: String, value: JSONValue)] = [
            ("id", .string(self.id)),
            ("namespace", .string(self.namespace)),
            ("rooms", .array(self.rooms.sorted().map { .string($0) })),
            ("data", self.data),
        ]
        if let userID = self.userID { members.append(("user_id", .string(userID))) }
        if let address = self.address { members.append(("address", .string(address))) }
        members.append(("query", .object(self.query.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        return .object(members)
    }

    /// Reads a summary server `serverID` sent; `nil` when a field is missing or of the wrong type.
    init?(json: JSONValue, serverID: String) {
        guard let id = json["id"]?.stringValue, let namespace = json["namespace"]?.stringValue,
            let rooms = json["rooms"]?.arrayValue
        else { return nil }
        let roomNames = rooms.compactMap(\.stringValue)
        guard roomNames.count == rooms.count else { return nil }
        var query: [String: String] = [:]
        for (key, value) in json["query"]?.objectValue ?? [] {
            guard let text = value.stringValue else { return nil }
            query[key] = text
        }
        self.init(
            id: id,
            namespace: namespace,
            rooms: Set(roomNames),
            data: json["data"] ?? .null,
            userID: json["user_id"]?.stringValue,
            address: json["address"]?.stringValue,
            query: query,
            serverID: serverID
        )
    }
}
