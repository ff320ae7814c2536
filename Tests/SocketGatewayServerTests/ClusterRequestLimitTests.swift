import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

/// The bounds on cluster-wide requests (``ClusterRequestLimits``) against a hostile publisher on a real
/// redis-server: a rogue process that floods the request channel with requests whose answers take long, sends
/// messages over the size bound, and a server asking more than its bound at once. Each bound refuses at once and
/// counts; nothing queues; afterwards every count of work in progress is back to 0 and the servers still answer.
@Suite(.serialized) struct ClusterRequestLimitTests {
    private let cluster = ClusterTests()

    private func startNodes(
        _ redis: RedisServerProcess,
        channel: String,
        count: Int,
        limits: ClusterRequestLimits
    ) async throws -> [ClusterTests.Node] {
        var nodes: [ClusterTests.Node] = []
        for _ in 0..<count {
            var redisConfiguration = SocketServerRedisConfiguration(url: redis.urlString, channel: channel)
            redisConfiguration.requestLimits = limits
            nodes.append(try await self.cluster.startNode(redis: redisConfiguration))
        }
        try await self.cluster.waitSubscribed(nodes)
        return nodes
    }

    /// A request as a rogue publisher would send it, with an id and host id of its own.
    private func rogueRequest(id: UInt64, _ query: ClusterQuery) -> String {
        var buffer = ByteBuffer()
        ClusterRequestWire.encode(
            ClusterRequestWire.Request(
                id: id,
                hostID: "rogue",
                expiresMilliseconds: PubSubSigner.wallClockMilliseconds() + 60_000,
                query: query
            ),
            into: &buffer
        )
        return String(buffer: buffer)
    }

    /// `redis-cli SUBSCRIBE channel`, its output as lines, once Redis counts the subscription.
    private func subscribe(_ redis: RedisServerProcess, _ channel: String) async throws -> (Process, ProcessLines) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-cli", "-s", redis.unixSocketPath, "SUBSCRIBE", channel]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let lines = ProcessLines(output)
        try process.run()
        for _ in 0..<500 {
            let counted = try await redis.cli(["PUBSUB", "NUMSUB", channel])
            if counted.split(separator: "\n").last == "1" { return (process, lines) }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(process.processIdentifier, SIGKILL)
        throw TestClientError(description: "redis-cli SUBSCRIBE \(channel) was not counted within 5 s")
    }

