import NIOCore
package import SocketGatewayCore

/// Why the server closed a client's Engine.IO session: it broke the Socket.IO protocol, or never connected to a
/// namespace. It closes that one session and nothing else.
package struct SocketIOSessionError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case protocolViolation = "protocol violation"
            case connectTimeout = "connect timeout"
            case eventQueueFull = "event queue full"
            case duplicateAckID = "duplicate ack id"
            case tooManyPendingAcks = "too many pending acks"
            case eventRateExceeded = "event rate exceeded"
            case tooManyRefusedConnects = "too many refused connects"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The client sent something the Socket.IO protocol forbids (see `underlying`).
        package static let protocolViolation = Code(.protocolViolation)
        /// No CONNECT packet arrived within the connect timeout.
        package static let connectTimeout = Code(.connectTimeout)
        /// More events waited for a connection's handlers than `SocketServerConfiguration.maxQueuedEventsPerConnection`
        /// (or `maxQueuedEventBytesPerConnection`) allows.
        package static let eventQueueFull = Code(.eventQueueFull)
        /// The client asked for an ack with an id it still waits on in the same namespace (a protocol violation).
        package static let duplicateAckID = Code(.duplicateAckID)
        /// The client asked for more acks that no handler answered yet than
        /// `SocketServerConfiguration.maxPendingAcksPerConnection` allows.
        package static let tooManyPendingAcks = Code(.tooManyPendingAcks)
        /// The client sent events faster than `SocketServerConfiguration.eventRateLimit` allows.
        package static let eventRateExceeded = Code(.eventRateExceeded)
        /// The client's CONNECT was refused `SocketServerConfiguration.maxRefusedConnectsPerSession` times.
        package static let tooManyRefusedConnects = Code(.tooManyRefusedConnects)

        /// Whether the client hit one of the server's limits (rather than breaking the protocol or idling).
        var isLimit: Bool {
            switch self.base {
            case .eventQueueFull, .tooManyPendingAcks, .eventRateExceeded, .tooManyRefusedConnects: return true
            case .protocolViolation, .connectTimeout, .duplicateAckID: return false
            }
        }

        package var description: String { self.base.rawValue }
    }

    /// The kind of failure.
    package var code: Code
    /// The decoder's error, for a protocol violation it detected.
    package var underlying: SocketIOProtocolError?
    /// What was wrong, for the log; whatever the client wrote in it is escaped (`LogSafe`), so it stays one line.
    package var detail: String

    /// Creates an error.
    package init(code: Code, detail: String, underlying: SocketIOProtocolError? = nil) {
        self.code = code
        self.detail = detail
        self.underlying = underlying
    }

    package var description: String {
        "socket.io session closed (\(self.code)): \(self.detail)"
    }
}

/// The Socket.IO state of one Engine.IO session: the namespaces it joined, pending authentications, ack ids
/// and their deadlines, and the connect timeout.
///
/// Pure: every input is a `mutating func` returning what to do, time comes in as `now`, and the caller (the
/// session's event loop) performs the I/O.
struct SocketIOSessionStateMachine {
    /// A packet from the client, already decoded and validated.
    enum Inbound: Hashable {
        case connect(namespace: String, auth: JSONValue?)
        case disconnect(namespace: String)
        case event(namespace: String, arguments: [JSONValue], ackID: UInt64?)
        case ack(namespace: String, id: UInt64, arguments: [JSONValue])
    }

    /// Why a CONNECT was refused.
    enum ConnectRefusal: Hashable {
        /// The server has no such namespace.
        case invalidNamespace
        /// The authenticator refused the client.
        case unauthorized
        /// A middleware refused the client with its own message and `data` (``SocketConnectRefusal``).
        case refused(message: String, data: JSONValue?)

        /// The `message` of the CONNECT_ERROR the client reads (the reference server's wording).
        var message: String {
            switch self {
            case .invalidNamespace: "Invalid namespace"
            case .unauthorized: "Unauthorized"
            case .refused(let message, _): message
            }
        }

        /// The `data` of the CONNECT_ERROR, if any (socket.io's `err.data` on the client).
        var data: JSONValue? {
            if case .refused(_, let data) = self { return data }
            return nil
        }
    }

