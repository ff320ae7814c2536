import CoreMetrics
import Logging
import NIOCore
import SocketGatewayCore
import SocketGatewayEngineIO

/// The Socket.IO layer on top of Engine.IO: one `SocketIOClient` per Engine.IO session.
final class SocketIOApplication: EngineIOApplication, Sendable {
    let registry: NamespaceRegistry
    let authenticator: (any SocketAuthenticator)?
    let connectTimeout: TimeAmount
    let shards: RoomShards
    let metrics: SocketServerMetrics
    let logger: Logger
    /// One warning per interval for clients closed for breaking the protocol, however many there are.
    let protocolErrorWarning = RateLimitedWarning()

    init(
        registry: NamespaceRegistry,
        authenticator: (any SocketAuthenticator)?,
        connectTimeout: Duration,
        shards: RoomShards,
        metrics: SocketServerMetrics,
        logger: Logger
    ) {
        self.registry = registry
        self.authenticator = authenticator
        self.connectTimeout = TimeAmount(connectTimeout)
        self.shards = shards
        self.metrics = metrics
        self.logger = logger
    }

    /// A session is established when a namespace accepts the client (until then it counts as pending).
    var marksSessionsEstablished: Bool { true }

    func sessionOpened(_ session: EngineIOSession) {
        let client = SocketIOClient(session: session, application: self)
        session.applicationState = client
        client.start()
    }

    func session(_ session: EngineIOSession, didReceive message: EngineIOMessage) {
        guard let client = session.applicationState as? SocketIOClient else { return }
        client.received(message)
    }

    func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {
        guard let client = session.applicationState as? SocketIOClient else { return }
        session.applicationState = nil
        client.sessionClosed(reason: reason)
    }
}

/// The Socket.IO side of one Engine.IO session: the packet decoder, the state machine and the connections
/// (one per namespace). Confined to the session's event loop; the state machine decides, this class acts.
final class SocketIOClient: @unchecked Sendable {
    let session: EngineIOSession
    let application: SocketIOApplication
    private var machine: SocketIOSessionStateMachine
    private var decoder = SocketIOWire.Decoder()
    private var connections: SmallMap<String, SocketConnection> = [:]
    private var connectTimer: Scheduled<Void>?
    /// The application's logger with this session's id; built when something is logged rather than kept per
    /// client (a stored copy with metadata costs about 500 bytes per connection).
    private var logger: Logger {
        var logger = self.application.logger
        logger[metadataKey: "engine.io.sid"] = "\(self.session.id)"
        return logger
    }

    init(session: EngineIOSession, application: SocketIOApplication) {
        self.session = session
        self.application = application
        self.machine = SocketIOSessionStateMachine(now: .now(), connectTimeout: application.connectTimeout)
    }

    func start() {
        if let deadline = self.machine.pendingConnectDeadline {
            self.connectTimer = self.session.eventLoop.scheduleTask(deadline: deadline) { [self] in
                self.expireTimers()
            }
        }
    }

    func received(_ message: EngineIOMessage) {
        let inbound: SocketIOSessionStateMachine.Inbound?
        do {
            inbound = try self.decoder.feed(message)
        } catch {
            self.run(self.machine.protocolError(error))
            return
        }
        guard let inbound else { return }  // waiting for binary attachments
        let registry = self.application.registry
        self.run(self.machine.received(inbound, namespaceExists: { registry.existing($0) != nil }))
    }

    func sessionClosed(reason: EngineIOCloseReason) {
        self.connectTimer?.cancel()
        self.connectTimer = nil
        let disconnectReason: SocketDisconnectReason =
            self.machine.closingError == nil ? .transport(reason) : .protocolError
        for action in self.machine.sessionClosed() {
            self.run(action, sessionCloseReason: disconnectReason)
        }
    }

    func serverDisconnect(_ connection: SocketConnection) {
        self.run(self.machine.serverDisconnect(namespace: connection.namespace, sid: connection.id))
    }

    func allocateAck(for connection: SocketConnection, deadline: NIODeadline) -> UInt64? {
        guard let id = self.machine.allocateAck(namespace: connection.namespace, sid: connection.id, deadline: deadline) else {
            return nil
        }
        self.session.eventLoop.scheduleTask(deadline: deadline) { [self] in
            self.expireTimers()
        }
        return id
    }

    func cancelAck(for connection: SocketConnection, id: UInt64) {
        _ = self.machine.cancelAck(namespace: connection.namespace, sid: connection.id, id: id)
    }

    private func expireTimers() {
        for action in self.machine.expire(now: .now()) {
            self.run(action)
        }
    }

