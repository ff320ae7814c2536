import Foundation
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

/// Cluster-wide operations against a real redis-server, three in-process servers each with its own Redis
/// connections: fetch sockets, sockets join/leave/disconnect by room, server count and server-side emit with
/// answers, in python-socketio's channel layout and in room-channel mode, signed; and one server stopped while a
/// request waits for it.
@Suite(.serialized) struct ClusterQueryTests {
    private let cluster = ClusterTests()

    private func startNodes(
        _ redis: RedisServerProcess,
        mode: RedisChannelMode,
        signed: Bool
    ) async throws -> [ClusterTests.Node] {
        let channel = ClusterTests.channelName()
        var nodes: [ClusterTests.Node] = []
        for _ in 0..<3 {
            var redisConfiguration = SocketServerRedisConfiguration(url: redis.urlString, channel: channel, mode: mode)
            if signed { redisConfiguration.signingSecret = "cluster-query-secret-0123456789abcdefgh" }
            nodes.append(try await self.cluster.startNode(redis: redisConfiguration))
        }
        try await self.cluster.waitSubscribed(nodes)
        return nodes
    }

    private func hostID(_ node: ClusterTests.Node) -> String { node.server.gateway.serverID }

    /// Starts a private redis-server and three servers on it (`startNodes`), runs `body` with them, then shuts every
    /// server down and stops Redis, whether `body` threw or not (what it throws is recorded as an issue).
    private func withThreeServers(
        mode: RedisChannelMode,
        signed: Bool,
        _ body: (RedisServerProcess, [ClusterTests.Node]) async throws -> Void
    ) async throws {
        let redis = try await RedisServerProcess.start()
        let nodes = try await self.startNodes(redis, mode: mode, signed: signed)
        do {
            try await body(redis, nodes)
        } catch {
            Issue.record(error)
        }
        for node in nodes { try? await node.server.shutdown() }
        await redis.stop()
    }

    @Test(arguments: [(RedisChannelMode.python, false), (.rooms, true)])
    func fetchJoinLeaveDisconnectCountAndServerSideEmitAcrossThreeServers(
        mode: RedisChannelMode,
        signed: Bool
    ) async throws {
        try await self.withThreeServers(mode: mode, signed: signed) { _, nodes in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            var clients: [TestWebSocketClient] = []
            do {
                var sids: [String] = []
                for node in nodes {
                    let (client, sid) = try await self.cluster.connect(node, group: group)
                    clients.append(client)
                    sids.append(sid)
                }
                let (a, b) = (nodes[0].server.gateway, nodes[1].server.gateway)
                let hosts = nodes.map(self.hostID)
                #expect(await b.joinRoom(sids[1], room: "blue").outcome == .delivered)

                #expect(try await a.serverCount() == 3)

                let everyone = try await a.fetchSockets()
                #expect(everyone.isComplete)
                #expect(everyone.servers == Set(hosts))
                #expect(everyone.expectedServers == 2)
                #expect(Set(everyone.sockets.map(\.id)) == Set(sids))
                for (index, sid) in sids.enumerated() {
                    let summary = try #require(everyone.sockets.first { $0.id == sid })
                    #expect(summary.serverID == hosts[index])
                    #expect(summary.namespace == "/")
                    #expect(summary.rooms.contains(sid))
                }
                let blue = try await a.fetchSockets(.room("blue"))
                #expect(blue.sockets.map(\.id) == [sids[1]])
                #expect(blue.sockets.first?.rooms == [sids[1], "blue"])

                // Join every client, on every server, to green; then take blue's member out again.
                let joined = try await a.socketsJoin(["green"])
                #expect(joined.isComplete)
                #expect(joined.total == 3)
                #expect(Set(try await a.fetchSockets(.room("green")).sockets.map(\.id)) == Set(sids))
                #expect(try await a.socketsLeave(["green"], .room("blue")).total == 1)
                #expect(Set(try await a.fetchSockets(.room("green")).sockets.map(\.id)) == [sids[0], sids[2]])

                // Server-side emit: the other servers' handlers answer; a server without a handler says so.
                for node in nodes.dropFirst() {
                    let host = self.hostID(node)
                    node.server.gateway.onServerSideEmit("hello") { arguments, from in
                        [.string(host), .string(from)] + arguments
                    }
                }
                let hello = try await a.serverSideEmit("hello", arguments: [42])
                #expect(hello.isComplete)
                #expect(hello.replies[hosts[1]] == [.string(hosts[1]), .string(hosts[0]), 42])
                #expect(hello.replies[hosts[2]] == [.string(hosts[2]), .string(hosts[0]), 42])
                #expect(hello.replies[hosts[0]] == nil)
                let unknown = try await a.serverSideEmit("nobody-listens", arguments: [])
                #expect(!unknown.isComplete)
                #expect(Set(unknown.errors.keys) == [hosts[1], hosts[2]])

                // Disconnect green's members (on servers A and C) from wherever they are.
                let disconnected = try await b.disconnectSockets(.room("green"))
                #expect(disconnected.total == 2)
                let (sidA, sidC) = (sids[0], sids[2])
                try await nodes[0].recorder.waitUntil { $0.disconnectReason(sidA) != nil }
                try await nodes[2].recorder.waitUntil { $0.disconnectReason(sidC) != nil }
                #expect(try await a.fetchSockets().sockets.map(\.id) == [sids[1]])
            } catch {
                Issue.record(error)
            }
            for client in clients { await client.close() }
            try? await group.shutdownGracefully()
        }
    }

