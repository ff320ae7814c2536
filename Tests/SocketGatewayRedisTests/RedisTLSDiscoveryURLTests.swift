import NIOCore
import Testing

@testable import SocketGatewayRedis

/// TLS with Sentinel and Cluster URLs: the schemes, `sentinel_ssl`, and that the URLs of the nodes found by
/// discovery (the primary, each sentinel) carry the parent URL's TLS settings, or drop them where asked.
@Suite struct RedisTLSDiscoveryURLTests {
    @Test(arguments: ["rediss+sentinel", "valkeys+sentinel", "rediss-sentinel"])
    func aTLSSentinelURLCarriesTLSToThePrimaryAndTheSentinels(_ scheme: String) throws {
        let url = try RedisURL(
            parsing: "\(scheme)://:pw@10.0.0.1:26380,10.0.0.2/mymaster/2?ssl_server_name=redis.test",
            environment: [:]
        )
        guard case .sentinel(let endpoint) = url.endpoint else {
            Issue.record("not a sentinel endpoint: \(url)")
            return
        }
        #expect(url.tls?.serverName == "redis.test")
        #expect(endpoint.sentinelsUseTLS)
        #expect(url.redacted == "rediss+sentinel://:***@10.0.0.1:26380,10.0.0.2:26379/mymaster/2")
        let primary = url.primary(host: "10.0.0.9", port: 6380)
        #expect(primary.tls == url.tls)
        #expect(primary.redacted == "rediss://:***@10.0.0.9:6380/2")
        let sentinel = url.sentinel(endpoint.sentinels[1], of: endpoint)
        #expect(sentinel.tls == url.tls)
        #expect(sentinel.endpoint == .tcp(host: "10.0.0.2", port: 26379))
    }

    @Test func sentinelSSLFalseReachesTheSentinelsInClearAndTheDataNodesOverTLS() throws {
        let url = try RedisURL(parsing: "rediss+sentinel://10.0.0.1/mymaster?sentinel_ssl=false", environment: [:])
        guard case .sentinel(let endpoint) = url.endpoint else {
            Issue.record("not a sentinel endpoint: \(url)")
            return
        }
        #expect(!endpoint.sentinelsUseTLS)
        #expect(url.sentinel(endpoint.sentinels[0], of: endpoint).tls == nil)
        #expect(url.primary(host: "10.0.0.9", port: 6379).tls != nil)
        #expect(url.redacted == "rediss+sentinel://10.0.0.1:26379/mymaster/0?sentinel_ssl=false")
        #expect(try RedisURL(parsing: url.redacted, environment: [:]) == url)
    }

    @Test func sentinelSSLNeedsATLSSentinelURL() {
        #expect(throws: RedisError.self) {
            try RedisURL(parsing: "redis+sentinel://10.0.0.1/mymaster?sentinel_ssl=true", environment: [:])
        }
        #expect(throws: RedisError.self) {
            try RedisURL(parsing: "rediss://10.0.0.1?sentinel_ssl=true", environment: [:])
        }
        #expect(throws: RedisError.self) {
            try RedisURL(parsing: "rediss+sentinel://10.0.0.1/mymaster?sentinel_ssl=maybe", environment: [:])
        }
    }

    @Test(arguments: [
        "rediss+cluster://10.0.0.1:7000,10.0.0.2:7001",
        "rediss-cluster://10.0.0.1:7000,10.0.0.2:7001",
        "rediss://10.0.0.1:7000?cluster=true&addr=10.0.0.2:7001",
    ])
    func aTLSClusterURLKeepsItsTLSSettings(_ text: String) throws {
        let url = try RedisURL(parsing: text + (text.contains("?") ? "&" : "?") + "ssl_cert_reqs=none")
        let seeds = [
            RedisClusterAddress(host: "10.0.0.1", port: 7000), RedisClusterAddress(host: "10.0.0.2", port: 7001),
        ]
        #expect(url.endpoint == .cluster(seeds: seeds))
        #expect(url.tls?.verification == RedisTLSConfiguration.Verification.none)
        #expect(url.redacted == "rediss+cluster://10.0.0.1:7000,10.0.0.2:7001")
    }

    @Test func tlsSettingsFromTheEnvironmentApplyToSentinelAndClusterURLs() throws {
        let settings = RedisTLSConfiguration(serverName: "redis.test")
        let sentinel = try RedisURL(parsing: "rediss+sentinel://10.0.0.1/mymaster", environment: [:])
            .applyingTLSSettings(settings)
        #expect(sentinel.tls?.serverName == "redis.test")
        let cluster = try RedisURL(parsing: "rediss+cluster://10.0.0.1:7000").applyingTLSSettings(settings)
        #expect(cluster.tls?.serverName == "redis.test")
        // Settings with a plain URL are still a mistake, for Sentinel and Cluster as for one node.
        #expect(throws: RedisError.self) {
            try RedisURL(parsing: "redis+cluster://10.0.0.1:7000").applyingTLSSettings(settings)
        }
        #expect(throws: RedisError.self) {
            try RedisURL(parsing: "redis+sentinel://10.0.0.1/mymaster", environment: [:])
                .applyingTLSSettings(settings)
        }
    }

    /// A node that listens on a plain and a TLS port (`CLUSTER SHARDS` names both) is reached on the TLS one by a TLS
    /// client; a TLS-only node (`--port 0`) names only `tls-port`.
    @Test func aTLSClientTakesTheTLSPortOfClusterShards() throws {
        func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }
        func reply(_ ports: [(String, Int64)]) -> RESPValue {
            let node =
                [bulk("id"), bulk("a")] + ports.flatMap { [bulk($0.0), RESPValue.integer($0.1)] } + [
                    bulk("ip"), bulk("10.0.0.1"), bulk("endpoint"), bulk("10.0.0.1"), bulk("role"), bulk("master"),
                    bulk("health"), bulk("online"),
                ]
            return .array([
                .array([bulk("slots"), .array([.integer(0), .integer(16383)]), bulk("nodes"), .array([.array(node)])])
            ])
        }
        let seed = RedisClusterAddress(host: "10.0.0.1", port: 7000)
        let both = reply([("port", 6379), ("tls-port", 6380)])
        #expect(try RedisClusterTopology.parse(shards: both, from: seed).primary(forSlot: 0)?.port == 6379)
        #expect(try RedisClusterTopology.parse(shards: both, from: seed, tls: true).primary(forSlot: 0)?.port == 6380)
        let tlsOnly = reply([("tls-port", 6380)])
        #expect(
            try RedisClusterTopology.parse(shards: tlsOnly, from: seed, tls: true).primary(forSlot: 0)?.port == 6380
        )
        #expect(try RedisClusterTopology.parse(shards: tlsOnly, from: seed).primary(forSlot: 0)?.port == 6380)
    }
}
