import NIOCore
import SocketGatewayRedis
import Testing

@Suite struct RedisClusterSlotTests {
    /// The check value of CRC16/XMODEM, and the examples of the Redis Cluster specification.
    @Test func crc16AndSpecificationExamples() {
        #expect(RedisClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(RedisClusterSlot.crc16([]) == 0)
        #expect(RedisClusterSlot.of("foo") == 12182)
        #expect(RedisClusterSlot.of("somekey") == 11058)
        #expect(RedisClusterSlot.of("") == 0)
    }

    /// Hash tags: only the first `{…}` with something inside counts.
    @Test func hashTags() {
        let foo = RedisClusterSlot.of("foo")
        #expect(RedisClusterSlot.of("{foo}") == foo)
        #expect(RedisClusterSlot.of("{foo}bar") == foo)
        #expect(RedisClusterSlot.of("x{foo}y{bar}") == foo)
        #expect(RedisClusterSlot.of("foo{bar}{zap}") == RedisClusterSlot.of("bar"))
        // `{}` is empty: the whole key counts.
        #expect(RedisClusterSlot.of("foo{}{bar}") == Int(RedisClusterSlot.crc16(Array("foo{}{bar}".utf8)) & 0x3FFF))
        // `{{bar}}`: the tag is `{bar`.
        #expect(RedisClusterSlot.of("foo{{bar}}zap") == RedisClusterSlot.of("{bar"))
        // No closing brace: the whole key.
        #expect(RedisClusterSlot.of("foo{bar") == Int(RedisClusterSlot.crc16(Array("foo{bar".utf8)) & 0x3FFF))
        #expect(RedisClusterSlot.of("}{a}") == RedisClusterSlot.of("a"))
        // UTF-8 bytes are hashed.
        #expect(RedisClusterSlot.of("{é}x") == RedisClusterSlot.of("é"))
    }

    @Test func everySlotIsInRange() {
        for index in 0..<5000 {
            #expect((0..<16384).contains(RedisClusterSlot.of("channel#\(index)")))
        }
    }
}

@Suite struct RedisClusterTopologyTests {
    static let a = RedisClusterAddress(host: "10.0.0.1", port: 7000)
    static let b = RedisClusterAddress(host: "10.0.0.2", port: 7001)
    static let c = RedisClusterAddress(host: "10.0.0.3", port: 7002)
    static let replicaA = RedisClusterAddress(host: "10.0.0.4", port: 7003)

    static func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    static func shardsNode(
        id: String,
        endpoint: String,
        ip: String,
        port: Int64,
        role: String,
        health: String
    )
        -> RESPValue
    {
        .array([
            bulk("id"), bulk(id), bulk("port"), .integer(port), bulk("ip"), bulk(ip), bulk("endpoint"),
            bulk(endpoint), bulk("role"), bulk(role), bulk("replication-offset"), .integer(72156), bulk("health"),
            bulk(health),
        ])
    }

    /// Three shards the way Redis 7.0 answers `CLUSTER SHARDS` over RESP2; the second shard has two slot ranges, the
    /// third announces an unknown endpoint (`?`), and an empty shard (a primary without slots) is skipped.
    static let shardsReply: RESPValue = .array([
        .array([
            bulk("slots"), .array([.integer(0), .integer(5460)]), bulk("nodes"),
            .array([
                shardsNode(id: "a", endpoint: "10.0.0.1", ip: "10.0.0.1", port: 7000, role: "master", health: "online"),
                shardsNode(
                    id: "r",
                    endpoint: "10.0.0.4",
                    ip: "10.0.0.4",
                    port: 7003,
                    role: "replica",
                    health: "online"
                ),
            ]),
        ]),
        .array([
            bulk("slots"), .array([.integer(10923), .integer(16383), .integer(5461), .integer(10921)]), bulk("nodes"),
            .array([
                shardsNode(id: "b", endpoint: "10.0.0.2", ip: "10.0.0.2", port: 7001, role: "master", health: "online")
            ]),
        ]),
        .array([
            bulk("slots"), .array([.integer(10922), .integer(10922)]), bulk("nodes"),
            .array([shardsNode(id: "c", endpoint: "?", ip: "", port: 7002, role: "master", health: "online")]),
        ]),
        .array([
            bulk("slots"), .array([]), bulk("nodes"),
            .array([
                shardsNode(id: "e", endpoint: "10.0.0.9", ip: "10.0.0.9", port: 1, role: "master", health: "online")
            ]),
        ]),
    ])

