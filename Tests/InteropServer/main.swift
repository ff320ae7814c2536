// A real SocketServer whose event handlers the Python interop suite (Tests/Interop) drives with python-socketio
// clients. Every handler is an ordinary use of the public API; nothing here fakes a protocol behaviour.
//
// Usage: socket-gateway-interop-server [--host 127.0.0.1] [--port 0]
// Environment: SOCKET_TOKEN_SECRET (required, the HS256 secret), SOCKET_GATEWAY_LOG_LEVEL (default "info"),
// SOCKET_GATEWAY_INTEROP_MOUNTED=hummingbird (serve through a Hummingbird application, SocketGatewayHummingbird,
// with a route of its own at GET /app, instead of the server's own listener).
// Prints exactly one line `LISTENING <port>` on stdout once listening; logs go to stderr. Stops on SIGTERM/SIGINT.

import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import SocketGatewayHummingbird
import SocketGatewayServer
import UnixSignals

/// Command-line options.
struct InteropServerOptions {
    var host = "127.0.0.1"
    var port = 0

    /// Parses `--host H` and `--port N`; returns a message on bad input.
    static func parse(_ arguments: [String]) -> Result<InteropServerOptions, InteropServerUsageError> {
        var options = InteropServerOptions()
        var index = 0
        while index < arguments.count {
            let flag = arguments[index]
            guard index + 1 < arguments.count else {
                return .failure(.init(message: "\(flag) needs a value"))
            }
            let value = arguments[index + 1]
            switch flag {
            case "--host":
                options.host = value
            case "--port":
                guard let port = Int(value), (0...65535).contains(port) else {
                    return .failure(.init(message: "--port must be 0...65535, got \(value)"))
                }
                options.port = port
            default:
                return .failure(.init(message: "unknown option \(flag)"))
            }
            index += 2
        }
        return .success(options)
    }
}

/// A command-line mistake, reported on stderr with exit code 2.
struct InteropServerUsageError: Error {
    var message: String
}

/// Writes one line to stderr.
func writeError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// The answer a handler gives when its arguments are not what the suite sends; the client sees it in its ack.
func badRequest(_ event: String, _ detail: String) -> JSONValue {
    ["error": .string("bad arguments for \(event): \(detail)")]
}

/// The rooms of `connection` as a sorted JSON array, so the tests compare deterministic values.
func sortedRooms(_ connection: SocketConnection) async -> JSONValue {
    let rooms = await connection.rooms()
    return .array(rooms.sorted().map { JSONValue.string($0) })
}

/// Reads `except` (an array of room names) from a request object.
func exclusions(_ request: JSONValue) -> Set<String>? {
    guard let value = request["except"] else { return [] }
    if value.isNull { return [] }
    guard let items = value.arrayValue else { return nil }
    var rooms = Set<String>()
    for item in items {
        guard let room = item.stringValue else { return nil }
        rooms.insert(room)
    }
    return rooms
}