    @Test func aServerStoppedMidRequestGivesPartialResultsAtTheTimeoutAndNothingElseBreaks() async throws {
        try await self.withThreeServers(mode: .python, signed: false) { _, nodes in
            let (a, hosts) = (nodes[0].server.gateway, nodes.map(self.hostID))
            let entered = AsyncStream<Void>.makeStream()
            nodes[1].server.gateway.onServerSideEmit("work") { _, _ in ["done"] }
            nodes[2].server.gateway.onServerSideEmit("work") { _, _ in
                entered.continuation.yield()
                // Stopped while working: the answer never comes in time (the sleep ends early if cancelled).
                try? await Task.sleep(for: .seconds(30))
                return ["too late"]
            }
            // Every server answered once, so each is known by id.
            #expect(try await a.fetchSockets().servers == Set(hosts))

            // Timeouts leave room for a loaded machine: B must answer within them.
            async let pending = a.serverSideEmit("work", arguments: [], timeout: .seconds(4))
            var iterator = entered.stream.makeAsyncIterator()
            _ = await iterator.next()
            async let stopped: Void = nodes[2].server.shutdown()
            let partial = try await pending
            #expect(!partial.isComplete)
            #expect(partial.replies == [hosts[1]: ["done"]])
            #expect(partial.expectedServers == 2)
            #expect(partial.unansweredCount == 1)
            #expect(partial.unansweredServers == [hosts[2]])
            try await stopped
            // The others carry on: a new request gets every remaining server's answer. (Whether it also waits for
            // the stopped one depends on when Redis drops its subscription: not asserted.)
            let after = try await a.fetchSockets(timeout: .seconds(4))
            #expect(after.servers == [hosts[0], hosts[1]])
            #expect(after.errors.isEmpty && after.failure == nil)
            // And B still reaches A (which has no handler for `work`, and says so).
            let fromB = try await nodes[1].server.gateway.serverSideEmit("work", arguments: [], timeout: .seconds(4))
            #expect(fromB.errors[hosts[0]] == "no server-side emit handler for event 'work'")
        }
    }