    @Test func parsesClusterShards() throws {
        let topology = try RedisClusterTopology.parse(shards: Self.shardsReply, from: Self.c)
        #expect(topology.shards.count == 3)
        #expect(topology.coversAllSlots)
        #expect(topology.primary(forSlot: 0) == Self.a)
        #expect(topology.primary(forSlot: 5460) == Self.a)
        #expect(topology.primary(forSlot: 5461) == Self.b)
        #expect(topology.primary(forSlot: 10921) == Self.b)
        // The unknown endpoint and empty ip become the host of the node that answered.
        #expect(topology.primary(forSlot: 10922) == Self.c)
        #expect(topology.primary(forSlot: 10923) == Self.b)
        #expect(topology.primary(forSlot: 16383) == Self.b)
        #expect(topology.primary(forSlot: 16384) == nil)
        #expect(topology.primary(forSlot: -1) == nil)
        #expect(topology.shards[0].replicas.map(\.address) == [Self.replicaA])
        #expect(topology.shards[1].slots == [5461...10921, 10923...16383])
        #expect(topology.primaries == [Self.a, Self.b, Self.c])
        #expect(topology.allNodes == [Self.a, Self.b, Self.c, Self.replicaA])
    }

    @Test func parsesClusterSlots() throws {
        func node(_ host: String, _ port: Int64, _ id: String) -> RESPValue {
            .array([Self.bulk(host), .integer(port), Self.bulk(id)])
        }
        let reply: RESPValue = .array([
            .array([.integer(0), .integer(5460), node("10.0.0.1", 7000, "a"), node("10.0.0.4", 7003, "r")]),
            .array([.integer(5461), .integer(10921), node("10.0.0.2", 7001, "b")]),
            .array([.integer(10922), .integer(10922), node("", 7002, "c")]),
            .array([.integer(10923), .integer(16383), node("10.0.0.2", 7001, "b")]),
        ])
        let topology = try RedisClusterTopology.parse(slots: reply, from: Self.c)
        let fromShards = try RedisClusterTopology.parse(shards: Self.shardsReply, from: Self.c)
        #expect(topology.shards.count == 3)
        for slot in 0..<RedisClusterSlot.count {
            #expect(topology.primary(forSlot: slot) == fromShards.primary(forSlot: slot))
        }
        #expect(topology.allNodes == fromShards.allNodes)
    }

    @Test func slotsWithoutAShardHaveNoPrimary() throws {
        let topology = RedisClusterTopology(shards: [.init(slots: [0...99], primary: .init(address: Self.a))])
        #expect(!topology.coversAllSlots)
        #expect(topology.primary(forSlot: 99) == Self.a)
        #expect(topology.primary(forSlot: 100) == nil)
        #expect(RedisClusterTopology(shards: []).primary(forSlot: 0) == nil)
    }

    @Test(arguments: [
        RESPValue.integer(1),
        .array([.integer(1)]),
        .array([.array([bulk("slots"), .array([.integer(0)]), bulk("nodes"), .array([])])]),
        .array([.array([bulk("slots"), .array([.integer(5), .integer(1)]), bulk("nodes"), .array([])])]),
        .array([.array([bulk("slots"), .array([.integer(0), .integer(16384)]), bulk("nodes"), .array([])])]),
        .array([.array([bulk("nodes"), .array([])])]),
        .array([.array([bulk("slots"), .array([]), bulk("nodes"), .array([.array([bulk("id")])])])]),
    ])
    func rejectsMalformedShards(_ reply: RESPValue) {
        #expect(throws: RedisError.self) { try RedisClusterTopology.parse(shards: reply, from: Self.a) }
    }

    @Test(arguments: [
        RESPValue.error("ERR"),
        .array([.array([.integer(0), .integer(1)])]),
        .array([.array([.integer(9), .integer(1), .array([bulk("h"), .integer(1)])])]),
        .array([.array([.integer(0), .integer(1), .array([bulk("h")])])]),
        .array([.array([.integer(0), .integer(1), .integer(3)])]),
    ])
    func rejectsMalformedSlots(_ reply: RESPValue) {
        #expect(throws: RedisError.self) { try RedisClusterTopology.parse(slots: reply, from: Self.a) }
    }

