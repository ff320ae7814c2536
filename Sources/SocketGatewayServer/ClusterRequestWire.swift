import NIOCore
import SocketGatewayCore

/// The request and response messages of cluster-wide operations, on channels of this project's own (never on
/// python-socketio's channel, so python-socketio servers and workers do not see them):
///
/// - requests on `<channel>:requests`, which every gateway server subscribes to:
///   `{"type": "request", "id": 7, "host_id": "<asker>", "expires_ms": <wall clock ms>, "op": "fetch_sockets",
///   "namespace": "/", "rooms": ["room"] or null, "except": [], …}`;
/// - responses on `<channel>:responses:<asker's host id>`, which only the asker subscribes to:
///   `{"type": "response", "id": 7, "host_id": "<answerer>", "reply": <JSON>}` or `…, "error": "<why>"}`.
///
/// With a signing key, both carry the same trailing `sig` field as every other message.
enum ClusterRequestWire {
    struct Request: Sendable, Hashable {
        var id: UInt64
        var hostID: String
        /// Wall-clock milliseconds since 1970 after which the request must not be applied (it may reach a server
        /// late, from an outbox, after its asker stopped waiting).
        var expiresMilliseconds: Int64
        var query: ClusterQuery
    }

    struct Response: Sendable, Hashable {
        var id: UInt64
        var hostID: String
        var reply: ClusterRequestStateMachine.Reply
    }

    /// Why a message on a request or response channel was skipped.
    struct DecodeError: Error, Hashable, CustomStringConvertible {
        var message: String
        var description: String { self.message }
    }

    // `:`, not `#`: `<channel>#…` names are room channels (``RedisChannelMode/rooms``).
    static func requestChannel(_ channel: String) -> String { "\(channel):requests" }
    static func responseChannel(_ channel: String, hostID: String) -> String { "\(channel):responses:\(hostID)" }

    static func encode(_ request: Request, into buffer: inout ByteBuffer) {
        var members: [(key: String, value: JSONValue)] = [
            ("type", "request"), ("id", .int(Int64(truncatingIfNeeded: request.id))),
            ("host_id", .string(request.hostID)), ("expires_ms", .int(request.expiresMilliseconds)),
        ]
        func selector(_ selector: ClusterSocketSelector) {
            members.append(("namespace", .string(selector.namespace)))
            members.append(("rooms", selector.rooms.map { .array($0.map { .string($0) }) } ?? .null))
            members.append(("except", .array(selector.excluding.sorted().map { .string($0) })))
        }
        switch request.query {
        case .ping:
            members.append(("op", "ping"))
        case .fetchSockets(let target):
            members.append(("op", "fetch_sockets"))
            selector(target)
        case .socketsJoin(let target, let rooms):
            members.append(("op", "sockets_join"))
            selector(target)
            members.append(("join", .array(rooms.map { .string($0) })))
        case .socketsLeave(let target, let rooms):
            members.append(("op", "sockets_leave"))
            selector(target)
            members.append(("leave", .array(rooms.map { .string($0) })))
        case .disconnectSockets(let target):
            members.append(("op", "disconnect_sockets"))
            selector(target)
        case .serverSideEmit(let event, let arguments):
            members.append(("op", "server_side_emit"))
            members.append(("event", .string(event)))
            members.append(("args", .array(arguments)))
        case .broadcastWithAck(let event, let arguments, let target, let timeout, let maxRecipients):
            members.append(("op", "broadcast_with_ack"))
            selector(target)
            members.append(("event", .string(event)))
            members.append(("args", .array(arguments)))
            members.append(("ack_timeout_ms", .int(Self.milliseconds(timeout))))
            members.append(("max_recipients", .int(Int64(maxRecipients))))
        }
        JSONValue.object(members).write(to: &buffer)
    }

    static func encode(_ response: Response, into buffer: inout ByteBuffer) {
        var members: [(key: String, value: JSONValue)] = [
            ("type", "response"), ("id", .int(Int64(truncatingIfNeeded: response.id))),
            ("host_id", .string(response.hostID)),
        ]
        switch response.reply {
        case .value(let value): members.append(("reply", value))
        case .error(let reason): members.append(("error", .string(reason)))
        }
        JSONValue.object(members).write(to: &buffer)
    }