    /// What the caller must do.
    enum Action: Hashable {
        case none
        /// Reply CONNECT_ERROR `{"message": refusal.message, "data": refusal.data}` for `namespace`.
        case sendConnectError(namespace: String, refusal: ConnectRefusal)
        /// Reply CONNECT_ERROR `{"message": refusal.message}` for `namespace`, then close the Engine.IO session: the
        /// client was refused too often.
        case sendConnectErrorAndClose(namespace: String, refusal: ConnectRefusal, SocketIOSessionError)
        /// Run the middleware chain (the authenticator first, if any), then call `authenticationCompleted`.
        case authenticate(namespace: String, auth: JSONValue?)
        /// Hand the event to the connection's handlers.
        case dispatchEvent(namespace: String, sid: String, arguments: [JSONValue], ackID: UInt64?)
        /// Resume the `emitWithAck` waiting for `id`.
        case resolveAck(namespace: String, sid: String, id: UInt64, arguments: [JSONValue])
        /// Fail the `emitWithAck` waiting for `id` (it timed out).
        case failAck(namespace: String, sid: String, id: UInt64)
        /// The connection ended; fail `pendingAcks`, leave rooms, run onDisconnect; send DISCONNECT when the
        /// server ended it.
        case closeConnection(namespace: String, sid: String, pendingAcks: [UInt64], cause: ConnectionEndCause)
        /// Close the whole Engine.IO session.
        case closeSession(SocketIOSessionError)
    }

    /// What to do once the authenticator answered: accepting is only ever an answer to an authentication.
    enum AuthenticationOutcome: Hashable {
        /// Reply CONNECT `{"sid": sid}`, create the connection, join its rooms, run onConnect.
        case accept(namespace: String, sid: String)
        /// Not accepted (refused, or the session or namespace went away meanwhile): do this instead.
        case action(Action)
    }

    /// Who ended a connection.
    enum ConnectionEndCause: Hashable {
        /// The client sent DISCONNECT.
        case client
        /// The server disconnected it (the client must be told).
        case server
        /// The Engine.IO session closed.
        case session
    }

    /// The bounds this machine enforces; each one closes the session when a client exceeds it.
    struct Limits: Hashable {
        /// Acks a client may have asked for, per connection, that the handlers have not answered.
        var maxPendingClientAcks: Int
        /// Events per connection per second, with a burst; nil: unlimited.
        var eventRate: SocketEventRateLimit?
        /// Refused CONNECTs (bad token, unknown namespace) per session; the one that reaches it closes the session.
        var maxRefusedConnects: Int

        /// Limits from the server configuration.
        init(maxPendingClientAcks: Int, eventRate: SocketEventRateLimit? = nil, maxRefusedConnects: Int) {
            self.maxPendingClientAcks = maxPendingClientAcks
            self.eventRate = eventRate
            self.maxRefusedConnects = maxRefusedConnects
        }
    }

    private struct Connection {
        var sid: String
        var nextAckID: UInt64 = 0
        /// Server → client acks: the deadline of each id the server waits for.
        var pendingAcks: [UInt64: NIODeadline] = [:]
        /// Client → server acks: the ids the client asked for that no handler answered yet.
        var owedAcks: Set<UInt64> = []
        /// The event rate limit's bucket, from the connection's first event on.
        var bucket: TokenBucket?
    }

    private enum NamespaceState {
        case authenticating
        case connected(Connection)
    }

    private var namespaces: SmallMap<String, NamespaceState> = [:]
    private let limits: Limits
    /// CONNECTs refused so far on this session.
    private(set) var refusedConnects = 0
    /// Set until the client is first accepted in a namespace.
    private var connectDeadline: NIODeadline?
    private(set) var isClosed = false
    /// Set when the session was closed for the client's fault: a protocol error, a limit, or the connect timeout.
    private(set) var closingError: SocketIOSessionError?

    /// Starts the state of a new Engine.IO session.
    init(now: NIODeadline, connectTimeout: TimeAmount, limits: Limits) {
        self.connectDeadline = now + connectTimeout
        self.limits = limits
    }

    /// The deadline of the connect timeout, while the client is connected to no namespace yet.
    var pendingConnectDeadline: NIODeadline? { self.connectDeadline }

    /// The namespaces the client is connected to.
    var connectedNamespaces: [String] {
        self.namespaces.compactMap { name, state in
            if case .connected = state { return name }
            return nil
        }
    }

    /// The session id of the connection in `namespace`, if connected.
    func sid(in namespace: String) -> String? {
        if case .connected(let connection)? = self.namespaces[namespace] { return connection.sid }
        return nil
    }

    /// The ack ids client `sid` in `namespace` asked for that no handler answered yet; nil when not connected.
    func owedAckCount(namespace: String, sid: String) -> Int? {
        guard case .connected(let connection)? = self.namespaces[namespace], connection.sid == sid else { return nil }
        return connection.owedAcks.count
    }