    @Test func movingASlotSplitsItsRange() throws {
        let topology = try RedisClusterTopology.parse(shards: Self.shardsReply, from: Self.c)
        let moved = topology.moving(slot: 100, to: Self.b)
        #expect(moved.primary(forSlot: 100) == Self.b)
        #expect(moved.primary(forSlot: 99) == Self.a)
        #expect(moved.primary(forSlot: 101) == Self.a)
        #expect(moved.shards.first { $0.primary.address == Self.a }?.slots == [0...99, 101...5460])
        #expect(moved.coversAllSlots)
        // To a primary nobody knew: a shard of its own.
        let stranger = RedisClusterAddress(host: "10.9.9.9", port: 1)
        let toStranger = topology.moving(slot: 0, to: stranger)
        #expect(toStranger.primary(forSlot: 0) == stranger)
        #expect(toStranger.primary(forSlot: 1) == Self.a)
        #expect(toStranger.primaries.contains(stranger))
        // Moving to the owner, or an invalid slot, changes nothing.
        #expect(topology.moving(slot: 0, to: Self.a) == topology)
        #expect(topology.moving(slot: 16384, to: Self.b) == topology)
    }
}

@Suite struct RedisClusterRedirectionTests {
    @Test func parsesMovedAndAsk() {
        #expect(
            RedisClusterRedirection(errorMessage: "MOVED 3999 127.0.0.1:6381", replyingHost: "x")
                == .moved(slot: 3999, to: .init(host: "127.0.0.1", port: 6381))
        )
        #expect(
            RedisClusterRedirection(errorMessage: "ASK 3999 10.0.0.2:7001", replyingHost: "x")
                == .ask(slot: 3999, to: .init(host: "10.0.0.2", port: 7001))
        )
        // An empty host means the node that answered.
        #expect(
            RedisClusterRedirection(errorMessage: "MOVED 1 :7002", replyingHost: "10.0.0.3")
                == .moved(slot: 1, to: .init(host: "10.0.0.3", port: 7002))
        )
        #expect(
            RedisClusterRedirection(errorMessage: "MOVED 1 [::1]:7002", replyingHost: "x")
                == .moved(slot: 1, to: .init(host: "::1", port: 7002))
        )
        #expect(RedisClusterRedirection(errorMessage: "MOVED 1 ::1:7002", replyingHost: "x")?.address.host == "::1")
        let ask = RedisClusterRedirection(errorMessage: "ASK 7 h:1", replyingHost: "x")
        #expect(ask?.slot == 7)
        #expect(ask?.address == RedisClusterAddress(host: "h", port: 1))
    }

    @Test(arguments: [
        "ERR unknown command", "MOVED", "MOVED 1", "MOVED x h:1", "MOVED 16384 h:1", "MOVED -1 h:1", "MOVED 1 h",
        "MOVED 1 h:0", "MOVED 1 h:x", "ASKING 1 h:1", "MOVED 1 h:1 extra", "CLUSTERDOWN The cluster is down",
        "TRYAGAIN Multiple keys request during rehashing of slot",
    ])
    func otherErrorsAreNoRedirection(_ text: String) {
        #expect(RedisClusterRedirection(errorMessage: text, replyingHost: "x") == nil)
    }
}