/// Registers the handlers the interop suite drives on `namespace`.
func installHandlers(on namespace: SocketNamespace, gateway: SocketGateway, logger: Logger) {
    let namespaceName = namespace.name

    namespace.onConnect { connection in
        logger.info(
            "interop client connected",
            metadata: [
                "sid": "\(connection.id)", "namespace": "\(connection.namespace)",
                "user": "\(connection.user?.id ?? "-")",
            ]
        )
    }

    // Lets the tests observe that the server noticed a disconnect: members of the room "watchers" hear about it.
    namespace.onDisconnect { connection, reason in
        logger.info(
            "interop client disconnected",
            metadata: ["sid": "\(connection.id)", "namespace": "\(connection.namespace)", "reason": "\(reason)"]
        )
        let notice: JSONValue = [
            "sid": .string(connection.id),
            "user": connection.user.map { JSONValue.string($0.id) } ?? .null,
            "reason": .string("\(reason)"),
        ]
        await gateway.emitToRoom("watchers", event: "peer-left", data: notice, namespace: namespaceName)
    }

    // `echo`: emits `echo` back to the sender with the same arguments.
    namespace.on("echo") { connection, arguments, ack in
        connection.emit("echo", arguments: arguments)
        ack?.send(arguments)
    }

    // `echo-ack`: acknowledges with the same arguments.
    namespace.on("echo-ack") { _, arguments, ack in
        ack?.send(arguments)
    }

    // `binary-echo`: emits `binary-echo` back with the same arguments (binary attachments included), and acks them.
    namespace.on("binary-echo") { connection, arguments, ack in
        connection.emit("binary-echo", arguments: arguments)
        ack?.send(arguments)
    }

    // `join` ROOM: joins the room; the ack carries the socket's rooms afterwards.
    namespace.on("join") { connection, arguments, ack in
        guard let room = arguments.first?.stringValue else {
            ack?.send([badRequest("join", "expected a room name")])
            return
        }
        await connection.join(room)
        let rooms = await sortedRooms(connection)
        ack?.send([rooms])
    }

    // `leave` ROOM: leaves the room; the ack carries the socket's rooms afterwards.
    namespace.on("leave") { connection, arguments, ack in
        guard let room = arguments.first?.stringValue else {
            ack?.send([badRequest("leave", "expected a room name")])
            return
        }
        await connection.leave(room)
        let rooms = await sortedRooms(connection)
        ack?.send([rooms])
    }

    // `rooms`: acks with the socket's rooms.
    namespace.on("rooms") { connection, _, ack in
        let rooms = await sortedRooms(connection)
        ack?.send([rooms])
    }

    // `to-room` {room, event, data, namespace?}: gateway.emitToRoom (in `namespace`, this one's by default); the
    // ack carries the number of local deliveries.
    namespace.on("to-room") { connection, arguments, ack in
        guard let request = arguments.first, let room = request["room"]?.stringValue,
            let event = request["event"]?.stringValue
        else {
            ack?.send([badRequest("to-room", "expected {room, event, data}")])
            return
        }
        let result = await gateway.emitToRoom(
            room,
            event: event,
            data: request["data"] ?? .null,
            namespace: request["namespace"]?.stringValue ?? connection.namespace
        )
        ack?.send([["delivered": .int(Int64(result.localDeliveries)), "result": .string(result.description)]])
    }

    // `to-user` {user, event, data}: gateway.emitToUser; the ack carries the number of local deliveries.
    namespace.on("to-user") { connection, arguments, ack in
        guard let request = arguments.first, let user = request["user"]?.stringValue,
            let event = request["event"]?.stringValue
        else {
            ack?.send([badRequest("to-user", "expected {user, event, data}")])
            return
        }
        let result = await gateway.emitToUser(
            user,
            event: event,
            data: request["data"] ?? .null,
            namespace: connection.namespace
        )
        ack?.send([["delivered": .int(Int64(result.localDeliveries)), "result": .string(result.description)]])
    }

    // `broadcast` {event, data, except: [rooms]}: gateway.broadcast to the namespace minus the excepted rooms.
    namespace.on("broadcast") { connection, arguments, ack in
        guard let request = arguments.first, let event = request["event"]?.stringValue,
            let excluding = exclusions(request)
        else {
            ack?.send([badRequest("broadcast", "expected {event, data, except: [room]}")])
            return
        }
        let result = await gateway.broadcast(
            event: event,
            data: request["data"] ?? .null,
            namespace: connection.namespace,
            excluding: excluding
        )
        ack?.send([["delivered": .int(Int64(result.localDeliveries)), "result": .string(result.description)]])
    }

    // `ask` {event, data, timeoutMs}: emits `event` to the sender with an ack request, then emits `ask-result`
    // with {ok: true, args} or {ok: false, error}. Runs in its own task so the sender's later events are not
    // held up while the server waits for the client's answer.
    namespace.on("ask") { connection, arguments, ack in
        guard let request = arguments.first, let event = request["event"]?.stringValue,
            let timeoutMs = request["timeoutMs"]?.intValue, timeoutMs > 0
        else {
            ack?.send([badRequest("ask", "expected {event, data, timeoutMs > 0}")])
            return
        }
        let data = request["data"] ?? .null
        ack?.send([true])
        Task {
            let outcome: JSONValue
            do {
                let answer = try await connection.emitWithAck(
                    event,
                    arguments: [data],
                    timeout: .milliseconds(timeoutMs)
                )
                outcome = ["ok": true, "args": .array(answer)]
            } catch {
                outcome = ["ok": false, "error": .string("\(error)")]
            }
            connection.emit("ask-result", outcome)
        }
    }

    // `ask-room` {event, data, room?, except?, timeoutMs}: a broadcast with acks to `room` (the namespace without
    // one) minus `except`, then emits `ask-room-result` to the sender with {answers: {sid: args},
    // missing: {sid: code}, servers}. In its own task, as `ask`: the sender may be one of those asked.
    namespace.on("ask-room") { connection, arguments, ack in
        guard let request = arguments.first, let event = request["event"]?.stringValue,
            let timeoutMs = request["timeoutMs"]?.intValue, timeoutMs > 0, let excluding = exclusions(request)
        else {
            ack?.send([badRequest("ask-room", "expected {event, data, room?, except?: [room], timeoutMs > 0}")])
            return
        }
        let target: EmitTarget = request["room"]?.stringValue.map { .room($0) } ?? .broadcast
        let data = request["data"] ?? .null
        ack?.send([true])
        Task {
            let outcome: JSONValue
            do {
                let result = try await gateway.broadcastWithAck(
                    event,
                    arguments: [data],
                    to: target,
                    options: EmitOptions(namespace: connection.namespace, excluding: excluding),
                    timeout: .milliseconds(timeoutMs)
                )
                outcome = [
                    "answers": .object(result.answers.sorted { $0.key < $1.key }.map { ($0.key, .array($0.value)) }),
                    "missing": .object(
                        result.missing.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value.code.description)) }
                    ),
                    "servers": .array(result.servers.sorted().map { .string($0) }),
                ]
            } catch {
                outcome = ["error": .string("\(error)")]
            }
            connection.emit("ask-room-result", outcome)
        }
    }

    // `recovered`: acks whether this connection recovered a lost session (connection state recovery).
    namespace.on("recovered") { connection, _, ack in
        ack?.send([.bool(connection.recovered)])
    }

    // `volatile` {event, data, room?, delayMs?, then?}: after `delayMs`, a volatile emit of `event` to the sender
    // (or, with `room`, through the gateway to the room), dropped for a client that cannot take it at once; then a
    // regular emit of the event `then` to the sender, if given.
    namespace.on("volatile") { connection, arguments, ack in
        guard let request = arguments.first, let event = request["event"]?.stringValue else {
            ack?.send([badRequest("volatile", "expected {event, data, room?, delayMs?}")])
            return
        }
        ack?.send([true])
        if let delay = request["delayMs"]?.intValue, delay > 0 {
            try? await Task.sleep(for: .milliseconds(delay))
        }
        let data = request["data"] ?? .null
        if let room = request["room"]?.stringValue {
            var options = EmitOptions(namespace: connection.namespace)
            options.volatile = true
            await gateway.emit(event, arguments: [data], to: .room(room), options: options)
        } else {
            connection.volatile.emit(event, data)
        }
        if let then = request["then"]?.stringValue {
            connection.emit(then, arguments: [])
        }
    }

    // `disconnect-me`: the server disconnects this socket (after acking, if an ack was requested).
    namespace.on("disconnect-me") { connection, _, ack in
        ack?.send([true])
        await connection.disconnect()
    }
}

