import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayServer
import Testing

/// Records what server-side handlers saw, for assertions.
final class Recorder: Sendable {
    private struct State {
        var connections: [String: SocketConnection] = [:]
        var events: [String] = []
        var disconnects: [(sid: String, reason: SocketDisconnectReason)] = []
    }
    private let state = NIOLockedValueBox(State())

    func connected(_ connection: SocketConnection) {
        self.state.withLockedValue { $0.connections[connection.id] = connection }
    }
    func record(_ event: String) { self.state.withLockedValue { $0.events.append(event) } }
    func disconnected(_ sid: String, _ reason: SocketDisconnectReason) {
        self.state.withLockedValue { $0.disconnects.append((sid, reason)) }
    }
    func connection(_ sid: String) -> SocketConnection? { self.state.withLockedValue { $0.connections[sid] } }
    var events: [String] { self.state.withLockedValue { $0.events } }
    func disconnectReason(_ sid: String) -> SocketDisconnectReason? {
        self.state.withLockedValue { $0.disconnects.first(where: { $0.sid == sid })?.reason }
    }

    /// Polls (bounded) until `condition` holds: 1,500 polls, 15 s or more on a loaded machine.
    func waitUntil(_ condition: @escaping @Sendable (Recorder) -> Bool) async throws {
        for _ in 0..<1500 {
            if condition(self) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestClientError(description: "server-side condition not met in time")
    }
}

@Suite(.serialized) struct SocketServerEndToEndTests {
    static let secret = "end-to-end-secret-0123456789abcdef"

    /// Starts a server on 127.0.0.1:0 with echo-style handlers on `/` and `/custom`, runs `body`, shuts down.
    func withServer(
        authenticator: (any SocketAuthenticator)? = nil,
        connectTimeout: Duration = .seconds(10),
        _ body: (SocketServer, Int, Recorder, any EventLoopGroup) async throws -> Void
    ) async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        let server = SocketServer(
            configuration: SocketServerConfiguration(port: 0, connectTimeout: connectTimeout, eventLoopThreads: 2)
                .anonymous,
            authenticator: authenticator,
            logger: logger
        )
        let recorder = Recorder()
        for name in ["/", "/custom"] {
            let namespace = server.namespace(name)
            namespace.onConnect { connection in
                recorder.connected(connection)
                connection.emit("welcome", .string(connection.id))
            }
            namespace.onDisconnect { connection, reason in
                recorder.disconnected(connection.id, reason)
            }
            namespace.on("echo") { _, arguments, ack in
                ack?.send(arguments)
            }
            namespace.on("message") { connection, arguments, _ in
                connection.emit("message-back", arguments: arguments)
            }
            namespace.on("seq") { _, arguments, ack in
                // Yield between steps: a later event must still wait for this one.
                await Task.yield()
                recorder.record("seq \(arguments.first?.intValue ?? -1)")
                await Task.yield()
                ack?()
            }
        }
        try await server.whileStarted { port, clients in try await body(server, port, recorder, clients) }
    }

