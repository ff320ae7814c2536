// The server under test for tools/bench, until `socket-gateway serve` is available: a SocketServer on the
// public API with JWT auth (`SOCKET_TOKEN_SECRET`) and the Redis channel (`REDIS_URL`), nothing else.
//
// Usage: socket-gateway-bench-server [--port 0]
// Prints `LISTENING <port>` on stdout once listening. Stops on SIGTERM/SIGINT.

import Foundation
import Logging
import ServiceLifecycle
import SocketGatewayServer
import UnixSignals

var port = 0
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard flag == "--port", let value = arguments.popFirst(), let number = Int(value) else {
        FileHandle.standardError.write(Data("usage: socket-gateway-bench-server [--port N]\n".utf8))
        exit(2)
    }
    port = number
}
var logger = Logger(label: "socket-gateway-bench-server")
logger.logLevel = .warning
var configuration: SocketServerConfiguration
do {
    configuration = try SocketServerConfiguration(environment: nil)
} catch {
    FileHandle.standardError.write(Data("socket-gateway-bench-server: \(error)\n".utf8))
    exit(2)
}
configuration.host = "127.0.0.1"
configuration.port = port
let server = SocketServer(configuration: configuration, logger: logger)
try await server.start()
FileHandle.standardOutput.write(Data("LISTENING \(server.localPort ?? port)\n".utf8))
let group = ServiceGroup(
    configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
try await group.run()