    /// A packet arrived from the client at `now`.
    /// - Parameters:
    ///   - now: The current time (for the event rate limit).
    ///   - namespaceExists: Whether the server has the packet's namespace (only asked for CONNECT).
    ///   - handlesEvent: Whether a handler is registered for an event in a namespace (only asked for EVENT). An
    ///     event nobody handles is dropped and its ack id is not recorded: nobody would answer it.
    mutating func received(
        _ packet: Inbound,
        now: NIODeadline,
        namespaceExists: (String) -> Bool,
        handlesEvent: (_ namespace: String, _ event: String) -> Bool
    ) -> Action {
        guard !self.isClosed else { return .none }
        switch packet {
        case .connect(let namespace, let auth):
            guard namespaceExists(namespace) else {
                return self.refuseConnect(namespace: namespace, refusal: .invalidNamespace)
            }
            guard self.namespaces[namespace] == nil else {
                // Already connected or authenticating: a duplicate CONNECT changes nothing.
                return .none
            }
            self.namespaces[namespace] = .authenticating
            return .authenticate(namespace: namespace, auth: auth)

        case .disconnect(let namespace):
            switch self.namespaces.removeValue(forKey: namespace) {
            case .connected(let connection)?:
                return .closeConnection(
                    namespace: namespace,
                    sid: connection.sid,
                    pendingAcks: connection.pendingAcks.keys.sorted(),
                    cause: .client
                )
            case .authenticating?, nil:
                return .none
            }

        case .event(let namespace, let arguments, let ackID):
            guard case .connected(var connection)? = self.namespaces[namespace] else { return .none }
            if let rate = self.limits.eventRate {
                // Every event counts, handled or not: the limit is on what the client sends.
                var bucket = connection.bucket ?? TokenBucket(limit: rate, now: now)
                let admitted = bucket.take(at: now)
                connection.bucket = bucket
                self.namespaces[namespace] = .connected(connection)
                guard admitted else {
                    return self.closeSession(
                        SocketIOSessionError(
                            code: .eventRateExceeded,
                            detail: "namespace \(LogSafe.text(namespace)) sent events faster than \(rate)"
                        )
                    )
                }
            }
            guard case .string(let event)? = arguments.first, handlesEvent(namespace, event) else { return .none }
            if let ackID {
                guard !connection.owedAcks.contains(ackID) else {
                    return self.closeSession(
                        SocketIOSessionError(
                            code: .duplicateAckID,
                            detail: "namespace \(LogSafe.text(namespace)) asked for ack \(ackID) again "
                                + "before it was answered"
                        )
                    )
                }
                guard connection.owedAcks.count < self.limits.maxPendingClientAcks else {
                    return self.closeSession(
                        SocketIOSessionError(
                            code: .tooManyPendingAcks,
                            detail: "namespace \(LogSafe.text(namespace)) asked for more than "
                                + "\(self.limits.maxPendingClientAcks) acks the handlers have not answered"
                        )
                    )
                }
                connection.owedAcks.insert(ackID)
                self.namespaces[namespace] = .connected(connection)
            }
            return .dispatchEvent(namespace: namespace, sid: connection.sid, arguments: arguments, ackID: ackID)

        case .ack(let namespace, let id, let arguments):
            guard case .connected(var connection)? = self.namespaces[namespace],
                connection.pendingAcks.removeValue(forKey: id) != nil
            else {
                // An ack nobody waits for (timed out, or never asked): ignored, as socket.io does.
                return .none
            }
            self.namespaces[namespace] = .connected(connection)
            return .resolveAck(namespace: namespace, sid: connection.sid, id: id, arguments: arguments)
        }
    }

    /// The authenticator answered for `namespace`.
    /// - Parameters:
    ///   - accepted: Whether the client may connect.
    ///   - sid: The session id to give the connection when accepted.
    mutating func authenticationCompleted(namespace: String, accepted: Bool, sid: String) -> AuthenticationOutcome {
        self.authenticationCompleted(namespace: namespace, refusal: accepted ? nil : .unauthorized, sid: sid)
    }

    /// The middleware chain answered for `namespace`: nil accepts, a refusal refuses with its message and data.
    /// - Parameters:
    ///   - refusal: Why the client may not connect; nil when it may.
    ///   - sid: The session id to give the connection when accepted.
    mutating func authenticationCompleted(
        namespace: String,
        refusal: ConnectRefusal?,
        sid: String
    ) -> AuthenticationOutcome {
        guard !self.isClosed, case .authenticating? = self.namespaces[namespace] else {
            // The session closed or the client left the namespace meanwhile.
            return .action(.none)
        }
        if let refusal {
            self.namespaces.removeValue(forKey: namespace)
            return .action(self.refuseConnect(namespace: namespace, refusal: refusal))
        }
        self.namespaces[namespace] = .connected(Connection(sid: sid))
        self.connectDeadline = nil
        return .accept(namespace: namespace, sid: sid)
    }

    /// The client could not be parsed, broke the protocol or exceeded a limit the caller enforces (the handler
    /// queue): the session closes.
    mutating func protocolError(_ error: SocketIOSessionError) -> Action {
        guard !self.isClosed else { return .none }
        return self.closeSession(error)
    }

