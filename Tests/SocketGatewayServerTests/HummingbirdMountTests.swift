import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import SocketGatewayHummingbird
import SocketGatewayServer
import Testing

/// Socket.IO mounted on a Hummingbird application (SocketGatewayHummingbird): the app's own routes and Socket.IO
/// on one port, both transports and the upgrade carried by Hummingbird and hummingbird-websocket.
// One loaded run (load 20) never finished aClientThatNeverReadsIsDroppedAndTheOthersGetEverything: a check failed
// before the test closed its clients, and the app's shutdown then waited for ever on the client that never read
// (the mount could not close its connection). The mount now resets such a connection; `withMountedApp` bounds the
// shutdown on its own, since a time limit cannot end a test whose tasks wait on something cancellation does not reach.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HummingbirdMountTests {
    static let secret = "hummingbird-mount-secret-of-32-bytes-or-more"

    /// Runs a Hummingbird app on 127.0.0.1:0 with a route of its own (`GET /hello`) and a mounted `SocketServer`
    /// (echo-style handlers), as the README shows; runs `body` with the app's port, then shuts the app down, with the
    /// clients `body` left open (a failed check ends `body` early). The app must stop without any help from them:
    /// past 3,000 polls (30 s or more) an issue is recorded and every client connection is closed, which ends
    /// whatever waited on them, so the test ends either way.
    func withMountedApp(
        authenticator: (any SocketAuthenticator)? = nil,
        maxBufferedBytesPerConnection: Int? = nil,
        _ body: (SocketServer, Int, Recorder, any EventLoopGroup) async throws -> Void
    ) async throws {
        var logger = Logger(label: "socket-gateway.hummingbird-test")
        logger.logLevel = .critical
        var configuration = SocketServerConfiguration(eventLoopThreads: 2)
        if authenticator == nil { configuration = configuration.anonymous }
        if let maxBufferedBytesPerConnection {
            configuration.maxBufferedBytesPerConnection = maxBufferedBytesPerConnection
        }
        let socketServer = SocketServer(configuration: configuration, authenticator: authenticator, logger: logger)
        let recorder = Recorder()
        let namespace = socketServer.namespace("/")
        namespace.onConnect { connection in
            recorder.connected(connection)
            connection.emit("welcome", .string(connection.id))
        }
        namespace.onDisconnect { connection, reason in recorder.disconnected(connection.id, reason) }
        namespace.on("echo") { _, arguments, ack in ack?.send(arguments) }

        let router = Router(context: SocketIORequestContext.self)
        router.get("/hello") { _, _ in "hello from the app" }
        router.addSocketIO(socketServer)
        let port = NIOLockedValueBox<Int?>(nil)
        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: router,
                configuration: .init(ws: .socketIO(socketServer))
            ),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            services: [socketServer],
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port } },
            logger: logger
        )
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger)
        )
        let stopped = NIOLockedValueBox(false)
        let clientsOpen = NIOLockedValueBox(true)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { stopped.withLockedValue { $0 = true } }
                try await serviceGroup.run()
            }
            var bound: Int?
            for _ in 0..<500 {
                bound = port.withLockedValue { $0 }
                if bound != nil { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            let failure: (any Error)?
            do {
                try await body(socketServer, try #require(bound, "the app did not start"), recorder, clients)
                failure = nil
            } catch {
                failure = error
            }
            await serviceGroup.triggerGracefulShutdown()
            var polls = 0
            while !stopped.withLockedValue({ $0 }), polls < 3000 {
                try? await Task.sleep(for: .milliseconds(10))
                polls += 1
            }
            if !stopped.withLockedValue({ $0 }) {
                Issue.record("the app did not shut down while clients were still connected")
                clientsOpen.withLockedValue { $0 = false }
                try? await clients.shutdownGracefully()
            }
            try await group.waitForAll()
            if let failure { throw failure }
        }
        if clientsOpen.withLockedValue({ $0 }) { try await clients.shutdownGracefully() }
    }

    /// Connects a client that reads and one that stops reading (its receive buffer 4 KiB), then broadcasts
    /// `broadcasts` messages of 256 KiB, checking that the reader gets each: what does not reach the other client
    /// fills the socket's buffers, then the mount's buffer for its connection.
    /// - Returns: Both clients, and the session id of the one that does not read.
    func connectReaderAndStalledClient(
        server: SocketServer,
        port: Int,
        group: any EventLoopGroup,
        broadcasts: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (reader: TestWebSocketClient, stalled: TestWebSocketClient, stalledSid: String) {
        let (reader, _) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
        let (stalled, stalledSid) = try await TestWebSocketClient.connectWelcomed(
            port: port,
            group: group,
            receiveBufferSize: 4096
        )
        try await stalled.stopReading()
        let payload = String(repeating: "x", count: 256 << 10)
        for index in 0..<broadcasts {
            await server.gateway.broadcast(event: "big", data: .array([.int(Int64(index)), .string(payload)]))
            #expect(
                try await reader.nextText().hasPrefix(#"42["big",[\#(index),"xxx"#),
                sourceLocation: sourceLocation
            )
        }
        return (reader, stalled, stalledSid)
    }

    @Test func appRouteAndLongPollingShareThePort() async throws {
        try await self.withMountedApp { _, port, recorder, group in
            let hello = try await httpRequest(port: port, method: "GET", path: "/hello", group: group)
            #expect(hello.status == 200)
            #expect(hello.body == "hello from the app")

            let open = try await httpRequest(
                port: port,
                method: "GET",
                path: "/socket.io/?EIO=4&transport=polling",
                group: group
            )
            #expect(open.status == 200)
            #expect(open.body.hasPrefix(#"0{"sid":""#), "open: \(open.body)")
            let eioSid = String(open.body.dropFirst(9).prefix(while: { $0 != "\"" }))
            let query = "/socket.io/?EIO=4&transport=polling&sid=\(eioSid)"
            let post = try await httpRequest(port: port, method: "POST", path: query, body: "40", group: group)
            #expect(post.status == 200)
            #expect(post.body == "ok")
            let connected = try await httpRequest(port: port, method: "GET", path: query, group: group)
            #expect(connected.body.hasPrefix(#"40{"sid":""#), "connect: \(connected.body)")
            let sid = String(connected.body.dropFirst(10).prefix(while: { $0 != "\"" }))
            try await recorder.waitUntil { $0.connection(sid) != nil }

            // Client event with an ack, over polling.
            let ask = try await httpRequest(
                port: port,
                method: "POST",
                path: query,
                body: #"421["echo","polled"]"#,
                group: group
            )
            #expect(ask.body == "ok")
            var answers = ""
            for _ in 0..<5 where !answers.contains(#"431["polled"]"#) {
                answers += try await httpRequest(port: port, method: "GET", path: query, group: group).body
            }
            #expect(answers.contains(#"431["polled"]"#), "answers: \(answers)")

            // Engine.IO errors keep their status and body through the mount.
            let badVersion = try await httpRequest(
                port: port,
                method: "GET",
                path: "/socket.io/?EIO=3&transport=polling",
                group: group
            )
            #expect(badVersion.status == 400)
            #expect(badVersion.body == #"{"code":5,"message":"Unsupported protocol version"}"#)
        }
    }

    @Test func limitsAndRefusalsHoldThroughTheMount() async throws {
        try await self.withMountedApp { _, port, recorder, group in
            // A POST over maxPayload (1 MB by default) is refused with 413 and closes its session.
            let open = try await httpRequest(
                port: port,
                method: "GET",
                path: "/socket.io/?EIO=4&transport=polling",
                group: group
            )
            let eioSid = String(open.body.dropFirst(9).prefix(while: { $0 != "\"" }))
            let query = "/socket.io/?EIO=4&transport=polling&sid=\(eioSid)"
            let huge = String(repeating: "x", count: (1 << 20) + 16)
            let tooLarge = try await httpRequest(port: port, method: "POST", path: query, body: huge, group: group)
            #expect(tooLarge.status == 413)
            let afterwards = try await httpRequest(port: port, method: "GET", path: query, group: group)
            #expect(afterwards.status == 400, "the session is closed: \(afterwards)")

            // Another method than GET for a handshake gets Engine.IO's answer, not the router's 404.
            let put = try await httpRequest(
                port: port,
                method: "PUT",
                path: "/socket.io/?EIO=4&transport=polling",
                group: group
            )
            #expect(put.status == 400)
            #expect(put.body == #"{"code":2,"message":"Bad handshake method"}"#)

            // An upgrade for a session that does not exist is refused; the app keeps serving.
            await #expect(throws: TestClientError.self) {
                _ = try await TestWebSocketClient.connect(
                    port: port,
                    path: "/socket.io/?EIO=4&transport=websocket&sid=no-such-session",
                    group: group
                )
            }
            let (client, sid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            await client.close()
        }
    }

    @Test func webSocketEmitAndAckBothWays() async throws {
        try await self.withMountedApp { _, port, recorder, group in
            let (client, sid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await client.send(#"427["echo",1,"2",{"3":[true]}]"#)
            #expect(try await client.nextText() == #"437[1,"2",{"3":[true]}]"#)

            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            async let answer = connection.emitWithAck("question", arguments: [1], timeout: .seconds(10))
            #expect(try await client.nextText() == #"420["question",1]"#)
            try await client.send(#"430["answer",{"ok":true}]"#)
            #expect(try await answer == ["answer", ["ok": true]])

            // A message far over hummingbird-websocket's default frame limit (16 KiB), under maxPayload (1 MB),
            // goes both ways with `.socketIO(server)`'s settings.
            let large = String(repeating: "y", count: 200_000)
            try await client.send("428[\"echo\",\"\(large)\"]")
            #expect(try await client.nextText() == "438[\"\(large)\"]")

            // Binary attachments cross the framework's WebSocket as binary frames.
            try await client.send(#"451-5["echo",{"_placeholder":true,"num":0}]"#)
            try await client.send(binary: [9, 8])
            #expect(try await client.nextText() == #"461-5[{"_placeholder":true,"num":0}]"#)
            #expect(try await client.next() == .binary([9, 8]))
            await client.close()
        }
    }

    @Test func framesQueuedTogetherArriveInOrder() async throws {
        try await self.withMountedApp { _, port, recorder, group in
            let (client, sid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            // Queued back to back (one event-loop tick of the session, mostly): the mount writes them as batches.
            for index in 0..<300 { connection.emit("n", .int(Int64(index))) }
            await connection.disconnect()
            for index in 0..<300 { #expect(try await client.nextText() == #"42["n",\#(index)]"#) }
            #expect(try await client.nextText() == "41")
            await client.close()
        }
    }

    @Test func aClientThatNeverReadsIsDroppedAndTheOthersGetEverything() async throws {
        try await self.withMountedApp(maxBufferedBytesPerConnection: 1 << 20) { server, port, recorder, group in
            // 6 MiB for each client: the one that never reads exceeds its 1 MiB once the socket's buffers are full.
            let (reader, stalled, stalledSid) = try await self.connectReaderAndStalledClient(
                server: server,
                port: port,
                group: group,
                broadcasts: 24
            )
            try await recorder.waitUntil { $0.disconnectReason(stalledSid) != nil }
            #expect(recorder.disconnectReason(stalledSid)?.description == "slow client")
            // Its connection goes too, although it still reads nothing: a close frame could not reach it, so the
            // mount resets the connection (as our own listener does) instead of holding it until the client goes.
            try await stalled.waitForClose(attempts: 1500)
            // The reader is still connected and still gets what is sent.
            await server.gateway.broadcast(event: "after", data: true)
            #expect(try await reader.nextText() == #"42["after",true]"#)
            for client in [reader, stalled] { await client.close() }
        }
    }

    @Test func theAppShutsDownWhileAClientThatNeverReadsIsStillConnected() async throws {
        // Under the limit (64 MiB), so the client is not dropped; the app is shut down with it still connected, a
        // close frame unable to reach it, and its connection unwritable. withMountedApp records an issue if the
        // shutdown waits on it.
        try await self.withMountedApp(maxBufferedBytesPerConnection: 64 << 20) { server, port, recorder, group in
            // 8 MiB: more than the kernel's send buffer (4 MiB at most here) and the client's receive buffer hold.
            let (_, stalled, stalledSid) = try await self.connectReaderAndStalledClient(
                server: server,
                port: port,
                group: group,
                broadcasts: 32
            )
            #expect(recorder.disconnectReason(stalledSid) == nil)
            #expect(!stalled.isClosed)
        }
    }

    @Test func theAppShutsDownWhileAClientThatNeverAnswersTheCloseIsStillConnected() async throws {
        // Nothing waits for this client (its connection stays writable), so the close frame goes out on shutdown,
        // but the client neither answers it nor closes: the close timeout (webSocketCloseTimeout, 5 s) resets the
        // connection. withMountedApp records an issue if the shutdown waits on it.
        try await self.withMountedApp { _, port, recorder, group in
            let (silent, sid) = try await TestWebSocketClient.connectWelcomed(port: port, group: group)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            try await silent.ignoreCloseFrames()
            #expect(!silent.isClosed)
        }
    }

    @Test func upgradeFromLongPollingToWebSocket() async throws {
        try await self.withMountedApp { _, port, _, group in
            let open = try await httpRequest(
                port: port,
                method: "GET",
                path: "/socket.io/?EIO=4&transport=polling",
                group: group
            )
            #expect(open.body.contains(#""upgrades":["websocket"]"#), "open: \(open.body)")
            let eioSid = String(open.body.dropFirst(9).prefix(while: { $0 != "\"" }))
            let query = "/socket.io/?EIO=4&transport=polling&sid=\(eioSid)"
            let post = try await httpRequest(port: port, method: "POST", path: query, body: "40", group: group)
            #expect(post.body == "ok")
            let connected = try await httpRequest(port: port, method: "GET", path: query, group: group)
            #expect(connected.body.hasPrefix(#"40{"sid":""#), "connect: \(connected.body)")

            let socket = try await TestWebSocketClient.connect(
                port: port,
                path: "/socket.io/?EIO=4&transport=websocket&sid=\(eioSid)",
                group: group
            )
            try await socket.send("2probe")
            #expect(try await socket.nextText() == "3probe")
            try await socket.send("5")
            // Upgraded: events now travel over the WebSocket.
            try await socket.send(#"429["echo","upgraded"]"#)
            var reply = try await socket.nextText()
            while reply.hasPrefix("42[\"welcome\"") { reply = try await socket.nextText() }
            #expect(reply == #"439["upgraded"]"#)
            await socket.close()
        }
    }

    @Test func authenticationRefusalAndRoomTargetedGatewayEmits() async throws {
        try await self.withMountedApp(authenticator: try JWTAuthenticator(secret: Self.secret)) {
            server,
            port,
            recorder,
            group in
            let (refused, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await refused.send(#"40{"token":"not-a-jwt"}"#)
            #expect(try await refused.nextText() == #"44{"message":"Unauthorized"}"#)
            await refused.close()

            let (alice, aliceSid) = try await TestWebSocketClient.connectWelcomed(
                port: port,
                group: group,
                auth: try await TestTokens.auth(user: "alice", secret: Self.secret)
            )
            let (bob, _) = try await TestWebSocketClient.connectWelcomed(
                port: port,
                group: group,
                auth: try await TestTokens.auth(user: "bob", secret: Self.secret)
            )
            try await recorder.waitUntil { $0.connection(aliceSid) != nil }
            #expect(recorder.connection(aliceSid)?.user?.id == "alice")

            let toAlice = await server.gateway.emitToUser("alice", event: "note", data: ["text": "hi"])
            #expect(toAlice.localDeliveries == 1)
            #expect(try await alice.nextText() == #"42["note",{"text":"hi"}]"#)

            #expect(await server.gateway.joinRoom(aliceSid, room: "blue").outcome == .delivered)
            #expect(await server.gateway.emitToRoom("blue", event: "b", data: 1).localDeliveries == 1)
            #expect(try await alice.nextText() == #"42["b",1]"#)

            let everyone = await server.gateway.broadcast(event: "marker", data: 2)
            #expect(everyone.localDeliveries == 2)
            // Bob got the broadcast and nothing targeted at alice or the room before it.
            #expect(try await bob.nextText() == #"42["marker",2]"#)
            #expect(try await alice.nextText() == #"42["marker",2]"#)
            for client in [alice, bob] { await client.close() }
        }
    }
}
