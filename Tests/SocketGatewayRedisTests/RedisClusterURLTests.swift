import SocketGatewayRedis
import Testing

@Suite struct RedisClusterURLTests {
    static let a = RedisClusterAddress(host: "10.0.0.1", port: 7000)
    static let b = RedisClusterAddress(host: "10.0.0.2", port: 7001)
    static let c = RedisClusterAddress(host: "::1", port: 7002)

    /// The forms Redis clients use for a cluster's seed nodes: go-redis's and pomerium's `redis+cluster://` with a
    /// comma-separated list, the `redis-cluster://` spelling, redis-url-py's `?cluster=true`, and go-redis's
    /// `ParseClusterURL` extra seeds as `addr=` parameters.
    @Test(arguments: [
        ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001", [a, b], "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"),
        ("REDIS+CLUSTER://10.0.0.1:7000/", [a], "redis+cluster://10.0.0.1:7000"),
        ("redis+cluster://10.0.0.1:7000/0", [a], "redis+cluster://10.0.0.1:7000"),
        ("redis-cluster://10.0.0.1:7000,[::1]:7002", [a, c], "redis+cluster://10.0.0.1:7000,[::1]:7002"),
        ("redis+cluster://10.0.0.1", [.init(host: "10.0.0.1", port: 6379)], "redis+cluster://10.0.0.1:6379"),
        ("redis://10.0.0.1:7000?cluster=true", [a], "redis+cluster://10.0.0.1:7000"),
        (
            "redis://10.0.0.1:7000/0?cluster=yes&addr=10.0.0.2:7001", [a, b],
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"
        ),
        ("redis+cluster://10.0.0.1:7000?addr=10.0.0.2:7001", [a, b], "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"),
    ])
    func parsesSeeds(_ text: String, _ seeds: [RedisClusterAddress], _ redacted: String) throws {
        let url = try RedisURL(parsing: text)
        #expect(url.endpoint == .cluster(seeds: seeds))
        #expect(url.database == 0)
        #expect(url.redacted == redacted)
    }

    @Test func credentialsApplyToEveryNodeAndAreMasked() throws {
        let url = try RedisURL(parsing: "redis+cluster://alice:s3cr%40t@10.0.0.1:7000,10.0.0.2:7001")
        #expect(url.username == "alice")
        #expect(url.password == "s3cr@t")
        #expect(url.redacted == "redis+cluster://alice:***@10.0.0.1:7000,10.0.0.2:7001")
        #expect(!url.description.contains("s3cr"))
        let query = try RedisURL(parsing: "redis://:pw@10.0.0.1:7000?cluster=true")
        #expect(query.password == "pw")
        #expect(query.redacted == "redis+cluster://:***@10.0.0.1:7000")
    }

    /// `?cluster=false` keeps a standalone server.
    @Test func clusterFalseIsStandalone() throws {
        #expect(try RedisURL(parsing: "redis://h:1?cluster=false").endpoint == .tcp(host: "h", port: 1))
    }

    @Test(arguments: [
        ("redis+cluster://", "empty seed node"),
        ("redis+cluster://a:1,,b:2", "empty seed node"),
        ("redis+cluster://a:1,b:x", "port 'x'"),
        ("redis+cluster://a:1/2", "only database 0"),
        ("redis+cluster://a:1?db=3", "only database 0"),
        ("redis://a:1/2?cluster=true", "only database 0"),
        ("redis://a:1?cluster=maybe", "cluster='maybe'"),
        ("redis://a:1?addr=b:2", "addr= needs cluster=true"),
        ("redis://a:1?cluster=true&addr=b:99999", "port '99999'"),
        ("unix:///tmp/r.sock?cluster=true", "need TCP seed nodes"),
    ])
    func rejects(_ text: String, _ fragment: String) {
        do {
            let url = try RedisURL(parsing: text)
            Issue.record("\(text) parsed as \(url)")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }
}