    /// A handler answers ack `id` of client `sid` in `namespace`.
    /// - Returns: Whether to send it: true once per id the client asked for (which is then forgotten).
    mutating func ackAnswered(namespace: String, sid: String, id: UInt64) -> Bool {
        guard !self.isClosed, case .connected(var connection)? = self.namespaces[namespace], connection.sid == sid,
            connection.owedAcks.remove(id) != nil
        else { return false }
        self.namespaces[namespace] = .connected(connection)
        return true
    }

    private mutating func closeSession(_ error: SocketIOSessionError) -> Action {
        self.isClosed = true
        self.closingError = error
        return .closeSession(error)
    }

    /// Refuses a CONNECT; the refusal that reaches `maxRefusedConnects` also closes the session, so a client cannot
    /// retry CONNECT (e.g. guess tokens) forever on one session.
    private mutating func refuseConnect(namespace: String, refusal: ConnectRefusal) -> Action {
        self.refusedConnects += 1
        guard self.refusedConnects >= self.limits.maxRefusedConnects else {
            return .sendConnectError(namespace: namespace, refusal: refusal)
        }
        let error = SocketIOSessionError(
            code: .tooManyRefusedConnects,
            detail: "\(self.refusedConnects) CONNECTs refused on this session, the last for namespace "
                + "\(LogSafe.text(namespace)) (\(refusal.message))"
        )
        self.isClosed = true
        self.closingError = error
        return .sendConnectErrorAndClose(namespace: namespace, refusal: refusal, error)
    }

    /// The server disconnects the connection `sid` in `namespace`.
    mutating func serverDisconnect(namespace: String, sid: String) -> Action {
        guard !self.isClosed, case .connected(let connection)? = self.namespaces[namespace], connection.sid == sid
        else {
            return .none
        }
        self.namespaces.removeValue(forKey: namespace)
        return .closeConnection(
            namespace: namespace,
            sid: sid,
            pendingAcks: connection.pendingAcks.keys.sorted(),
            cause: .server
        )
    }

    /// Reserves an ack id for a server → client event on connection `sid`, answered by `deadline`.
    /// - Returns: The id, or nil when that connection is gone.
    mutating func allocateAck(namespace: String, sid: String, deadline: NIODeadline) -> UInt64? {
        guard !self.isClosed, case .connected(var connection)? = self.namespaces[namespace], connection.sid == sid
        else {
            return nil
        }
        let id = connection.nextAckID
        connection.nextAckID = id &+ 1
        connection.pendingAcks[id] = deadline
        self.namespaces[namespace] = .connected(connection)
        return id
    }

    /// Gives up waiting for ack `id` (e.g. the waiting task was cancelled). Returns whether it was pending.
    mutating func cancelAck(namespace: String, sid: String, id: UInt64) -> Bool {
        guard case .connected(var connection)? = self.namespaces[namespace], connection.sid == sid,
            connection.pendingAcks.removeValue(forKey: id) != nil
        else { return false }
        self.namespaces[namespace] = .connected(connection)
        return true
    }

    /// Time passed: returns the connect timeout and the acks whose deadline is at or before `now`.
    mutating func expire(now: NIODeadline) -> [Action] {
        guard !self.isClosed else { return [] }
        if let deadline = self.connectDeadline, deadline <= now {
            self.connectDeadline = nil
            // As the reference server: closed unless some namespace accepted the client by now (a CONNECT still
            // being authenticated, or refused, does not count).
            if self.connectedNamespaces.isEmpty {
                let error = SocketIOSessionError(
                    code: .connectTimeout,
                    detail: "no CONNECT packet within the connect timeout"
                )
                self.isClosed = true
                self.closingError = error
                return [.closeSession(error)]
            }
        }
        var actions: [Action] = []
        for (namespace, state) in self.namespaces {
            guard case .connected(var connection) = state else { continue }
            let expired = connection.pendingAcks.filter { $0.value <= now }.keys.sorted()
            guard !expired.isEmpty else { continue }
            for id in expired {
                connection.pendingAcks.removeValue(forKey: id)
                actions.append(.failAck(namespace: namespace, sid: connection.sid, id: id))
            }
            self.namespaces[namespace] = .connected(connection)
        }
        return actions
    }

    /// The Engine.IO session closed: every connection ends.
    mutating func sessionClosed() -> [Action] {
        self.isClosed = true
        self.connectDeadline = nil
        let namespaces = self.namespaces
        self.namespaces = [:]
        return namespaces.keys.sorted().compactMap { namespace in
            guard case .connected(let connection) = namespaces[namespace]! else { return nil }
            return .closeConnection(
                namespace: namespace,
                sid: connection.sid,
                pendingAcks: connection.pendingAcks.keys.sorted(),
                cause: .session
            )
        }
    }
}
