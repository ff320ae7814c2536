import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayServer
import Testing

/// A middleware that never returns (`server.use` or `namespace.use`) against a live server: the connect timeout
/// closes that client's session, the hung middleware is cancelled, and another client connects and is answered
/// meanwhile and after.
@Suite struct MiddlewareTimeoutTests {
    enum Level: String, CaseIterable, CustomTestStringConvertible {
        case server, namespace
        var testDescription: String { self.rawValue }
    }

    /// What the hung middleware saw: started, then cancelled.
    final class MiddlewareLog: Sendable {
        private let state = NIOLockedValueBox<(started: Int, cancelled: Int)>((0, 0))
        func started() { self.state.withLockedValue { $0.started += 1 } }
        func cancelled() { self.state.withLockedValue { $0.cancelled += 1 } }
        var counts: (started: Int, cancelled: Int) { self.state.withLockedValue { $0 } }
    }

    @Test(arguments: Level.allCases)
    func aMiddlewareThatNeverReturnsEndsAtTheConnectTimeoutAndOthersAreServed(_ level: Level) async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, connectTimeout: .seconds(2), eventLoopThreads: 1)
                .anonymous,
            logger: logger
        )
        let log = MiddlewareLog()
        let hang: SocketMiddleware.Body = { request in
            guard request.handshake.auth?["hang"] == true else { return }
            log.started()
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                log.cancelled()
                throw error
            }
        }
        switch level {
        case .server: server.use(hang)
        case .namespace: server.namespace("/").use(hang)
        }
        server.namespace("/").on("echo") { _, arguments, ack in ack?.send(arguments) }
        try await server.whileStarted { port, group in
            let (hung, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await hung.send(#"40{"hang":true}"#)
            for _ in 0..<500 where log.counts.started == 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(log.counts.started == 1)

            // While the middleware hangs, another client connects and is answered.
            let (other, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await other.send("40")
            #expect(try await other.nextText().hasPrefix("40{\"sid\":\""))
            try await other.send(#"421["echo","during"]"#)
            #expect(try await other.nextText() == #"431["during"]"#)

            // The connect timeout closes the hung client's transport (no CONNECT answer ever went out) and
            // cancels its middleware.
            try await hung.waitForClose()
            #expect(hung.hasNoPendingFrames())
            for _ in 0..<500 where log.counts.cancelled == 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(log.counts.cancelled == 1)

            // The other client is untouched.
            try await other.send(#"422["echo","after"]"#)
            #expect(try await other.nextText() == #"432["after"]"#)
            await other.close()
        }
    }
}
