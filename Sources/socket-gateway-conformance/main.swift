// The server the official Engine.IO and Socket.IO protocol test suites expect on http://localhost:3000:
// `/engine.io/` echoes every message, `/socket.io/` serves namespaces `/` and `/custom`.
//
// Usage: socket-gateway-conformance [--port N] [--host ADDRESS] [--threads N] [--mounted]
//        (defaults: 127.0.0.1, 3000, 1; --mounted serves both endpoints through a Hummingbird application,
//        SocketGatewayHummingbird, instead of the server's own listener)
//
// One event-loop thread by default, as the single-threaded reference server. With `--threads 2` the suites pass
// too: a GET that follows `2probe`/`5` on another TCP connection (possibly another event loop) is answered only
// after `3probe` has gone out, so the order across the two connections no longer decides the outcome.

import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import ServiceLifecycle
import SocketGatewayEngineIO
import SocketGatewayHummingbird
import SocketGatewayServer
import UnixSignals

func parseArguments(_ arguments: ArraySlice<String>) -> (host: String, port: Int, threads: Int, mounted: Bool)? {
    var host = "127.0.0.1"
    var port = 3000
    var threads = 1
    var mounted = false
    var remaining = arguments
    while let argument = remaining.popFirst() {
        switch argument {
        case "--port":
            guard let value = remaining.popFirst(), let parsed = Int(value), (0...65535).contains(parsed) else {
                return nil
            }
            port = parsed
        case "--host":
            guard let value = remaining.popFirst() else { return nil }
            host = value
        case "--threads":
            guard let value = remaining.popFirst(), let parsed = Int(value), parsed > 0 else { return nil }
            threads = parsed
        case "--mounted":
            mounted = true
        default:
            return nil
        }
    }
    return (host, port, threads, mounted)
}

guard let (host, port, threads, mounted) = parseArguments(CommandLine.arguments.dropFirst()) else {
    print("usage: socket-gateway-conformance [--port N] [--host ADDRESS] [--threads N] [--mounted]")
    exit(2)
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}
let logger = Logger(label: "socket-gateway-conformance")

var configuration = SocketServerConfiguration(
    host: host,
    port: port,
    path: "/socket.io/",
    pingInterval: .milliseconds(300),
    pingTimeout: .milliseconds(200),
    maxPayload: 1_000_000,
    connectTimeout: .milliseconds(1000),
    cors: .any,
    eventLoopThreads: threads
)
// The suites connect with arbitrary auth payloads (`{"token":"123"}`) and expect to be accepted.
configuration.allowAnonymous = true
let server = SocketServer(configuration: configuration, logger: logger)
server.mountEngineIO(
    path: "/engine.io/",
    configuration: EngineIOConfiguration(
        pingInterval: .milliseconds(300),
        pingTimeout: .milliseconds(200),
        maxPayload: 1_000_000,
        cors: .any
    ),
    application: EngineIOEchoApplication()
)

for name in ["/", "/custom"] {
    let namespace = server.namespace(name)
    namespace.onConnect { socket in
        socket.emit("auth", socket.handshake.auth ?? .object([]))
    }
    namespace.on("message") { socket, arguments, _ in
        socket.emit("message-back", arguments: arguments)
    }
    namespace.on("message-with-ack") { _, arguments, ack in
        ack?.send(arguments)
    }
}

var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
if mounted {
    let router = Router(context: SocketIORequestContext.self)
    router.addSocketIO(server)
    if let echo = server.mountedEngineIOEndpoint(path: "/engine.io/") { router.addEngineIO(echo) }
    let app = Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: router,
            configuration: .init(ws: .socketIO(server))
        ),
        configuration: .init(address: .hostname(host, port: port)),
        logger: logger
    )
    services.append(.init(service: app))
}

let group = ServiceGroup(
    configuration: ServiceGroupConfiguration(
        services: services,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
)
do {
    try await group.run()
} catch {
    logger.critical("socket-gateway-conformance stopped: \(error)", metadata: ["host": "\(host)", "port": "\(port)"])
    exit(1)
}
