import NIOCore
import NIOPosix
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

/// The tally of a broadcast with acks, as a pure value.
@Suite struct BroadcastAckTallyTests {
    @Test func answersAndFailuresCompleteTheTallyOncePerClient() {
        var tally = BroadcastAckTally(addressed: ["a", "b", "c"])
        #expect(!tally.isComplete)
        var recorded = tally.answered("a", [1])
        #expect(recorded)
        recorded = tally.answered("a", [2])
        #expect(!recorded, "a second answer is ignored")
        recorded = tally.failed("a", .timeout)
        #expect(!recorded, "a client that answered cannot fail")
        recorded = tally.answered("x", [1])
        #expect(!recorded, "a client not addressed is ignored")
        recorded = tally.failed("b", .disconnected)
        #expect(recorded)
        #expect(!tally.isComplete)
        recorded = tally.failed("b", .timeout)
        #expect(!recorded, "the first failure stays")
        recorded = tally.failed("c", .timeout)
        #expect(recorded)
        #expect(tally.isComplete)
        #expect(tally.answers == ["a": [1]])
        #expect(tally.missing == ["b": .disconnected, "c": .timeout])
        #expect(tally.pending.isEmpty)
    }

    @Test func nobodyAddressedIsCompleteAtOnce() {
        #expect(BroadcastAckTally(addressed: []).isComplete)
    }

    @Test func requireCompleteNamesWhoDidNotAnswer() throws {
        var result = SocketBroadcastAcks<[JSONValue]>(event: "q", namespace: "/", answers: ["a": [1]])
        #expect(try result.requireComplete() == ["a": [1]])
        result.missing["b"] = SocketAckError(code: .timeout, event: "q", sid: "b", namespace: "/")
        do {
            _ = try result.requireComplete()
            Issue.record("an incomplete result was accepted")
        } catch let error as SocketBroadcastAckError {
            #expect(error.code == .incomplete)
            #expect(Set(error.missing.keys) == ["b"])
            #expect(error.answered == 1)
        }
    }
}

/// `SocketGateway.broadcastWithAck` end to end with raw WebSocket clients.
@Suite(.serialized) struct BroadcastAckEndToEndTests {
    let base = SocketServerEndToEndTests()

