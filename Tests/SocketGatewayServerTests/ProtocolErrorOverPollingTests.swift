import Logging
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayServer
import Testing

/// A Socket.IO protocol error over long-polling: the client learns the close from the close packet.
@Suite struct ProtocolErrorOverPollingTests {
    @Test func reservedEventNameClosesWithTheClosePacket() async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, eventLoopThreads: 1).anonymous,
            logger: logger
        )
        _ = server.namespace("/")
        try await server.whileStarted { port, group in
            let open = try await httpRequest(
                port: port,
                method: "GET",
                path: "/socket.io/?EIO=4&transport=polling",
                group: group
            )
            let sid = try #require(try JSONValue.parse(String(open.body.dropFirst()))["sid"]?.stringValue)
            let url = "/socket.io/?EIO=4&transport=polling&sid=\(sid)"
            #expect(try await httpRequest(port: port, method: "POST", path: url, body: "40", group: group).body == "ok")
            #expect(try await httpRequest(port: port, method: "GET", path: url, group: group).body.hasPrefix("40{"))
            // "connect" is a reserved event name: a protocol error that closes the session.
            #expect(
                try await httpRequest(port: port, method: "POST", path: url, body: #"42["connect"]"#, group: group).body
                    == "ok"
            )
            let next = try await httpRequest(port: port, method: "GET", path: url, group: group)
            #expect(next.status == 200)
            #expect(next.body == "1")
        }
    }
}
