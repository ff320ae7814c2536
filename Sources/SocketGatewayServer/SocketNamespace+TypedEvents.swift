import Logging
@_spi(Generated) public import SocketGatewayCore

extension SocketNamespace {
    /// Runs `handler` for every `Event` a client sends whose payload matches the catalog, decoded.
    ///
    /// A payload that does not match is refused (see ``SocketEventRefusal``): that client alone gets the refusal
    /// (as the ack when it asked for one, otherwise as the event `socketgateway:error`), `handler` is not called,
    /// the refusal is counted in `socketgateway_client_events_refused_total` and logged at most once per 10 s.
    /// The connection stays open. A client that asks for an ack of this event (which the catalog declares
    /// without one) gets an empty ack once `handler` returned.
    /// - Parameters:
    ///   - event: The generated client event type. It must belong to this namespace: registering it on another
    ///     is a programming error that stops the program (the handler could never run).
    ///   - handler: Gets the connection and the decoded payload.
    public func on<Event: SocketClientEvent>(
        _ event: Event.Type,
        _ handler: @escaping @Sendable (SocketConnection, Event) async -> Void
    ) where Event.Ack == SocketNoAck {
        self.on(event) { connection, payload, ack in
            await handler(connection, payload)
            ack.acknowledgeWithoutAnswer()
        }
    }

    /// Runs `handler` for every `Event` a client sends whose payload matches the catalog, decoded, with an ack
    /// that takes the catalog's reply type.
    ///
    /// A payload that does not match is refused (see ``SocketEventRefusal``): that client alone gets the refusal
    /// (as the ack when it asked for one, otherwise as the event `socketgateway:error`), `handler` is not called,
    /// the refusal is counted in `socketgateway_client_events_refused_total` and logged at most once per 10 s.
    /// The connection stays open.
    /// - Parameters:
    ///   - event: The generated client event type. It must belong to this namespace: registering it on another
    ///     is a programming error that stops the program (the handler could never run).
    ///   - handler: Gets the connection, the decoded payload and the typed ack (which sends nothing when the
    ///     client did not ask for one).
    public func on<Event: SocketClientEvent>(
        _ event: Event.Type,
        _ handler: @escaping @Sendable (SocketConnection, Event, SocketTypedAck<Event.Ack>) async -> Void
    ) {
        precondition(
            Event.namespace == self.name,
            "\(Event.self) (\(Event.eventName)) belongs to namespace \(Event.namespace), not \(self.name)"
        )
        self.on(Event.eventName) { connection, arguments, ack in
            let payload: Event
            do {
                payload = try GeneratedEventDecoding.payload(Event.eventName, arguments, Event.init(jsonValue:))
            } catch let error as SocketEventDecodingError {
                connection.refuse(SocketEventRefusal(error), ack: ack)
                return
            } catch {
                let wrapped = SocketEventDecodingError(code: .invalidValue, event: Event.eventName, message: "\(error)")
                connection.refuse(SocketEventRefusal(wrapped), ack: ack)
                return
            }
            await handler(connection, payload, SocketTypedAck(ack))
        }
    }
}

/// Answers a typed client event with the catalog's reply type. Calling it more than once sends nothing more.
public struct SocketTypedAck<Ack: SocketPayloadEncodable>: Sendable {
    let ack: SocketAck?

    init(_ ack: SocketAck?) {
        self.ack = ack
    }

    /// Whether the client asked for an ack; when not, answering sends nothing.
    public var isRequested: Bool { self.ack != nil }

    /// Acknowledges with `reply` as the ack's single argument.
    public func callAsFunction(_ reply: Ack) {
        self.ack?.send([reply.jsonValue])
    }

    /// Acknowledges with a refusal of your own (the same shape as a payload refusal, e.g. `sheet_not_found`), so
    /// a client handles every failure in one place.
    /// - Parameters:
    ///   - error: A short machine-readable code, e.g. `sheet_not_found`.
    ///   - message: What went wrong, for people.
    public func refuse(_ error: String, message: String) {
        self.ack?.send([SocketEventRefusal(error: error, message: message).jsonValue])
    }

    /// An empty ack, for an event the catalog declares without one, so the client's pending ack is released.
    func acknowledgeWithoutAnswer() {
        self.ack?.send([])
    }
}

/// What a client gets when the server refuses its event: an object
/// `{"error": "invalid_payload", "event": "sheet:sync:request", "path": "$.sheet_id",
/// "message": "sheet:sync:request: wrong type at $.sheet_id: expected a string, found a number"}`, sent as the
/// ack's single argument when the client asked for an ack, otherwise as the event ``eventName``
/// (`socketgateway:error`) to that client alone.
public struct SocketEventRefusal: Sendable, Hashable, CustomStringConvertible {
    /// The event a refusal is sent as when the client did not ask for an ack.
    public static let eventName = "socketgateway:error"
    /// The `error` of a payload that does not match the catalog.
    public static let invalidPayload = "invalid_payload"

    /// A short machine-readable code: ``invalidPayload``, or one a handler chose.
    public var error: String
    /// The refused event's name, when known.
    public var event: String?
    /// Where in the payload the first problem is (`$.warnings[2].code`), for a payload refusal.
    public var path: String?
    /// What was wrong, for people.
    public var message: String

