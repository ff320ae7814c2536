// The benchmark's mounted server: the same SocketServer as `socket-gateway serve`, configured from the same
// environment (REDIS_URL, SOCKET_TOKEN_SECRET, SOCKET_REDIS_MODE, SOCKET_METRICS …), but mounted on a Hummingbird 2
// application (SocketGatewayHummingbird: `router.addSocketIO(server)` and `WebSocketServerConfiguration.socketIO`)
// as a user's application would run it, with Hummingbird's defaults for everything else. tools/bench's `mounted`
// scenario runs it beside `serve` under the same load.
//
// Usage: socket-gateway-mounted [--host 127.0.0.1] [--port 0] [--log-level warning]
// Prints `LISTENING <port>` on stdout once listening (as `serve` does); stops on SIGTERM/SIGINT.

import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import Prometheus
import SocketGatewayHummingbird
import SocketGatewayPrometheus
import SocketGatewayServer
import UnixSignals

/// Prints `message` on stderr and exits with 2 (a usage or configuration error).
func refuse(_ message: String) -> Never {
    FileHandle.standardError.write(Data("socket-gateway-mounted: \(message)\n".utf8))
    exit(2)
}

var host = "127.0.0.1"
var port = 0
var level = Logger.Level.warning
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { refuse("\(flag) needs a value") }
    switch flag {
    case "--host": host = value
    case "--port":
        guard let number = Int(value), (0...65535).contains(number) else {
            refuse("--port must be 0...65535, got '\(value)'")
        }
        port = number
    case "--log-level":
        guard let parsed = Logger.Level(rawValue: value) else { refuse("--log-level '\(value)' is not a log level") }
        level = parsed
    default: refuse("unknown option \(flag)")
    }
}
LoggingSystem.bootstrap { [level] label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = level
    return handler
}
let logger = Logger(label: "socket-gateway-mounted")

let configuration: SocketServerConfiguration
let authenticator: JWTAuthenticator
let router = Router(context: SocketIORequestContext.self)
do {
    configuration = try SocketServerConfiguration(environment: nil)
    // Metrics as `serve` records them (on unless SOCKET_METRICS=off), served by the application's router.
    let metrics = try PrometheusMetricsConfiguration(environment: nil, server: configuration)
    if case .socketListener(let path) = metrics.exposure {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        router.get(RouterPath(path)) { _, _ in registry.emitToString() }
    }
} catch {
    refuse("\(error.variable) \(error.message)")
}
guard let secret = configuration.tokenSecret else { refuse("set SOCKET_TOKEN_SECRET (the HS256 secret)") }
do {
    authenticator = try JWTAuthenticator(configuration: .init(secret: secret), logger: logger)
} catch {
    refuse("SOCKET_TOKEN_SECRET \(error.message)")
}

let server = SocketServer(configuration: configuration, authenticator: authenticator, logger: logger)
router.addSocketIO(server)
let app = Application(
    router: router,
    server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: .socketIO(server))),
    configuration: .init(address: .hostname(host, port: port)),
    services: [server],
    onServerRunning: { channel in
        FileHandle.standardOutput.write(Data("LISTENING \(channel.localAddress?.port ?? 0)\n".utf8))
    },
    logger: logger
)
do {
    try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
} catch {
    FileHandle.standardError.write(Data("socket-gateway-mounted: the application stopped: \(error)\n".utf8))
    exit(1)
}