    @Test func connectReplyPrecedesEventsAndNamespacesAreChecked() async throws {
        try await self.withServer { _, port, recorder, group in
            let (client, sid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            #expect(connection.namespace == "/")
            #expect(await connection.rooms() == [sid])

            try await client.send("40/custom,")
            let custom = try await client.nextText()
            #expect(custom.hasPrefix("40/custom,{\"sid\":\""))
            #expect(try await client.nextText().hasPrefix("42/custom,[\"welcome\","))

            try await client.send("40/random")
            #expect(try await client.nextText() == #"44/random,{"message":"Invalid namespace"}"#)
            await client.close()
        }
    }

    @Test func authenticatorRefusesThenAccepts() async throws {
        try await self.withServer(authenticator: try JWTAuthenticator(secret: Self.secret)) {
            _,
            port,
            recorder,
            group in
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await client.send(#"40{"token":"not-a-jwt"}"#)
            #expect(try await client.nextText() == #"44{"message":"Unauthorized"}"#)
            try await client.send("40")
            #expect(try await client.nextText() == #"44{"message":"Unauthorized"}"#)
            await client.close()

            let (alice, sid) = try await TestWebSocketClient.connectWelcomed(
                port: port,
                group: group,
                auth: try await TestTokens.auth(user: "alice", secret: Self.secret)
            )
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            #expect(connection.user?.id == "alice")
            #expect(await connection.rooms() == [sid, "user:alice"])
            await alice.close()
        }
    }

    @Test func eventWithAckAndArrivalOrder() async throws {
        try await self.withServer { _, port, recorder, group in
            let (client, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await client.send(#"427["echo",1,"2",{"3":[true]}]"#)
            #expect(try await client.nextText() == #"437[1,"2",{"3":[true]}]"#)
            try await client.send(#"42["message","hello"]"#)
            #expect(try await client.nextText() == #"42["message-back","hello"]"#)

            for index in 1...5 {
                try await client.send("42\(index)[\"seq\",\(index)]")
            }
            for index in 1...5 {
                #expect(try await client.nextText() == "43\(index)[]")
            }
            #expect(recorder.events == ["seq 1", "seq 2", "seq 3", "seq 4", "seq 5"])
            await client.close()
        }
    }

    @Test func binaryEventAndBinaryAck() async throws {
        try await self.withServer { _, port, _, group in
            let (client, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await client.send(#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
            try await client.send(binary: [1, 2, 3])
            try await client.send(binary: [4, 5, 6])
            #expect(
                try await client.nextText()
                    == #"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
            )
            #expect(try await client.next() == .binary([1, 2, 3]))
            #expect(try await client.next() == .binary([4, 5, 6]))

            try await client.send(#"451-789["echo",{"_placeholder":true,"num":0}]"#)
            try await client.send(binary: [9, 8])
            #expect(try await client.nextText() == #"461-789[{"_placeholder":true,"num":0}]"#)
            #expect(try await client.next() == .binary([9, 8]))

            // A binary frame nobody announced is a protocol error: the session closes.
            try await client.send(binary: [1])
            try await client.waitForClose()
        }
    }

    @Test func emitToUserReachesOnlyThatUsersSockets() async throws {
        try await self.withServer(authenticator: try JWTAuthenticator(secret: Self.secret)) { server, port, _, group in
            let (alice1, _) = try await TestWebSocketClient.connectWelcomed(
                port: port,
                group: group,
                auth: try await TestTokens.auth(user: "alice", secret: Self.secret)
            )
            let (alice2, _) = try await TestWebSocketClient.connectWelcomed(
                port: port,
                group: group,
                auth: try await TestTokens.auth(user: "alice", secret: Self.secret)
            )
            let (bob, _) = try await TestWebSocketClient.connectWelcomed(
                port: port,
                group: group,
                auth: try await TestTokens.auth(user: "bob", secret: Self.secret)
            )

            let result = await server.gateway.emitToUser("alice", event: "note", data: ["text": "hi"])
            #expect(result == EmitResult(outcome: .delivered, localDeliveries: 2))
            #expect(try await alice1.nextText() == #"42["note",{"text":"hi"}]"#)
            #expect(try await alice2.nextText() == #"42["note",{"text":"hi"}]"#)

            let marker = await server.gateway.broadcast(event: "marker", data: 1)
            #expect(marker.localDeliveries == 3)
            #expect(try await bob.nextText() == #"42["marker",1]"#)
            #expect(try await alice1.nextText() == #"42["marker",1]"#)

            let nobody = await server.gateway.emitToUser("carol", event: "note", data: "x")
            #expect(nobody == EmitResult(outcome: .delivered, localDeliveries: 0))
            for client in [alice1, alice2, bob] { await client.close() }
        }
    }

    @Test func broadcastWithExcludingAndNamespaces() async throws {
        try await self.withServer { server, port, _, group in
            let (first, firstSid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (second, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            let (third, _) = try await TestWebSocketClient.connectWelcomed(
                port: port,
                group: group,
                namespace: "/custom"
            )

            let result = await server.gateway.broadcast(event: "news", data: "n", excluding: [firstSid])
            #expect(result.localDeliveries == 1)
            #expect(try await second.nextText() == #"42["news","n"]"#)

            let custom = await server.gateway.broadcast(event: "news", data: "c", namespace: "/custom")
            #expect(custom.localDeliveries == 1)
            #expect(try await third.nextText() == #"42/custom,["news","c"]"#)

            let direct = await server.gateway.emit(
                "direct",
                arguments: [1, 2],
                to: .room(firstSid),
                options: EmitOptions()
            )
            #expect(direct.localDeliveries == 1)
            #expect(try await first.nextText() == #"42["direct",1,2]"#)
            for client in [first, second, third] { await client.close() }
        }
    }

    @Test func gatewayRoomOperationsAndServerDisconnect() async throws {
        try await self.withServer { server, port, recorder, group in
            let (client, sid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            #expect(await server.gateway.joinRoom(sid, room: "blue").outcome == .delivered)
            #expect(await server.gateway.emitToRoom("blue", event: "b", data: 1).localDeliveries == 1)
            #expect(try await client.nextText() == #"42["b",1]"#)
            #expect(await server.gateway.leaveRoom(sid, room: "blue").outcome == .delivered)
            #expect(await server.gateway.emitToRoom("blue", event: "b", data: 2).localDeliveries == 0)
            await server.gateway.joinRoom(sid, room: "blue")
            #expect(await server.gateway.closeRoom("blue", namespace: "/").localDeliveries == 1)
            #expect(await server.gateway.emitToRoom("blue", event: "b", data: 3).localDeliveries == 0)
            #expect(await server.gateway.joinRoom("no-such-sid", room: "blue").outcome == .failed)

            #expect(await server.gateway.disconnect(sid, namespace: "/").outcome == .delivered)
            #expect(try await client.nextText() == "41")
            try await recorder.waitUntil { $0.disconnectReason(sid) == .serverNamespaceDisconnect }
            #expect(await server.gateway.emitToRoom(sid, event: "gone", data: 1).localDeliveries == 0)
            #expect(await server.gateway.disconnect(sid, namespace: "/").outcome == .failed)
            await client.close()
        }
    }

    @Test func serverEmitWithAckAnswerTimeoutAndDisconnect() async throws {
        try await self.withServer { _, port, recorder, group in
            let (client, sid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))

            async let answer = connection.emitWithAck("question", arguments: [1], timeout: .seconds(10))
            #expect(try await client.nextText() == #"420["question",1]"#)
            try await client.send(#"430["answer",{"ok":true}]"#)
            #expect(try await answer == ["answer", ["ok": true]])

            await #expect(throws: SocketAckError.self) {
                _ = try await connection.emitWithAck("unanswered", arguments: [], timeout: .milliseconds(50))
            }
            #expect(try await client.nextText() == #"421["unanswered"]"#)
            // The late answer is ignored and the session stays up.
            try await client.send(#"431[]"#)

            async let pending = connection.emitWithAck("never", arguments: [], timeout: .seconds(10))
            #expect(try await client.nextText() == #"422["never"]"#)
            await client.close()
            do {
                _ = try await pending
                Issue.record("emitWithAck returned after the client went away")
            } catch let error as SocketAckError {
                #expect(error.code == .disconnected)
            }
            try await recorder.waitUntil { $0.disconnectReason(sid) != nil }
            await #expect(throws: SocketAckError.self) {
                _ = try await connection.emitWithAck("late", arguments: [], timeout: .seconds(1))
            }
        }
    }

    @Test func protocolErrorsCloseOnlyThatSession() async throws {
        try await self.withServer { _, port, _, group in
            let (healthy, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            for bad in ["4abc", "42{}", #"42abc["echo",1]"#, #"44{"message":"x"}"#] {
                let (client, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
                try await client.send(bad)
                try await client.waitForClose()
            }
            try await healthy.send(#"421["echo","still here"]"#)
            #expect(try await healthy.nextText() == #"431["still here"]"#)
            await healthy.close()
        }
    }

    @Test func clientNamespaceDisconnectKeepsTheSession() async throws {
        try await self.withServer { _, port, recorder, group in
            let (client, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await client.send("40/custom")
            let reply = try await client.nextText()
            let customSid = String(reply.dropFirst("40/custom,{\"sid\":\"".count).dropLast(2))
            #expect(try await client.nextText() == "42/custom,[\"welcome\",\"\(customSid)\"]")
            try await client.send("41/custom")
            try await recorder.waitUntil { $0.disconnectReason(customSid) == .clientNamespaceDisconnect }
            // Events to a namespace the client left are ignored; `/` still works.
            try await client.send(#"42/custom,5["echo",1]"#)
            try await client.send(#"426["echo",2]"#)
            #expect(try await client.nextText() == "436[2]")
            await client.close()
        }
    }

    @Test func connectTimeoutClosesTheSession() async throws {
        try await self.withServer(connectTimeout: .milliseconds(100)) { _, port, _, group in
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await client.waitForClose()
        }
    }

    @Test func fanOutKeepsOrderAndForgetsClientsThatLeave() async throws {
        try await self.withServer { server, port, recorder, group in
            var clients: [(TestWebSocketClient, String)] = []
            for _ in 0..<8 {
                clients.append(try await TestWebSocketClient.connectWelcomed(port: port, group: group))
            }
            for index in 0..<50 {
                let result = await server.gateway.broadcast(event: "tick", data: .int(Int64(index)))
                if index <= 25 {
                    #expect(result.localDeliveries == 8)
                } else {
                    // Closing clients leave as their close is processed.
                    #expect((4...8).contains(result.localDeliveries))
                }
                if index == 25 {
                    // Half the clients go away in the middle of the stream.
                    for (client, _) in clients[4...] { await client.close() }
                }
            }
            for (client, _) in clients[..<4] {
                for index in 0..<50 {
                    #expect(try await client.nextText() == "42[\"tick\",\(index)]")
                }
            }
            for (_, sid) in clients[4...] {
                try await recorder.waitUntil { $0.disconnectReason(sid) != nil }
            }
            #expect(await server.gateway.broadcast(event: "tick", data: "end").localDeliveries == 4)
            for (client, _) in clients[..<4] { await client.close() }
        }
    }

    @Test func longPollingSession() async throws {
        try await self.withServer { _, port, _, group in
            let open = try await httpRequest(
                port: port,
                method: "GET",
                path: "/socket.io/?EIO=4&transport=polling",
                group: group
            )
            #expect(open.status == 200)
            let handshake = try JSONValue.parse(String(open.body.dropFirst()))
            let sid = try #require(handshake["sid"]?.stringValue)
            let url = "/socket.io/?EIO=4&transport=polling&sid=\(sid)"
            #expect(try await httpRequest(port: port, method: "POST", path: url, body: "40", group: group).body == "ok")
            let connected = try await httpRequest(port: port, method: "GET", path: url, group: group)
            let records = connected.body.split(separator: "\u{1e}").map(String.init)
            #expect(records.count == 2)
            #expect(records.first?.hasPrefix("40{\"sid\":\"") == true)
            #expect(records.last?.hasPrefix("42[\"welcome\",") == true)
            #expect(
                try await httpRequest(port: port, method: "POST", path: url, body: #"423["echo","p"]"#, group: group)
                    .body == "ok"
            )
            #expect(try await httpRequest(port: port, method: "GET", path: url, group: group).body == #"433["p"]"#)
        }
    }

    @Test func connectDuringTheUpgradeIsAnsweredOverPollingBeforeItCompletes() async throws {
        // socket.io-client's default mode (polling, then upgrade): the CONNECT is POSTed while the WebSocket is
        // being probed. Its reply and what onConnect emits go over polling at once, rather than waiting for `5`;
        // the WebSocket then carries only what comes after, so nothing arrives twice or not at all.
        try await self.withServer { _, port, _, group in
            let handshake = "/socket.io/?EIO=4&transport=polling"
            let open = try await httpRequest(port: port, method: "GET", path: handshake, group: group)
            let sid = try #require(try JSONValue.parse(String(open.body.dropFirst()))["sid"]?.stringValue)
            let url = "/socket.io/?EIO=4&transport=polling&sid=\(sid)"
            let ws = try await TestWebSocketClient.connect(
                port: port,
                path: "/socket.io/?EIO=4&transport=websocket&sid=\(sid)",
                group: group
            )
            try await ws.send("2probe")
            #expect(try await ws.nextText() == "3probe")
            // The client's long-poll and its CONNECT, in either order.
            async let poll = httpRequest(port: port, method: "GET", path: url, group: group)
            #expect(try await httpRequest(port: port, method: "POST", path: url, body: "40", group: group).body == "ok")
            var records = try await poll.body.split(separator: "\u{1e}").map(String.init)
            #expect(records.first?.hasPrefix("40{\"sid\":\"") == true, "\(records)")
            // onConnect's emit follows on the same GET or on the next ones (noops, "6", until the client pauses).
            for _ in 0..<5 where !records.contains(where: { $0.hasPrefix("42[\"welcome\",") }) {
                let body = try await httpRequest(port: port, method: "GET", path: url, group: group).body
                records += body.split(separator: "\u{1e}").map(String.init).filter { $0 != "6" }
            }
            let connectSid = try #require(records.first.map { String($0.dropFirst(10).dropLast(2)) })
            #expect(records == ["40{\"sid\":\"\(connectSid)\"}", "42[\"welcome\",\"\(connectSid)\"]"])
            // The client paused polling: complete the upgrade; the WebSocket carries what follows, and only that.
            #expect(try await httpRequest(port: port, method: "GET", path: url, group: group).body == "6")
            try await ws.send("5")
            try await ws.send(#"421["echo","after"]"#)
            #expect(try await ws.nextText() == #"431["after"]"#)
            #expect(ws.hasNoPendingFrames())
            #expect(try await httpRequest(port: port, method: "GET", path: url, group: group).status == 400)
            await ws.close()
        }
    }
}