    /// Reads the next event frame of `client` in `/`: its ack id and the rest of the packet.
    func nextEventWithAck(_ client: TestWebSocketClient) async throws -> (id: String, packet: String) {
        let text = try await client.nextText()
        guard text.hasPrefix("42"), let bracket = text.firstIndex(of: "[") else {
            throw TestClientError(description: "expected an event with an ack id, got \(text)")
        }
        let id = String(text[text.index(text.startIndex, offsetBy: 2)..<bracket])
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw TestClientError(description: "expected an ack id in \(text)")
        }
        return (id, String(text[bracket...]))
    }

    @Test func everyAddressedClientAnswersAndExcludedOnesGetNothing() async throws {
        try await self.base.withServer { server, port, _, group in
            let (a, sidA) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (b, sidB) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (c, sidC) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            await server.gateway.joinRoom(sidA, room: "blue")
            await server.gateway.joinRoom(sidB, room: "green")
            await server.gateway.joinRoom(sidC, room: "blue")
            await server.gateway.joinRoom(sidC, room: "green")

            // Two rooms, each client once, c excluded by its sid.
            async let pending = server.gateway.broadcastWithAck(
                "q",
                arguments: [1],
                to: .rooms(["blue", "green"]),
                options: EmitOptions(excluding: [sidC]),
                timeout: .seconds(30)
            )
            let fromA = try await self.nextEventWithAck(a)
            let fromB = try await self.nextEventWithAck(b)
            #expect(fromA.packet == #"["q",1]"#)
            #expect(fromB.packet == #"["q",1]"#)
            try await a.send("43\(fromA.id)[\"a\"]")
            try await b.send("43\(fromB.id)[\"b\",{\"n\":2}]")
            let result = try await pending
            #expect(result.answers == [sidA: ["a"], sidB: ["b", ["n": 2]]])
            #expect(result.missing.isEmpty)
            #expect(result.isComplete)
            #expect(result.servers == ["local"])
            #expect(result.unreachableServers.isEmpty)
            #expect(try result.requireComplete().count == 2)

            // A whole-namespace broadcast excluding a room: only b (c is in green too).
            async let second = server.gateway.broadcastWithAck(
                "r",
                arguments: [],
                options: EmitOptions(excluding: ["blue"]),
                timeout: .seconds(30)
            )
            let fromB2 = try await self.nextEventWithAck(b)
            #expect(fromB2.packet == #"["r"]"#)
            try await b.send("43\(fromB2.id)[true]")
            #expect(try await second.answers == [sidB: [true]])
            #expect(a.hasNoPendingFrames())
            #expect(c.hasNoPendingFrames(), "the excluded client got nothing")
            for client in [a, b, c] { await client.close() }
        }
    }

    @Test func aClientThatNeverAnswersIsListedAtTheTimeout() async throws {
        try await self.base.withServer { server, port, _, group in
            let (a, sidA) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (b, sidB) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            // Long enough for a's answer to arrive first on a loaded machine.
            async let pending = server.gateway.broadcastWithAck("q", arguments: [], timeout: .seconds(3))
            let fromA = try await self.nextEventWithAck(a)
            _ = try await self.nextEventWithAck(b)
            try await a.send("43\(fromA.id)[1]")
            let result = try await pending
            #expect(result.answers == [sidA: [1]])
            #expect(result.missing.mapValues(\.code) == [sidB: .timeout])
            #expect(result.missing[sidB]?.sid == sidB)
            #expect(!result.isComplete)
            #expect(throws: SocketBroadcastAckError.self) { try result.requireComplete() }
            for client in [a, b] { await client.close() }
        }
    }

    @Test func aClientThatDisconnectsWhileWaitingIsMissingAtOnce() async throws {
        try await self.base.withServer { server, port, _, group in
            let (a, sidA) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (b, sidB) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            // A deadline far away: the result comes from the answer and the disconnect, not the timeout.
            async let pending = server.gateway.broadcastWithAck("q", arguments: [], timeout: .seconds(600))
            let fromA = try await self.nextEventWithAck(a)
            _ = try await self.nextEventWithAck(b)
            await b.close()
            try await a.send("43\(fromA.id)[\"ok\"]")
            let result = try await pending
            #expect(result.answers == [sidA: ["ok"]])
            #expect(result.missing.mapValues(\.code) == [sidB: .disconnected])
            await a.close()
        }
    }

    @Test func anEmptyRoomGivesAnEmptyResultAtOnce() async throws {
        try await self.base.withServer { server, port, _, group in
            let (a, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let result = try await server.gateway.broadcastWithAck(
                "q",
                arguments: [],
                to: .room("nobody-here"),
                timeout: .seconds(600)
            )
            #expect(result.answers.isEmpty)
            #expect(result.missing.isEmpty)
            #expect(result.isComplete)
            #expect(result.servers == ["local"])
            #expect(a.hasNoPendingFrames())
            await a.close()
        }
    }

    @Test func tooManyRecipientsSendsNothing() async throws {
        try await self.base.withServer { server, port, _, group in
            let (a, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (b, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            do {
                _ = try await server.gateway.broadcastWithAck(
                    "q",
                    arguments: [],
                    timeout: .seconds(5),
                    maxRecipients: 1
                )
                Issue.record("a broadcast over maxRecipients was sent")
            } catch let error as SocketBroadcastAckError {
                #expect(error.code == .tooManyRecipients)
                #expect(error.answered == 2)
                #expect(error.maxRecipients == 1)
            }
            // Nothing went out: the next frame each gets is a plain emit sent afterwards.
            await server.gateway.emit("after", arguments: [], to: .broadcast, options: EmitOptions())
            #expect(try await a.nextText() == #"42["after"]"#)
            #expect(try await b.nextText() == #"42["after"]"#)
            for client in [a, b] { await client.close() }
        }
    }

    @Test func aTypedBroadcastDecodesEachAnswerAndListsAMalformedOneAsMissing() async throws {
        try await self.base.withServer { server, port, _, group in
            let (a, sidA) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (b, sidB) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            async let pending = server.gateway.broadcastWithAck(TypedPing(nonce: 3), timeout: .seconds(30))
            let fromA = try await self.nextEventWithAck(a)
            let fromB = try await self.nextEventWithAck(b)
            #expect(fromA.packet == #"["test:ping",{"nonce":3}]"#)
            try await a.send("43\(fromA.id)[{\"nonce\":3,\"status\":\"ok\"}]")
            try await b.send("43\(fromB.id)[{\"nonce\":\"three\"}]")
            let result = try await pending
            #expect(result.answers == [sidA: TypedPingAck(nonce: 3, status: "ok")])
            #expect(result.missing[sidB]?.code == .invalidAnswer)
            #expect(result.missing[sidB]?.answerError?.pathDescription == "$.nonce")
            for client in [a, b] { await client.close() }
        }
    }

    @Test func cancellingTheCallDropsTheWaitingAcks() async throws {
        try await self.base.withServer { server, port, _, group in
            let (a, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let gateway = server.gateway
            let task = Task { try await gateway.broadcastWithAck("q", arguments: [], timeout: .seconds(600)) }
            let fromA = try await self.nextEventWithAck(a)
            task.cancel()
            await #expect(throws: CancellationError.self) { _ = try await task.value }
            // The late answer is ignored and the session stays up.
            try await a.send("43\(fromA.id)[1]")
            try await a.send(#"4277["echo","still here"]"#)
            #expect(try await a.nextText() == #"4377["still here"]"#)
            await a.close()
        }
    }
}

/// A broadcast with acks on a clustered server: it asks this server's clients only and names this server.
@Suite(.serialized) struct BroadcastAckClusterTests {
    let cluster = ClusterTests()

    @Test func aClusteredServerAsksEveryServersClientsAndNamesEachServerByHostID() async throws {
        let redis = try await RedisServerProcess.start()
        let channel = ClusterTests.channelName()
        let a = try await self.cluster.startNode(redisURL: redis.urlString, channel: channel)
        let b = try await self.cluster.startNode(redisURL: redis.urlString, channel: channel)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await self.cluster.waitSubscribed([a, b])
            let (clientA, sidA) = try await self.cluster.connect(a, group: group)
            let (clientB, sidB) = try await self.cluster.connect(b, group: group)
            async let pending = a.server.gateway.broadcastWithAck("q", arguments: [], timeout: .seconds(30))
            for (client, answer) in [(clientA, 1), (clientB, 2)] {
                let asked = try await client.nextText()
                let ackID = asked.dropFirst(2).prefix(while: { $0.isNumber })
                #expect(asked == "42\(ackID)[\"q\"]")
                try await client.send("43\(ackID)[\(answer)]")
            }
            let result = try await pending
            #expect(result.answers == [sidA: [1], sidB: [2]])
            #expect(result.missing.isEmpty)
            #expect(result.isComplete)
            let hostA = try #require((a.server.gateway.cluster as? RedisClusterAdapter)?.channel.hostID)
            let hostB = try #require((b.server.gateway.cluster as? RedisClusterAdapter)?.channel.hostID)
            #expect(result.servers == [hostA, hostB])
            // `local` asks this server's clients only.
            async let localOnly = a.server.gateway.local.broadcastWithAck("l", arguments: [], timeout: .seconds(30))
            let asked = try await clientA.nextText()
            try await clientA.send("43\(asked.dropFirst(2).prefix(while: { $0.isNumber }))[3]")
            #expect(try await localOnly.answers == [sidA: [3]])
            await a.server.gateway.emit("after", arguments: [], to: .broadcast, options: EmitOptions())
            #expect(try await clientB.nextText() == #"42["after"]"#)
            await clientA.close()
            await clientB.close()
        } catch {
            try? await a.server.shutdown()
            try? await b.server.shutdown()
            try? await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        try await a.server.shutdown()
        try await b.server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }
}