    @Test func broadcastAcksCollectEveryServersClientsAndCountAFrozenServer() async throws {
        try await self.withThreeServers(mode: .python, signed: true) { redis, nodes in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let adapter = try #require(nodes[0].server.gateway.cluster as? RedisClusterAdapter)
            // A subscriber of the request channel that Redis delivers to but that is stopped (SIGSTOP): a frozen
            // server.
            let frozen = try await redis.frozenSubscriber(channel: adapter.requests.requestChannel)
            defer { kill(frozen, SIGKILL) }
            var clients: [TestWebSocketClient] = []
            do {
                var sids: [String] = []
                for node in nodes {
                    let (client, sid) = try await self.cluster.connect(node, group: group)
                    clients.append(client)
                    sids.append(sid)
                }
                let a = nodes[0].server.gateway
                // A generous grace for the other servers' reports: this runs beside Redis Cluster and Sentinel
                // deployments on two cores, where a report may come more than the default 1 s after its deadline.
                async let pending = a.broadcastWithAck(
                    "vote",
                    arguments: ["q"],
                    timeout: .seconds(1),
                    answerGrace: .seconds(5)
                )
                for (index, client) in clients.prefix(2).enumerated() {
                    let asked = try await client.nextText()
                    let ackID = asked.dropFirst(2).prefix(while: { $0.isNumber })
                    #expect(asked == "42\(ackID)[\"vote\",\"q\"]")
                    try await client.send("43\(ackID)[\"yes-\(index)\"]")
                }
                // The third server's client gets the event and does not answer.
                #expect(try await clients[2].nextText().hasSuffix(#"["vote","q"]"#))
                let result = try await pending
                #expect(result.answers == [sids[0]: ["yes-0"], sids[1]: ["yes-1"]])
                #expect(result.missing.mapValues(\.code) == [sids[2]: .timeout])
                #expect(result.servers == Set(nodes.map(self.hostID)))
                // The frozen one is counted; never heard from, it has no name.
                #expect(result.unreachableServerCount == 1)
                #expect(result.unreachableServers.isEmpty)
                #expect(!result.isComplete)
                #expect(throws: SocketBroadcastAckError.self) { try result.requireComplete() }
            } catch {
                Issue.record(error)
            }
            for client in clients { await client.close() }
            try? await group.shutdownGracefully()
        }
    }