func runInteropServer() async -> Int32 {
    let options: InteropServerOptions
    switch InteropServerOptions.parse(Array(CommandLine.arguments.dropFirst())) {
    case .success(let parsed):
        options = parsed
    case .failure(let error):
        writeError("socket-gateway-interop-server: \(error.message)")
        writeError("usage: socket-gateway-interop-server [--host 127.0.0.1] [--port 0]")
        return 2
    }
    let environment = ProcessInfo.processInfo.environment
    guard let secret = environment["SOCKET_TOKEN_SECRET"], !secret.isEmpty else {
        writeError("socket-gateway-interop-server: set SOCKET_TOKEN_SECRET to the HS256 secret tokens are signed with")
        return 2
    }

    let level = environment["SOCKET_GATEWAY_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    let logger = Logger(label: "socket-gateway.interop-server")

    var configuration = SocketServerConfiguration()
    configuration.host = options.host
    configuration.port = options.port
    // Connection state recovery, for the recovery tests' own servers (SOCKET_RECOVERY_WINDOW in seconds,
    // SOCKET_RECOVERY_SKIP_MIDDLEWARES).
    do {
        let keys = [
            SocketServerConfiguration.EnvironmentKey.recoveryWindow,
            SocketServerConfiguration.EnvironmentKey.recoverySkipMiddlewares,
        ]
        configuration.connectionStateRecovery =
            try SocketServerConfiguration(environment: environment.filter { keys.contains($0.key) })
            .connectionStateRecovery
    } catch {
        writeError("socket-gateway-interop-server: \(error)")
        return 2
    }
    // WebSocket and polling compression, for the compression tests' own servers (SOCKET_WS_COMPRESSION,
    // SOCKET_HTTP_COMPRESSION, and their …_THRESHOLD).
    do {
        let keys = [
            SocketServerConfiguration.EnvironmentKey.webSocketCompression,
            SocketServerConfiguration.EnvironmentKey.webSocketCompressionThreshold,
            SocketServerConfiguration.EnvironmentKey.httpCompression,
            SocketServerConfiguration.EnvironmentKey.httpCompressionThreshold,
        ]
        let compression = try SocketServerConfiguration(environment: environment.filter { keys.contains($0.key) })
        configuration.webSocketCompression = compression.webSocketCompression
        configuration.httpCompression = compression.httpCompression
    } catch {
        writeError("socket-gateway-interop-server: \(error)")
        return 2
    }
    let authenticator: JWTAuthenticator
    do {
        authenticator = try JWTAuthenticator(secret: secret, logger: logger)
    } catch {
        writeError("socket-gateway-interop-server: \(error)")
        return 2
    }
    let server = SocketServer(configuration: configuration, authenticator: authenticator, logger: logger)
    installHandlers(on: server.namespace("/"), gateway: server.gateway, logger: logger)
    installHandlers(on: server.namespace("/custom"), gateway: server.gateway, logger: logger)
    installTypedHandlers(on: server.namespace("/"), gateway: server.gateway, logger: logger)
    installMiddlewareHandlers(on: server, logger: logger)

    switch environment["SOCKET_GATEWAY_INTEROP_MOUNTED"] ?? "" {
    case "":
        break
    case "hummingbird":
        return await runMounted(server, options: options, logger: logger)
    case let other:
        writeError("socket-gateway-interop-server: SOCKET_GATEWAY_INTEROP_MOUNTED must be hummingbird, got \(other)")
        return 2
    }

    let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
    do {
        try await server.start()
    } catch {
        writeError("socket-gateway-interop-server: cannot listen on \(options.host):\(options.port): \(error)")
        return 1
    }
    guard let port = server.localPort else {
        writeError("socket-gateway-interop-server: the server started but reports no local port")
        try? await server.shutdown()
        return 1
    }
    // The one line on stdout; FileHandle writes are unbuffered, so the test fixture sees it at once.
    FileHandle.standardOutput.write(Data("LISTENING \(port)\n".utf8))

    for await signal in signals {
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        break
    }
    do {
        try await server.shutdown()
    } catch {
        writeError("socket-gateway-interop-server: shutdown failed: \(error)")
        return 1
    }
    return 0
}

/// Serves `server` mounted on a Hummingbird application (its own route `GET /app` beside Socket.IO) until
/// SIGTERM/SIGINT; the application runs the server among its services.
func runMounted(_ server: SocketServer, options: InteropServerOptions, logger: Logger) async -> Int32 {
    let router = Router(context: SocketIORequestContext.self)
    router.get("/app") { _, _ in "the application's own route" }
    router.addSocketIO(server)
    let app = Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: router,
            configuration: .init(ws: .socketIO(server))
        ),
        configuration: .init(address: .hostname(options.host, port: options.port)),
        services: [server],
        onServerRunning: { channel in
            FileHandle.standardOutput.write(Data("LISTENING \(channel.localAddress?.port ?? 0)\n".utf8))
        },
        logger: logger
    )
    do {
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    } catch {
        writeError("socket-gateway-interop-server: the mounted application stopped: \(error)")
        return 1
    }
    return 0
}

exit(await runInteropServer())