    private func run(
        _ action: SocketIOSessionStateMachine.Action,
        sessionCloseReason: SocketDisconnectReason = .transport(.transportClose)
    ) {
        switch action {
        case .none:
            break

        case .sendConnectError(let namespace, let message):
            if message == "Unauthorized" {
                self.application.metrics.authFailure(namespace: namespace)
            }
            self.logger.debug("socket.io connect refused", metadata: ["namespace": "\(namespace)", "reason": "\(message)"])
            self.session.send(SocketIOWire.connectError(namespace: namespace, message: message))

        case .authenticate(let namespace, let auth):
            let request = self.session.request
            let handshake = SocketHandshake(
                auth: auth, headers: request.headers, query: request.query, remoteAddress: request.remoteAddress)
            guard let authenticator = self.application.authenticator else {
                self.authenticationCompleted(namespace: namespace, handshake: handshake, user: nil, accepted: true)
                return
            }
            let eventLoop = self.session.eventLoop
            Task {
                let user = await authenticator.authenticate(auth: auth, handshake: handshake)
                eventLoop.execute {
                    self.authenticationCompleted(namespace: namespace, handshake: handshake, user: user, accepted: user != nil)
                }
            }

        case .accept:
            preconditionFailure("accept is handled by authenticationCompleted")

        case .dispatchEvent(let namespace, _, let arguments, let ackID):
            guard let connection = self.connections[namespace], let namespaceHandlers = self.application.registry.existing(namespace),
                case .string(let event)? = arguments.first
            else { return }
            let handlers = namespaceHandlers.eventHandlers(event)
            var ack: SocketAck?
            if let ackID {
                connection.expectAckReply(ackID)
                ack = SocketAck(connection: connection, id: ackID)
            }
            guard !handlers.isEmpty else {
                self.logger.trace("no handler for socket.io event", metadata: ["namespace": "\(namespace)", "event": "\(event)"])
                return
            }
            let eventArguments = Array(arguments.dropFirst())
            connection.enqueue { [ack] in
                for handler in handlers {
                    await handler(connection, eventArguments, ack)
                }
            }

        case .resolveAck(let namespace, _, let id, let arguments):
            self.connections[namespace]?.resolveAck(id, arguments: arguments)

        case .failAck(let namespace, _, let id):
            self.connections[namespace]?.failAck(id, .timeout)

        case .closeConnection(let namespace, _, let pendingAcks, let cause):
            guard let connection = self.connections.removeValue(forKey: namespace) else { return }
            let reason: SocketDisconnectReason
            switch cause {
            case .client:
                reason = .clientNamespaceDisconnect
            case .server:
                reason = .serverNamespaceDisconnect
                self.session.send(SocketIOWire.disconnect(namespace: namespace))
            case .session:
                reason = sessionCloseReason
            }
            self.endConnection(connection, pendingAcks: pendingAcks, reason: reason)

        case .closeSession(let error):
            self.application.metrics.protocolError(error)
            // With what the log reader needs to find the client. An idle client that never connected is routine
            // (debug); a protocol violation is a warning, rate-limited so a flood of bad clients stays a few lines.
            let metadata: Logger.Metadata = [
                "remote": "\(self.session.request.remoteAddress.map { "\($0)" } ?? "?")",
                "transport": "\(self.session.transport)",
            ]
            if error.code == .connectTimeout {
                self.logger.debug("closing engine.io session: \(error)", metadata: metadata)
            } else {
                self.application.protocolErrorWarning.log(
                    self.logger,
                    "closing engine.io session: \(LogSafe.text(error.description, limit: 300))",
                    metadata: metadata
                )
            }
            // Over polling the client gets the close packet (on its parked GET or its next one).
            self.session.close(reason: error.code == .connectTimeout ? .serverClose : .parseError)
        }
    }

    private func authenticationCompleted(namespace: String, handshake: SocketHandshake, user: AuthenticatedUser?, accepted: Bool) {
        let action = self.machine.authenticationCompleted(namespace: namespace, accepted: accepted, sid: SocketIOClient.makeSid())
        guard case .accept(let namespace, let sid) = action else {
            self.run(action)
            return
        }
        if self.machine.pendingConnectDeadline == nil, let timer = self.connectTimer {
            // Connected in time: free the timer now rather than when it would have fired.
            timer.cancel()
            self.connectTimer = nil
        }
        guard let namespaceHandlers = self.application.registry.existing(namespace) else { return }
        self.session.markEstablished()
        let connection = SocketConnection(id: sid, namespace: namespace, user: user, handshake: handshake, client: self)
        self.connections[namespace] = connection
        // The CONNECT reply goes out before anything onConnect emits.
        self.session.send(SocketIOWire.connect(namespace: namespace, sid: sid))
        let shards = self.application.shards
        shards.register(connection)
        let shard = shards.shard(for: connection.eventLoop)
        shard.join(connection, room: sid)
        if let user {
            shard.join(connection, room: EmitTarget.userRoom(user.id))
        }
        namespaceHandlers.connectionsMeter.increment()
        self.logger.debug("socket.io connected", metadata: ["namespace": "\(namespace)", "sid": "\(sid)"])
        let handlers = namespaceHandlers.connectHandlers
        if !handlers.isEmpty {
            connection.enqueue {
                for handler in handlers {
                    await handler(connection)
                }
            }
        }
    }

    private func endConnection(_ connection: SocketConnection, pendingAcks: [UInt64], reason: SocketDisconnectReason) {
        connection.markDisconnected(pendingAcks: pendingAcks)
        self.application.shards.unregister(connection)
        let namespace = self.application.registry.existing(connection.namespace)
        namespace?.connectionsMeter.decrement()
        self.logger.debug(
            "socket.io disconnected",
            metadata: ["namespace": "\(connection.namespace)", "sid": "\(connection.id)", "reason": "\(reason)"])
        let handlers = namespace?.disconnectHandlers ?? []
        if !handlers.isEmpty {
            connection.enqueue {
                for handler in handlers {
                    await handler(connection, reason)
                }
            }
        }
        connection.finishJobs()
    }

    /// A random, URL-safe Socket.IO session id (20 characters, 120 bits).
    static func makeSid() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 15)
        for index in bytes.indices { bytes[index] = generator.next() }
        return Base64URL.encode(bytes)
    }
}