@Suite struct RedisClusterRouterTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let seedA = RedisClusterAddress(host: "seed-a", port: 1)
    static let seedB = RedisClusterAddress(host: "seed-b", port: 2)
    let topology = try! RedisClusterTopology.parse(
        shards: RedisClusterTopologyTests.shardsReply,
        from: RedisClusterTopologyTests.c
    )

    func makeRouter() -> RedisClusterRouter {
        RedisClusterRouter(
            configuration: .init(
                seeds: [Self.seedA, Self.seedB],
                maxRedirections: 2,
                minimumRefreshInterval: .milliseconds(100),
                refreshTimeout: .seconds(2),
                periodicRefresh: .seconds(5)
            )
        )
    }

    @Test func firstTopologyComesFromTheSeedsInTurn() {
        var router = self.makeRouter()
        #expect(router.route(slot: 0) == nil)
        #expect(router.refreshDue(now: self.start) == Self.seedA)
        // One refresh at a time.
        #expect(router.refreshDue(now: self.start + .seconds(1)) == nil)
        router.refreshFailed(from: Self.seedA)
        // The failed seed is skipped; the next refresh waits for the minimum interval.
        #expect(router.refreshDue(now: self.start + .seconds(1)) == Self.seedB)
        // No answer within refreshTimeout: the next seed is asked.
        #expect(router.refreshDue(now: self.start + .milliseconds(2999)) == nil)
        #expect(router.refreshDue(now: self.start + .seconds(3)) == Self.seedA)
        let change = router.topologyReceived(self.topology, from: Self.seedA, now: self.start + .seconds(3))
        #expect(change == .init(slotsMoved: false, primariesGone: []))
        #expect(router.route(slot: 0) == RedisClusterTopologyTests.a)
        #expect(router.route(slot: 10922) == RedisClusterTopologyTests.c)
        // Nothing wanted until the periodic refresh, which goes to the known nodes first.
        #expect(router.refreshDue(now: self.start + .milliseconds(7999)) == nil)
        #expect(router.refreshDue(now: self.start + .seconds(8)) == RedisClusterTopologyTests.a)
    }

    @Test func refreshesWaitForTheMinimumInterval() {
        var router = self.makeRouter()
        #expect(router.refreshDue(now: self.start) == Self.seedA)
        router.topologyReceived(self.topology, from: Self.seedA, now: self.start + .milliseconds(10))
        router.requestRefresh()
        #expect(router.refreshDue(now: self.start + .milliseconds(99)) == nil)
        #expect(router.refreshDue(now: self.start + .milliseconds(100)) != nil)
    }

    @Test func movedUpdatesTheMapAndWantsARefresh() {
        var router = self.makeRouter()
        _ = router.refreshDue(now: self.start)
        router.topologyReceived(self.topology, from: Self.seedA, now: self.start)
        let b = RedisClusterTopologyTests.b
        #expect(router.redirected(.moved(slot: 0, to: b), redirections: 0) == .resend(to: b, asking: false))
        #expect(router.route(slot: 0) == b)
        #expect(router.route(slot: 1) == RedisClusterTopologyTests.a)
        #expect(router.refreshDue(now: self.start + .seconds(1)) != nil)
    }

    @Test func askIsOneShotAndLeavesTheMap() {
        var router = self.makeRouter()
        _ = router.refreshDue(now: self.start)
        router.topologyReceived(self.topology, from: Self.seedA, now: self.start)
        let b = RedisClusterTopologyTests.b
        #expect(router.redirected(.ask(slot: 0, to: b), redirections: 0) == .resend(to: b, asking: true))
        #expect(router.route(slot: 0) == RedisClusterTopologyTests.a)
        #expect(router.refreshDue(now: self.start + .seconds(1)) == nil)
    }

    @Test func tooManyRedirectionsFail() {
        var router = self.makeRouter()
        let b = RedisClusterTopologyTests.b
        #expect(router.redirected(.ask(slot: 0, to: b), redirections: 1) == .resend(to: b, asking: true))
        guard case .fail(let code, _) = router.redirected(.moved(slot: 0, to: b), redirections: 2) else {
            Issue.record("a third redirection was followed")
            return
        }
        #expect(code == .commandFailed)
    }

    @Test func aFailedNodeOrAHoleWantsARefresh() {
        var router = self.makeRouter()
        _ = router.refreshDue(now: self.start)
        router.topologyReceived(self.topology, from: Self.seedA, now: self.start)
        router.nodeFailed(RedisClusterTopologyTests.a)
        // The failed node is not asked.
        #expect(router.refreshDue(now: self.start + .seconds(1)) == RedisClusterTopologyTests.b)
        // A topology with a hole (a failover under way) is asked for again.
        let holed = RedisClusterTopology(shards: Array(self.topology.shards.dropFirst()))
        let change = router.topologyReceived(holed, from: RedisClusterTopologyTests.b, now: self.start + .seconds(1))
        #expect(change == .init(slotsMoved: true, primariesGone: [RedisClusterTopologyTests.a]))
        #expect(router.route(slot: 0) == nil)
        #expect(router.refreshDue(now: self.start + .milliseconds(1100)) != nil)
    }

    @Test func aFailoverIsReportedAsAGonePrimary() {
        var router = self.makeRouter()
        _ = router.refreshDue(now: self.start)
        router.topologyReceived(self.topology, from: Self.seedA, now: self.start)
        var shards = self.topology.shards
        shards[0] = .init(slots: shards[0].slots, primary: .init(address: RedisClusterTopologyTests.replicaA))
        let change = router.topologyReceived(
            RedisClusterTopology(shards: shards),
            from: Self.seedA,
            now: self.start + .seconds(1)
        )
        #expect(change == .init(slotsMoved: true, primariesGone: [RedisClusterTopologyTests.a]))
        #expect(router.route(slot: 0) == RedisClusterTopologyTests.replicaA)
    }
}
