import Logging
import NIOCore
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayRedis

/// Topology discovery over TLS on a cluster whose nodes take plain clients on one port and TLS clients on another
/// (`tls-cluster yes`, as a managed cluster that also serves an internal network in clear).
@Suite(.serialized) struct RedisClusterTLSTopologyTests {
    let logger = Logger(label: "test.redis-cluster-tls-topology")

    /// Both topology commands lead a TLS client to the TLS ports: `CLUSTER SHARDS` lists `port` and `tls-port` and
    /// the client takes `tls-port`; `CLUSTER SLOTS` (Redis < 7, or a node that does not know `CLUSTER SHARDS`) lists
    /// one port, the one of the asking connection's kind (Redis 7.0 answers a TLS connection with the TLS port, a
    /// plain one with the plain port; 6.x announces the TLS port under `tls-cluster yes`), so asking it over TLS
    /// is what makes it right. Over each, a channel is subscribed and published to on its owner, through TLS.
    @Test(arguments: [false, true])
    func bothTopologyCommandsLeadToTheTLSPorts(_ clusterSlots: Bool) async throws {
        let certificates = try await TestCertificates.make()
        try await RedisClusterProcess.with(tls: .using(certificates), plainPorts: true) { cluster in
            let url = try RedisURL(parsing: cluster.urlString)
                .applyingTLSSettings(RedisTLSConfiguration(caFile: certificates.caFile))
            let tlsPorts = Set(await cluster.runningPrimaries.map(\.port))
            // The cluster does report two ports per node.
            let shards = try await cluster.runningPrimaries[0].cli(["CLUSTER", "SHARDS"])
            #expect(shards.contains("tls-port"), "\(shards.prefix(400))")
            let recorder = MessageRecorder()
            let client = RedisClusterPubSub(url: url, logger: self.logger) { recorder.record($0) }
            if clusterSlots { client.preferClusterSlots() }
            client.start()
            let channel = "tls-topology-\(clusterSlots)"
            try await client.subscribe([channel])
            let (topology, usedSlots) = try await client.eventLoop.submit {
                (client.router.topology, client.useClusterSlots)
            }.get()
            #expect(usedSlots == clusterSlots)
            let primaries = Set(try #require(topology).primaries.map(\.port))
            #expect(primaries == tlsPorts, "discovered \(primaries.sorted()), TLS ports \(tlsPorts.sorted())")
            let receivers = try await client.publish(channel: channel, payload: ByteBuffer(string: "over TLS"))
            #expect(receivers == 1)
            let arrived = await recorder.wait(limit: .seconds(10)) { $0 == ["over TLS"] }
            #expect(arrived, "\(recorder.messages)")
            await client.shutdown()
        }
    }
}
