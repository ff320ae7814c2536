import Foundation
import Logging
import NIOCore
import NIOPosix
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayServer
import SocketGatewayWorker
import Testing

/// A server and a worker that reach Redis over TLS only (`rediss://`, a private CA, client certificates
/// required): a Socket.IO client receives the worker's emit; TLS settings from code and from the environment;
/// unusable TLS files stop the server from starting and make the worker refuse emits with the reason.
@Suite(.serialized) struct ClusterTLSTests {
    let cluster = ClusterTests()

    @Test func aWorkersEmitReachesAClientThroughRedisOverTLS() async throws {
        let certificates = try await TestCertificates.make()
        let redis = try await RedisServerProcess.start(
            tls: .using(certificates, requireClientCertificates: true)
        )
        let channel = ClusterTests.channelName()
        let tls = RedisTLSConfiguration(
            caFile: certificates.caFile,
            certificateFile: certificates.clientCertificate,
            keyFile: certificates.clientKey
        )
        // The server from code configuration; the worker from the environment, as a deployment would set it.
        let node = try await ClusterTests().startNode(
            redis: SocketServerRedisConfiguration(url: redis.urlString, channel: channel, tls: tls),
            eventLoopThreads: 1
        )
        let server = node.server
        let worker = WorkerSocketGateway(
            environment: [
                "REDIS_URL": redis.urlString, "SOCKET_REDIS_CHANNEL": channel,
                "SOCKET_REDIS_TLS_CA": certificates.caFile, "SOCKET_REDIS_TLS_CERT": certificates.clientCertificate,
                "SOCKET_REDIS_TLS_KEY": certificates.clientKey,
            ],
            logger: ClusterTests.logger()
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await self.cluster.waitSubscribed([node])
            let (client, sid) = try await self.cluster.connect(node, group: group)
            await server.gateway.joinRoom(sid, room: "sheet:1")
            let result = await worker.emitToRoom("sheet:1", event: "progress", data: ["percent": 50])
            #expect(result.outcome == .published)
            #expect(try await client.nextText() == #"42["progress",{"percent":50}]"#)
            await client.close()
        } catch {
            await worker.shutdown(timeout: .seconds(1))
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        await worker.shutdown(timeout: .seconds(1))
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func tlsSettingsThatCannotBeUsedAreRefusedAtStart() async throws {
        let certificates = try await TestCertificates.make()
        let missing = certificates.path("missing-ca.pem")
        let configuration = try SocketServerConfiguration(environment: [
            "REDIS_URL": "rediss://127.0.0.1:1/0", "SOCKET_REDIS_TLS_CA": missing,
            "SOCKET_REDIS_TLS_SERVER_NAME": "redis.test",
        ])
        #expect(configuration.redis?.tls == RedisTLSConfiguration(caFile: missing, serverName: "redis.test"))
        let server = SocketServer(configuration: configuration.anonymous, logger: ClusterTests.logger())
        let error = await #expect(throws: SocketServerConfigurationError.self) { try await server.start() }
        #expect(error?.variable == "redis.tls")
        #expect(error?.message.contains("missing-ca.pem' does not exist") == true, "\(String(describing: error))")
        // TLS settings with a plain URL: refused rather than connecting in clear.
        let plain = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 1,
                redis: .init(url: "redis://127.0.0.1:1/0", tls: RedisTLSConfiguration(caFile: certificates.caFile))
            ).anonymous,
            logger: ClusterTests.logger()
        )
        await #expect(throws: SocketServerConfigurationError.self) { try await plain.start() }

        let worker = WorkerSocketGateway(
            environment: ["REDIS_URL": "rediss://127.0.0.1:1/0", "SOCKET_REDIS_TLS_CA": missing],
            logger: ClusterTests.logger()
        )
        let result = await worker.broadcast(event: "x", data: 1)
        #expect(result.outcome == .failed)
        #expect(result.reason?.contains("missing-ca.pem' does not exist") == true, "\(result)")
        await worker.shutdown(timeout: .seconds(1))
    }
}
