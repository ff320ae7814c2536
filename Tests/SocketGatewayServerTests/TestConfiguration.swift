import NIOCore
import NIOPosix
import SocketGatewayServer
import Testing

extension SocketServerConfiguration {
    /// This configuration with `allowAnonymous` set: for tests whose clients do not authenticate.
    var anonymous: Self {
        var configuration = self
        configuration.allowAnonymous = true
        return configuration
    }
}

extension SocketServer {
    /// Starts this server, runs `body` with its port and a one-thread event loop group for clients, then shuts
    /// both down, also when `body` throws.
    func whileStarted(_ body: (_ port: Int, _ clients: any EventLoopGroup) async throws -> Void) async throws {
        try await self.start()
        let port = try #require(self.localPort)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await body(port, clients)
        } catch {
            try await self.shutdown()
            try await clients.shutdownGracefully()
            throw error
        }
        try await self.shutdown()
        try await clients.shutdownGracefully()
    }
}