    /// On a Redis Cluster (room channels sharded) requests travel on classic channels, which the cluster bus copies
    /// to every node; PUBLISH counts one node's subscribers, so a request waits for its whole timeout there.
    @Test func onARedisClusterRequestsWaitTheirTimeoutAndGetEveryAnswer() async throws {
        try await RedisClusterProcess.with { redisCluster in
            let channel = ClusterTests.channelName()
            var nodes: [ClusterTests.Node] = []
            for _ in 0..<2 {
                let server = SocketServer(
                    configuration: SocketServerConfiguration(
                        port: 0,
                        eventLoopThreads: 2,
                        redis: SocketServerRedisConfiguration(
                            url: redisCluster.urlString,
                            channel: channel,
                            mode: .rooms
                        )
                    ).anonymous,
                    logger: ClusterTests.logger()
                )
                try await server.start()
                nodes.append(
                    ClusterTests.Node(server: server, port: try #require(server.localPort), recorder: Recorder())
                )
            }
            do {
                try await self.cluster.waitSubscribed(nodes)
                let a = nodes[0].server.gateway
                let found = try await a.fetchSockets(timeout: .milliseconds(1500))
                #expect(found.servers == Set(nodes.map(self.hostID)))
                #expect(found.expectedServers == nil)
                #expect(found.unansweredCount == 0)
                #expect(found.isComplete)
                #expect(try await a.serverCount(timeout: .milliseconds(1500)) == 2)
            } catch {
                Issue.record(error)
            }
            for node in nodes { try? await node.server.shutdown() }
        }
    }

    /// A real `socket-gateway serve` process answers: its python-socketio client is found, asked with acks, joined,
    /// and disconnected from an in-process server; then the process is stopped (SIGSTOP) and a request returns at
    /// its timeout naming it.
    @Test func aServeProcessAnswersAndWhenStoppedIsNamedAtTheTimeout() async throws {
        let python = try await PythonPeer.interpreter(importing: ["socketio", "aiohttp"])
        // SOCKET_GATEWAY_CLI, or the product built beside this test bundle (same scratch path and configuration).
        let executable =
            ProcessInfo.processInfo.environment["SOCKET_GATEWAY_CLI"]
            ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("socket-gateway").path
        try #require(
            FileManager.default.isExecutableFile(atPath: executable),
            "\(executable) is missing: run swift build --build-tests first (or set SOCKET_GATEWAY_CLI)"
        )
        try await self.withThreeServers(mode: .python, signed: false) { redis, nodes in
            let a = nodes[0].server.gateway
            for node in nodes.dropFirst() { try? await node.server.shutdown() }
            let serve = Process()
            serve.executableURL = URL(fileURLWithPath: executable)
            let adapter = try #require(a.cluster as? RedisClusterAdapter)
            serve.arguments = [
                "serve", "--port", "0", "--redis-url", redis.urlString, "--channel", adapter.channel.channel,
                "--allow-anonymous",
            ]
            let serveOutput = Pipe()
            serve.standardOutput = serveOutput
            serve.standardError = FileHandle.nullDevice
            let serveLines = ProcessLines(serveOutput)
            let clients = Process()
            let script = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-serve-\(UUID()).py")
            defer {
                try? FileManager.default.removeItem(at: script)
                if serve.isRunning { kill(serve.processIdentifier, SIGKILL) }
                if clients.isRunning { kill(clients.processIdentifier, SIGKILL) }
            }
            try serve.run()
            do {
                try #require(await serveLines.wait(for: 1, from: serve), "serve did not start")
                let servePort = try #require(serveLines.lines[0].split(separator: " ").last.flatMap { Int($0) })
                // Subscribed once Redis delivers requests to it and it answers.
                var subscribed = false
                for _ in 0..<200 {
                    if try await a.serverCount(timeout: .milliseconds(200)) == 2 {
                        subscribed = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(25))
                }
                try #require(subscribed, "the serve process did not answer a request within 10 s")
                try pythonClients.write(to: script, atomically: true, encoding: .utf8)
                clients.executableURL = URL(fileURLWithPath: python)
                clients.arguments = [script.path, "http://127.0.0.1:\(nodes[0].port)", "http://127.0.0.1:\(servePort)"]
                let output = Pipe()
                clients.standardOutput = output
                clients.standardError = FileHandle.nullDevice
                let lines = ProcessLines(output)
                try clients.run()
                try #require(await lines.wait(for: 1, from: clients), "the python-socketio clients did not connect")
                let ready = try JSONValue.parse(ByteBuffer(string: lines.lines[0]))
                let alice = try #require(ready["ready"]?["alice"]?.stringValue)
                let bob = try #require(ready["ready"]?["bob"]?.stringValue)

                let found = try await a.fetchSockets()
                #expect(found.isComplete)
                #expect(found.sockets.map(\.id).sorted() == [alice, bob].sorted())
                let serveHost = try #require(found.sockets.first { $0.id == bob }?.serverID)
                #expect(serveHost != self.hostID(nodes[0]))

                // python-socketio answers every ack request (no arguments when the handler returns None).
                let votes = try await a.broadcastWithAck("vote", arguments: [1], timeout: .seconds(5))
                #expect(votes.answers == [alice: [], bob: []])
                #expect(votes.servers == [self.hostID(nodes[0]), serveHost])
                #expect(votes.isComplete)

                #expect(try await a.disconnectSockets(.room(bob)).replies == [serveHost: 1, self.hostID(nodes[0]): 0])
                #expect(await lines.wait(for: 4, from: clients))
                #expect(lines.lines.last == #"{"who": "bob", "event": "disconnected"}"#)

                // The serve process stopped mid-operation: the request returns at its timeout, naming it. Stopped
                // for sure: a thread of it may run on for a while after kill(SIGSTOP) returns, and answer.
                try await ProcessFreezer.stop(serve.processIdentifier)
                let partial = try await a.fetchSockets(timeout: .seconds(1))
                #expect(partial.sockets.map(\.id) == [alice])
                #expect(partial.unansweredCount == 1)
                #expect(partial.unansweredServers == [serveHost])
                #expect(!partial.isComplete)
                lines.stop()
            } catch {
                Issue.record(error)
            }
            serveLines.stop()
            kill(serve.processIdentifier, SIGKILL)
        }
    }

    @Test func garbledAndHostileRequestsAreCountedAndSkipped() async throws {
        try await self.withThreeServers(mode: .python, signed: false) { redis, nodes in
            let adapter = try #require(nodes[1].server.gateway.cluster as? RedisClusterAdapter)
            let channel = adapter.requests.requestChannel
            for garbage in [
                "not json", #"{"type":"request"}"#, #"{"type":"request","id":-1,"host_id":"x","expires_ms":1}"#,
                #"{"type":"request","id":1,"host_id":"x","expires_ms":99999999999999,"op":"drop_tables"}"#,
                #"{"type":"request","id":1,"host_id":"x","expires_ms":99999999999999,"op":"fetch_sockets"}"#,
                #"{"type":"response","id":1,"host_id":"x","reply":1}"#,
            ] {
                _ = try await redis.cli(["PUBLISH", channel, garbage])
            }
            for _ in 0..<500 where adapter.requests.counts.garbled < 6 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(adapter.requests.counts.garbled == 6)
            // Still answering.
            #expect(try await nodes[0].server.gateway.serverCount() == 3)
        }
    }

