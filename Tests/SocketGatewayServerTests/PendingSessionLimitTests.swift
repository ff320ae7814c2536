import Logging
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayServer
import Testing

/// The cap on Engine.IO sessions not yet connected to a Socket.IO namespace, through SocketServerConfiguration.
@Suite struct PendingSessionLimitTests {
    @Test func onlyAnAcceptedConnectFreesAPendingPlace() async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous
        configuration.maxPendingSessions = 1
        let server = SocketServer(configuration: configuration, logger: logger)
        _ = server.namespace("/")
        let handshakePath = "/socket.io/?EIO=4&transport=polling"
        try await server.whileStarted { port, group in
            let open = try await httpRequest(port: port, method: "GET", path: handshakePath, group: group)
            let sid = try #require(try JSONValue.parse(String(open.body.dropFirst()))["sid"]?.stringValue)
            let url = "\(handshakePath)&sid=\(sid)"
            let refused = try await httpRequest(port: port, method: "GET", path: handshakePath, group: group)
            #expect(refused.status == 503)
            #expect(refused.body == #"{"code":4,"message":"Too many sessions waiting to connect"}"#)
            // A CONNECT to a namespace that does not exist is answered, but the session is still waiting.
            #expect(
                try await httpRequest(port: port, method: "POST", path: url, body: "40/nope,", group: group).body
                    == "ok"
            )
            #expect(
                try await httpRequest(port: port, method: "GET", path: url, group: group).body.hasPrefix("44/nope,")
            )
            #expect(try await httpRequest(port: port, method: "GET", path: handshakePath, group: group).status == 503)
            // Accepted in "/": the place is free.
            #expect(try await httpRequest(port: port, method: "POST", path: url, body: "40", group: group).body == "ok")
            #expect(try await httpRequest(port: port, method: "GET", path: url, group: group).body.hasPrefix("40{"))
            #expect(try await httpRequest(port: port, method: "GET", path: handshakePath, group: group).status == 200)
        }
    }
}