    /// Creates a refusal.
    /// - Parameters:
    ///   - error: A short machine-readable code.
    ///   - event: The refused event's name, when known.
    ///   - path: Where in the payload the problem is, when it is about the payload.
    ///   - message: What was wrong.
    public init(error: String, event: String? = nil, path: String? = nil, message: String) {
        self.error = error
        self.event = event
        self.path = path
        self.message = message
    }

    /// The refusal of a payload that `error` says does not match the catalog.
    init(_ error: SocketEventDecodingError) {
        self.init(
            error: Self.invalidPayload,
            event: error.event,
            path: error.pathDescription,
            message: error.description
        )
    }

    /// The object sent to the client; absent members are left out.
    public var jsonValue: JSONValue {
        var members: [(key: String, value: JSONValue)] = [("error", .string(self.error))]
        if let event = self.event { members.append(("event", .string(event))) }
        if let path = self.path { members.append(("path", .string(path))) }
        members.append(("message", .string(self.message)))
        return .object(members)
    }

    /// The text shown when this value is printed or logged.
    public var description: String { "\(self.error): \(self.message)" }
}

extension SocketConnection {
    /// Refuses a client event: the refusal goes to this client alone (as the ack it asked for, otherwise as the
    /// event `socketgateway:error`), counted and logged at a bounded rate.
    func refuse(_ refusal: SocketEventRefusal, ack: SocketAck?) {
        let application = self.client.application
        application.metrics.clientEventRefused(event: refusal.event ?? "_unknown", namespace: self.namespace)
        application.clientEventRefusedWarning.log(
            application.logger,
            "client event refused: its payload does not match the catalog",
            metadata: [
                "namespace": "\(LogSafe.text(self.namespace))",
                "sid": "\(self.id)",
                "error": "\(LogSafe.text(refusal.message))",
            ]
        )
        if let ack {
            ack.send([refusal.jsonValue])
        } else {
            self.emit(SocketEventRefusal.eventName, arguments: [refusal.jsonValue])
        }
    }

    /// Sends a typed event to this client and waits for its typed answer.
    /// - Parameters:
    ///   - event: The payload; its type gives the event name, the namespace (which must be this connection's)
    ///     and the answer's type.
    ///   - timeout: How long to wait for the answer.
    /// - Returns: The client's answer, decoded.
    /// - Throws: `SocketAckError`: `timeout`, `disconnected`, `notConnected`, `wrongNamespace`, or
    ///   `invalidAnswer` with the ``SocketAckError/answerError`` naming the path of what did not match;
    ///   `CancellationError` when the task is cancelled.
    public func emitWithAck<Event: SocketAcknowledgedEvent>(
        _ event: Event,
        timeout: Duration
    ) async throws -> Event.Ack {
        guard Event.namespace == self.namespace else {
            throw SocketAckError(code: .wrongNamespace, event: Event.eventName, sid: self.id, namespace: self.namespace)
        }
        let answer = try await self.emitWithAck(Event.eventName, arguments: [event.jsonValue], timeout: timeout)
        return try SocketAckError.decodeAnswer(Event.self, answer, sid: self.id, namespace: self.namespace)
    }
}

extension SocketGateway {
    /// Emits a typed event to the client `sid` and waits for its typed answer, wherever in the cluster it is
    /// connected.
    /// - Parameters:
    ///   - event: The payload; its type gives the event name, the namespace and the answer's type.
    ///   - sid: The client's Socket.IO session id.
    ///   - timeout: How long to wait for the answer.
    /// - Returns: The client's answer, decoded.
    /// - Throws: `SocketAckError`: `timeout`, `disconnected`, `notConnected`, or `invalidAnswer` with the
    ///   ``SocketAckError/answerError`` naming the path of what did not match.
    public func emitWithAck<Event: SocketAcknowledgedEvent>(
        _ event: Event,
        to sid: String,
        timeout: Duration
    ) async throws -> Event.Ack {
        let answer = try await self.emitWithAck(
            Event.eventName,
            arguments: [event.jsonValue],
            to: sid,
            namespace: Event.namespace,
            timeout: timeout
        )
        return try SocketAckError.decodeAnswer(Event.self, answer, sid: sid, namespace: Event.namespace)
    }
}

extension SocketAckError {
    /// Decodes a client's answer to `Event` as its `Ack`.
    /// - Throws: `invalidAnswer` carrying the decoding error.
    static func decodeAnswer<Event: SocketAcknowledgedEvent>(
        _ event: Event.Type,
        _ answer: [JSONValue],
        sid: String,
        namespace: String
    ) throws -> Event.Ack {
        do {
            return try GeneratedEventDecoding.payload(Event.eventName, answer, Event.Ack.init(jsonValue:))
        } catch {
            let decodingError =
                error as? SocketEventDecodingError
                ?? SocketEventDecodingError(code: .invalidValue, event: Event.eventName, message: "\(error)")
            var ackError = SocketAckError(code: .invalidAnswer, event: Event.eventName, sid: sid, namespace: namespace)
            ackError.answerError = decodingError
            throw ackError
        }
    }
}