    @Test func pythonClientsOnTwoServersAreFoundJoinedAndDisconnectedFromEither() async throws {
        let python = try await PythonPeer.interpreter(importing: ["socketio", "aiohttp"])
        try await self.withThreeServers(mode: .python, signed: false) { _, nodes in
            let script = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-query-\(UUID()).py")
            try pythonClients.write(to: script, atomically: true, encoding: .utf8)
            let process = Process()
            defer {
                try? FileManager.default.removeItem(at: script)
                // SIGKILL: a child of the test process inherits its blocked signals, so SIGTERM may never arrive.
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [script.path, "http://127.0.0.1:\(nodes[0].port)", "http://127.0.0.1:\(nodes[1].port)"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            let lines = ProcessLines(output)
            try process.run()
            do {
                try #require(await lines.wait(for: 1, from: process), "the python-socketio clients did not connect")
                let ready = try JSONValue.parse(ByteBuffer(string: lines.lines[0]))
                let alice = try #require(ready["ready"]?["alice"]?.stringValue)
                let bob = try #require(ready["ready"]?["bob"]?.stringValue)
                let (a, b) = (nodes[0].server.gateway, nodes[1].server.gateway)

                // Found from the third server, each on its own server.
                let found = try await nodes[2].server.gateway.fetchSockets()
                #expect(found.isComplete)
                #expect(found.sockets.map(\.id).sorted() == [alice, bob].sorted())
                #expect(found.sockets.first { $0.id == alice }?.serverID == self.hostID(nodes[0]))
                #expect(found.sockets.first { $0.id == bob }?.serverID == self.hostID(nodes[1]))

                // Joined to a room by server B, then reached there by an emit from server A.
                #expect(try await b.socketsJoin(["team"]).total == 2)
                #expect(
                    await a.emit("news", arguments: ["hi"], to: .room("team"), options: EmitOptions()).outcome
                        == .published
                )
                #expect(await lines.wait(for: 3, from: process))
                let news = lines.lines.dropFirst().compactMap { try? JSONValue.parse(ByteBuffer(string: $0)) }
                #expect(Set(news.compactMap { $0["who"]?.stringValue }) == ["alice", "bob"])
                #expect(news.allSatisfy { $0["event"] == "news" && $0["args"] == ["hi"] })

                // Bob (on server B) disconnected by server A.
                #expect(try await a.disconnectSockets(.room(bob)).total == 1)
                #expect(await lines.wait(for: 4, from: process))
                #expect(lines.lines.last == #"{"who": "bob", "event": "disconnected"}"#)
                #expect(try await a.fetchSockets(.room("team")).sockets.map(\.id) == [alice])
            } catch {
                Issue.record(error)
            }
            lines.stop()
        }
    }
}

/// Two python-socketio clients, alice on the server at argv[1] and bob on the one at argv[2]; prints one JSON line
/// `{"ready": {who: sid}}`, then `{"who":…,"event":…,"args":[…]}` for each event and `{"who":…,"event":"disconnected"}`.
private let pythonClients = #"""
    import asyncio, json, sys
    import socketio

    async def main():
        clients = {}
        for who, url in (("alice", sys.argv[1]), ("bob", sys.argv[2])):
            client = socketio.AsyncClient(reconnection=False)
            def handler(event, *args, who=who):
                if event != "welcome":
                    print(json.dumps({"who": who, "event": event, "args": list(args)}), flush=True)
            def gone(*args, who=who):
                print(json.dumps({"who": who, "event": "disconnected"}), flush=True)
            client.on("*", handler)
            client.on("disconnect", gone)
            # A generous wait for the CONNECT answer: this runs beside the whole parallel Swift suite on 2 cores.
            await client.connect(url, transports=["websocket"], wait_timeout=10)
            clients[who] = client
        print(json.dumps({"ready": {who: c.get_sid() for who, c in clients.items()}}), flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """#