    /// Polls `condition` (bounded: 15 s).
    private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<1500 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestClientError(description: "not reached within 15 s: \(what)")
    }

    @Test func aFloodOfSlowRequestsIsAnsweredAtMostMaxAnsweringAtOnceAndTheRestRefusedAtOnce() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = ClusterTests.channelName()
        let nodes = try await self.startNodes(redis, channel: channel, count: 2, limits: .init(maxAnswering: 4))
        let b = nodes[1].server
        let requests = try #require((b.gateway.cluster as? RedisClusterAdapter)?.requests)
        // B's handler holds every request until the gate opens (bounded: 15 s).
        let gate = NIOLockedValueBox((open: false, entered: 0))
        b.gateway.onServerSideEmit("slow") { _, _ in
            gate.withLockedValue { $0.entered += 1 }
            for _ in 0..<1500 where !gate.withLockedValue({ $0.open }) {
                try? await Task.sleep(for: .milliseconds(10))
            }
            return ["done"]
        }
        let (rogueInbox, answers) = try await self.subscribe(redis, "\(channel):responses:rogue")
        defer { kill(rogueInbox.processIdentifier, SIGKILL) }
        let publisher = RedisCommandClient(url: try RedisURL(parsing: redis.urlString), logger: ClusterTests.logger())
        do {
            let flood = 40
            for id in 1...flood {
                _ = try await publisher.send([
                    "PUBLISH", requests.requestChannel,
                    self.rogueRequest(id: UInt64(id), .serverSideEmit(event: "slow", arguments: [])),
                ])
            }
            // A (no handler) answers each with an error at once; B takes 4 and refuses the other 36 at once.
            try await self.waitUntil("B refused 36") { requests.counts.refusedAnswers == flood - 4 }
            try await self.waitUntil("B's handler entered 4 times") { gate.withLockedValue { $0.entered } == 4 }
            // A answers too (no handler: an error each), with the same bound, so it may be busy for some as well.
            let fromB = #""host_id":"\#(b.gateway.serverID)""#
            let busy = {
                answers.lines.filter {
                    $0.contains(fromB) && $0.contains(#""error":"busy: 4 requests are being answered""#)
                }
            }
            try await self.waitUntil("36 busy answers from B reached the rogue") { busy().count == flood - 4 }
            let health = try #require(b.clusterHealth.clusterRequests)
            #expect(health.answering == 4)
            #expect(health.refusedBusy == flood - 4)
            #expect(b.clusterHealth.json["redis"]?["cluster_requests"]?["refused_busy"] == .int(Int64(flood - 4)))
            #expect(gate.withLockedValue { $0.entered } == 4)

            // Opened: the four held answers go out, nothing else was queued, and the count is back to 0.
            gate.withLockedValue { $0.open = true }
            let done = { answers.lines.filter { $0.contains(#""reply":["done"]"#) }.count }
            try await self.waitUntil("four answers") { done() == 4 && requests.health.answering == 0 }
            try await Task.sleep(for: .milliseconds(200))
            #expect(done() == 4)
            #expect(gate.withLockedValue { $0.entered } == 4)
            // Both still answer a server's request.
            let fromA = try await nodes[0].server.gateway.serverSideEmit("slow", arguments: [], timeout: .seconds(10))
            #expect(fromA.isComplete)
            #expect(fromA.replies[b.gateway.serverID] == ["done"])
        } catch {
            Issue.record(error)
        }
        await publisher.shutdown()
        for node in nodes { try? await node.server.shutdown() }
        await redis.stop()
    }

    @Test func messagesOverTheSizeBoundAreSkippedAndAnAnswerOverItBecomesAnErrorAnswer() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = ClusterTests.channelName()
        let limit = 2048
        let nodes = try await self.startNodes(redis, channel: channel, count: 2, limits: .init(maxMessageBytes: limit))
        let (a, b) = (nodes[0].server.gateway, nodes[1].server.gateway)
        let requestsB = try #require((b.cluster as? RedisClusterAdapter)?.requests)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var clients: [TestWebSocketClient] = []
        let publisher = RedisCommandClient(url: try RedisURL(parsing: redis.urlString), logger: ClusterTests.logger())
        do {
            // A request over the bound, from a rogue: skipped and counted, not answered.
            let big = self.rogueRequest(
                id: 1,
                .serverSideEmit(event: "x", arguments: [.string(String(repeating: "a", count: 2 * limit))])
            )
            _ = try await publisher.send(["PUBLISH", requestsB.requestChannel, big])
            try await self.waitUntil("B skipped the big request") { requestsB.counts.garbled == 1 }
            #expect(requestsB.health.answering == 0)

            // A request of A's own over the bound is not sent; the call says why.
            let tooBig = try await a.serverSideEmit("x", arguments: [.string(String(repeating: "a", count: 2 * limit))])
            #expect(tooBig.failure?.contains("over the limit of \(limit)") == true)
            #expect(tooBig.replies.isEmpty && tooBig.errors.isEmpty)

            // B's answer over the bound (30 clients' summaries) becomes an error answer naming the size.
            for _ in 0..<30 {
                let (client, _) = try await self.cluster.connect(nodes[1], group: group)
                clients.append(client)
            }
            let found = try await a.fetchSockets(timeout: .seconds(10))
            #expect(found.replies[b.serverID] == nil)
            #expect(found.errors[b.serverID]?.contains("over the limit of \(limit)") == true)
            try await self.waitUntil("B answering nothing") { requestsB.health.answering == 0 }
            // Small answers still pass.
            #expect(try await a.serverCount(timeout: .seconds(10)) == 2)
        } catch {
            Issue.record(error)
        }
        for client in clients { await client.close() }
        await publisher.shutdown()
        for node in nodes { try? await node.server.shutdown() }
        try? await group.shutdownGracefully()
        await redis.stop()
    }

    @Test func requestsBeyondMaxPendingThrowAtOnceAndTheServerAsksAgainAfterwards() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = ClusterTests.channelName()
        let nodes = try await self.startNodes(redis, channel: channel, count: 1, limits: .init(maxPending: 2))
        let a = nodes[0].server.gateway
        let requests = try #require((a.cluster as? RedisClusterAdapter)?.requests)
        // A frozen subscriber of the request channel: Redis counts it, it never answers, so requests wait.
        let frozen = try await redis.frozenSubscriber(channel: requests.requestChannel)
        defer { kill(frozen, SIGKILL) }
        do {
            async let first = a.fetchSockets(timeout: .seconds(3))
            async let second = a.serverCount(timeout: .seconds(3))
            try await self.waitUntil("two requests pending") { requests.health.pending == 2 }
            await #expect {
                _ = try await a.fetchSockets(timeout: .seconds(3))
            } throws: { error in
                guard let error = error as? ClusterRequestError else { return false }
                return error.code == .tooManyPending && error.limit == 2
            }
            let (one, two) = try await (first, second)
            #expect(one.unansweredCount == 1)
            // The frozen subscriber counts as a server that did not answer.
            #expect(two == 2)
            #expect(requests.health.pending == 0)
            // Asking again works.
            #expect(try await a.fetchSockets(timeout: .milliseconds(300)).unansweredCount == 1)
        } catch {
            Issue.record(error)
        }
        for node in nodes { try? await node.server.shutdown() }
        await redis.stop()
    }

    @Test func theEnvironmentSetsTheBoundsAndRefusesWhatIsOutOfRange() throws {
        let redis = "redis://127.0.0.1:6379"
        let defaults = try SocketServerConfiguration(environment: ["REDIS_URL": redis])
        #expect(defaults.redis?.requestLimits == ClusterRequestLimits())
        #expect(defaults.redis?.requestLimits.maxPending == 64)
        #expect(defaults.redis?.requestLimits.maxMessageBytes == 1 << 20)
        let set = try SocketServerConfiguration(environment: [
            "REDIS_URL": redis, "SOCKET_REDIS_REQUESTS_MAX_PENDING": "8",
            "SOCKET_REDIS_REQUESTS_MAX_ANSWERING": "16", "SOCKET_REDIS_REQUESTS_MAX_BYTES": "65536",
        ])
        #expect(
            set.redis?.requestLimits == ClusterRequestLimits(maxPending: 8, maxAnswering: 16, maxMessageBytes: 65536)
        )
        for (variable, text) in [
            ("SOCKET_REDIS_REQUESTS_MAX_PENDING", "0"), ("SOCKET_REDIS_REQUESTS_MAX_PENDING", "many"),
            ("SOCKET_REDIS_REQUESTS_MAX_ANSWERING", "100001"), ("SOCKET_REDIS_REQUESTS_MAX_ANSWERING", "-1"),
            ("SOCKET_REDIS_REQUESTS_MAX_BYTES", "1023"), ("SOCKET_REDIS_REQUESTS_MAX_BYTES", "1e6"),
        ] {
            #expect {
                _ = try SocketServerConfiguration(environment: ["REDIS_URL": redis, variable: text])
            } throws: { error in
                guard let error = error as? SocketServerConfigurationError else { return false }
                return error.variable == variable && error.message.contains("got '\(text)'")
            }
        }
    }

    @Test func codeConfigurationOutOfRangeIsRefusedAtStart() {
        for (limits, name) in [
            (ClusterRequestLimits(maxPending: 0), "maxPending"),
            (ClusterRequestLimits(maxAnswering: -1), "maxAnswering"),
            (ClusterRequestLimits(maxMessageBytes: 100), "maxMessageBytes"),
        ] {
            var redis = SocketServerRedisConfiguration(url: "redis://127.0.0.1:6379")
            redis.requestLimits = limits
            #expect {
                try SocketServerConfiguration(port: 0, redis: redis).anonymous.validate()
            } throws: { error in
                (error as? SocketServerConfigurationError)?.variable == "redis.requestLimits.\(name)"
            }
        }
    }
}
