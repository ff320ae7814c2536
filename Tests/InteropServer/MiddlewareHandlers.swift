import Logging
import SocketGatewayServer

/// The per-socket data the interop server's middlewares and handlers keep.
enum MiddlewareTrace: SocketDataKey {
    /// The middlewares that ran, in order.
    typealias Value = [String]
    static let name = "trace"
}

/// The `tag` the client sent in its CONNECT payload, saved by the server middleware.
enum ClientTag: SocketDataKey {
    typealias Value = String
    static let name = "tag"
}

/// Every event the client sent, as `[event, [args]]`, recorded by `onAny`.
enum IncomingLog: SocketDataKey {
    typealias Value = [JSONValue]
    static let name = "incoming"
}

/// Every event the client was sent, as `[event, [args]]`, recorded by `onAnyOutgoing`.
enum OutgoingLog: SocketDataKey {
    typealias Value = [JSONValue]
    static let name = "outgoing"
}

/// Appends `name` to the request's middleware trace.
func trace(_ name: String, _ request: inout SocketConnectRequest) {
    request.data[MiddlewareTrace.self, default: []].append(name)
}

extension SocketData {
    /// The value of `key`, or `defaultValue` when unset; setting stores it.
    subscript<Key: SocketDataKey>(key: Key.Type, default defaultValue: Key.Value) -> Key.Value {
        get { self[key] ?? defaultValue }
        set { self[key] = newValue }
    }
}

/// The refusal a client asks for in its CONNECT payload: `{"refuse": {"at": "server"|"namespace", "message": …,
/// "data": …}}` refuses at that middleware; `{"explode": "server"}` makes the server middleware throw another error.
func requestedRefusal(_ request: SocketConnectRequest, at step: String) throws {
    let auth = request.handshake.auth
    if auth?["explode"]?.stringValue == step {
        struct MiddlewareExploded: Error {}
        throw MiddlewareExploded()
    }
    guard let refuse = auth?["refuse"], refuse["at"]?.stringValue == step else { return }
    throw SocketConnectRefusal(refuse["message"]?.stringValue ?? "refused", data: refuse["data"])
}

/// What the Python suite's test_middleware.py drives: a server middleware, `/mw` with its own middleware, `onAny`
/// and `onAnyOutgoing`, and the dynamic namespace `/dynamic-<digits>`.
func installMiddlewareHandlers(on server: SocketServer, logger: Logger) {
    // Every namespace: after the JWT authenticator (the user is set), before the namespace's own.
    server.use { request in
        try requestedRefusal(request, at: "server")
        trace("server:\(request.user?.id ?? "-")", &request)
        if let tag = request.handshake.auth?["tag"]?.stringValue {
            request.data[ClientTag.self] = tag
        }
    }

    let middleware = server.namespace("/mw")
    installMiddlewareNamespaceHandlers(on: middleware, gateway: server.gateway)
    middleware.use { request in
        try requestedRefusal(request, at: "namespace")
        trace("namespace", &request)
    }
    middleware.onConnect { connection in
        connection.updateData { $0[MiddlewareTrace.self, default: []].append("connect") }
    }
    middleware.onAny { connection, event, arguments, _ in
        connection.updateData { $0[IncomingLog.self, default: []].append([.string(event), .array(arguments)]) }
    }
    middleware.onAnyOutgoing { connection, event, arguments in
        connection.updateData { $0[OutgoingLog.self, default: []].append([.string(event), .array(arguments)]) }
    }

    let dynamic = server.dynamicNamespace("/dynamic-*", matching: #/\/dynamic-\d+/#)
    installMiddlewareNamespaceHandlers(on: dynamic, gateway: server.gateway)
    dynamic.use { request in
        try requestedRefusal(request, at: "dynamic")
        trace("dynamic:\(request.namespace)", &request)
    }

    // `to-dynamic-children` {event, data} (on `/`): emits to every child of the dynamic namespace; the ack carries
    // the children reached.
    server.namespace("/").on("to-dynamic-children") { _, arguments, ack in
        guard let request = arguments.first, let event = request["event"]?.stringValue else {
            ack?.send([badRequest("to-dynamic-children", "expected {event, data}")])
            return
        }
        let results = await server.gateway.emit(event, arguments: [request["data"] ?? .null], inChildrenOf: dynamic)
        ack?.send([.array(results.keys.sorted().map { JSONValue.string($0) })])
    }
}

/// The handlers of `/mw` and the dynamic namespace.
func installMiddlewareNamespaceHandlers(on namespace: SocketNamespace, gateway: SocketGateway) {
    // `whoami`: acks with the namespace, the user and the per-socket data (its JSON form).
    namespace.on("whoami") { connection, _, ack in
        let data = (try? connection.data.jsonValue()) ?? .null
        ack?.send([
            [
                "namespace": .string(connection.namespace),
                "user": connection.user.map { JSONValue.string($0.id) } ?? .null,
                "data": data,
            ]
        ])
    }

    // `echo`: emits `echo` back with the same arguments and acks them.
    namespace.on("echo") { connection, arguments, ack in
        connection.emit("echo", arguments: arguments)
        ack?.send(arguments)
    }

    // `to-me` {event, data}: the gateway emits `event` to this socket's room (a broadcast path, not its own emit).
    namespace.on("to-me") { connection, arguments, ack in
        guard let request = arguments.first, let event = request["event"]?.stringValue else {
            ack?.send([badRequest("to-me", "expected {event, data}")])
            return
        }
        let result = await gateway.emitToRoom(
            connection.id,
            event: event,
            data: request["data"] ?? .null,
            namespace: connection.namespace
        )
        ack?.send([.int(Int64(result.localDeliveries))])
    }
}