    static func decodeRequest(_ bytes: ByteBuffer) throws(DecodeError) -> Request {
        let json = try self.parse(bytes, type: "request")
        let (id, hostID) = try self.header(json)
        guard let expires = json["expires_ms"]?.intValue else { throw DecodeError(message: "no 'expires_ms'") }
        guard let op = json["op"]?.stringValue else { throw DecodeError(message: "no string 'op'") }
        let query: ClusterQuery
        switch op {
        case "ping":
            query = .ping
        case "fetch_sockets":
            query = .fetchSockets(try self.selector(json))
        case "sockets_join":
            query = .socketsJoin(try self.selector(json), rooms: try self.strings(json["join"], "join"))
        case "sockets_leave":
            query = .socketsLeave(try self.selector(json), rooms: try self.strings(json["leave"], "leave"))
        case "disconnect_sockets":
            query = .disconnectSockets(try self.selector(json))
        case "server_side_emit":
            guard let event = json["event"]?.stringValue, let arguments = json["args"]?.arrayValue else {
                throw DecodeError(message: "server_side_emit without a string 'event' and a list 'args'")
            }
            query = .serverSideEmit(event: event, arguments: arguments)
        case "broadcast_with_ack":
            guard let event = json["event"]?.stringValue, let arguments = json["args"]?.arrayValue,
                let timeout = json["ack_timeout_ms"]?.intValue, timeout >= 0,
                let maxRecipients = json["max_recipients"]?.intValue, maxRecipients >= 0
            else {
                throw DecodeError(
                    message: "broadcast_with_ack without 'event', 'args', 'ack_timeout_ms' and 'max_recipients'"
                )
            }
            query = .broadcastWithAck(
                event: event,
                arguments: arguments,
                try self.selector(json),
                timeout: .milliseconds(timeout),
                maxRecipients: Int(clamping: maxRecipients)
            )
        default:
            throw DecodeError(message: "unknown op '\(LogSafe.text(op))'")
        }
        return Request(id: id, hostID: hostID, expiresMilliseconds: expires, query: query)
    }

    static func decodeResponse(_ bytes: ByteBuffer) throws(DecodeError) -> Response {
        let json = try self.parse(bytes, type: "response")
        let (id, hostID) = try self.header(json)
        if let reason = json["error"]?.stringValue {
            return Response(id: id, hostID: hostID, reply: .error(reason))
        }
        guard let reply = json["reply"] else { throw DecodeError(message: "no 'reply' nor 'error'") }
        return Response(id: id, hostID: hostID, reply: .value(reply))
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    private static func parse(_ bytes: ByteBuffer, type: String) throws(DecodeError) -> JSONValue {
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes, maxDepth: 64)
        } catch {
            throw DecodeError(message: "not JSON (\(error))")
        }
        guard json["type"]?.stringValue == type else { throw DecodeError(message: "not a \(type)") }
        return json
    }

    private static func header(_ json: JSONValue) throws(DecodeError) -> (UInt64, String) {
        guard let id = json["id"]?.intValue, id > 0 else { throw DecodeError(message: "no positive integer 'id'") }
        guard let hostID = json["host_id"]?.stringValue, !hostID.isEmpty, hostID.utf8.count <= 64 else {
            throw DecodeError(message: "no 'host_id' of 1 to 64 bytes")
        }
        return (UInt64(id), hostID)
    }

    private static func selector(_ json: JSONValue) throws(DecodeError) -> ClusterSocketSelector {
        guard let namespace = json["namespace"]?.stringValue else { throw DecodeError(message: "no 'namespace'") }
        var selector = ClusterSocketSelector(options: EmitOptions(namespace: namespace))
        if let rooms = json["rooms"], !rooms.isNull {
            selector.rooms = try self.strings(rooms, "rooms")
        }
        selector.excluding = Set(try self.strings(json["except"] ?? .array([]), "except"))
        return selector
    }

    private static func strings(_ value: JSONValue?, _ field: String) throws(DecodeError) -> [String] {
        guard let items = value?.arrayValue else { throw DecodeError(message: "'\(field)' is not a list") }
        let strings = items.compactMap(\.stringValue)
        guard strings.count == items.count else { throw DecodeError(message: "'\(field)' holds a non-string") }
        return strings
    }
}
