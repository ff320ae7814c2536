import Foundation
import Logging
import NIOCore
import NIOPosix
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayServer
import SocketGatewayWorker
import Testing

/// TLS on every Redis connection of a Redis Cluster (`rediss+cluster://`) and of a Sentinel deployment
/// (`rediss+sentinel://`), every port TLS only, a private CA whose server certificate holds 127.0.0.1 (the
/// discovered nodes are IP addresses): a worker's emit reaches a server's client; a server trusting another CA is
/// refused with the reason.
@Suite(.serialized) struct ClusterTLSDiscoveryTests {
    let base = ClusterTests()

    @Test func emitsCrossATLSClusterInRoomsAndClassicModeAndAnotherCAIsRefused() async throws {
        let certificates = try await TestCertificates.make()
        try await RedisClusterProcess.with(tls: .using(certificates)) { cluster in
            #expect(cluster.urlString.hasPrefix("rediss+cluster://"))
            let tls = RedisTLSConfiguration(caFile: certificates.caFile)
            // Rooms: the room channel travels as sharded pub/sub on the owning node's own URL (built from the
            // cluster URL); classic: one seed connection. Both only work if each carries the TLS settings.
            for mode in [RedisChannelMode.rooms, .python] {
                try await self.exchangeEmit(url: cluster.urlString, mode: mode, tls: tls)
            }
            try await self.expectRefusal(
                url: cluster.urlString,
                tls: RedisTLSConfiguration(caFile: certificates.otherCAFile)
            )
        }
    }

    @Test func emitsCrossATLSSentinelDeploymentAndAnotherCAIsRefused() async throws {
        let certificates = try await TestCertificates.make()
        let setup = try await RedisSentinelSetup.start(tls: .using(certificates))
        do {
            #expect(setup.urlString().hasPrefix("rediss+sentinel://"))
            // The sentinels and the primary they name are reached over TLS, both checked against 127.0.0.1.
            try await self.exchangeEmit(
                url: setup.urlString(),
                mode: .python,
                tls: RedisTLSConfiguration(caFile: certificates.caFile)
            )
            try await self.expectRefusal(
                url: setup.urlString(),
                tls: RedisTLSConfiguration(caFile: certificates.otherCAFile)
            )
        } catch {
            await setup.stop()
            throw error
        }
        await setup.stop()
    }

    /// A server and a worker on `url` with `tls`: a client of the server receives the worker's emit to its room.
    private func exchangeEmit(url: String, mode: RedisChannelMode, tls: RedisTLSConfiguration) async throws {
        let channel = ClusterTests.channelName()
        let node = try await ClusterTests().startNode(
            redis: SocketServerRedisConfiguration(url: url, channel: channel, mode: mode, tls: tls),
            eventLoopThreads: 1
        )
        let server = node.server
        let worker = WorkerSocketGateway(
            redisURL: url,
            channel: channel,
            mode: mode,
            tls: tls,
            logger: ClusterTests.logger()
        )
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await self.base.waitSubscribed([node])
            let (client, sid) = try await self.base.connect(node, group: group)
            await server.gateway.joinRoom(sid, room: "sheet:1")
            // In rooms mode the server subscribes to the room's channel after the join: retry (bounded) until the
            // worker's emit is received.
            var received: String?
            for attempt in 0..<20 where received == nil {
                let result = await worker.emitToRoom("sheet:1", event: "progress", data: .int(Int64(attempt)))
                #expect(result.outcome == .published, "\(mode): \(result)")
                if let frame = try? await client.next(attempts: 20), case .text(let text) = frame {
                    received = text
                }
            }
            #expect(received?.hasPrefix(#"42["progress","#) == true, "\(mode): \(received ?? "nothing received")")
            await client.close()
        } catch {
            await worker.shutdown(timeout: .seconds(1))
            try? await server.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        await worker.shutdown(timeout: .seconds(1))
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    /// A server trusting another CA reports, in its health, that the certificate is not signed by that CA; a
    /// worker's emit fails with the same words.
    private func expectRefusal(url: String, tls: RedisTLSConfiguration) async throws {
        let fragment = "certificate verify failed: the server's certificate is not signed"
        let server = SocketServer(
            configuration: SocketServerConfiguration(
                port: 0,
                eventLoopThreads: 1,
                redis: SocketServerRedisConfiguration(url: url, channel: ClusterTests.channelName(), tls: tls)
            ).anonymous,
            logger: ClusterTests.logger()
        )
        try await server.start()
        var health = server.clusterHealth
        for _ in 0..<100 where health.lastError?.contains(fragment) != true {
            try await Task.sleep(for: .milliseconds(100))
            health = server.clusterHealth
        }
        #expect(health.lastError?.contains(fragment) == true, "\(health)")
        #expect(health.redisConnected != true)
        let worker = WorkerSocketGateway(redisURL: url, tls: tls, logger: ClusterTests.logger())
        let result = await worker.broadcast(event: "x", data: 1)
        #expect(result.outcome != .published)
        #expect(result.reason?.contains(fragment) == true, "\(result)")
        await worker.shutdown(timeout: .seconds(1))
        try await server.shutdown()
    }
}
