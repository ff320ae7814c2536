import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import SocketGatewayWorker
import Testing

@testable import SocketGatewayServer

/// Connection state recovery and volatile emits through a real server and a raw WebSocket client on 127.0.0.1.
@Suite(.serialized) struct RecoveryAndVolatileTests {
    func withServer(
        recovery: ConnectionStateRecoveryConfiguration? = nil,
        prepare: (SocketServer) -> Void = { _ in },
        _ body: (SocketServer, Int, Recorder, any EventLoopGroup) async throws -> Void
    ) async throws {
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 2).anonymous
        configuration.connectionStateRecovery = recovery
        let server = SocketServer(configuration: configuration, logger: logger)
        prepare(server)
        let recorder = Recorder()
        server.namespace("/").onConnect { connection in
            recorder.connected(connection)
            recorder.record("connected \(connection.id) recovered \(connection.recovered)")
        }
        server.namespace("/").onDisconnect { connection, _ in
            recorder.record("disconnected \(connection.id)")
        }
        try await server.whileStarted { port, clients in try await body(server, port, recorder, clients) }
    }

    /// The event packet's arguments.
    func arguments(_ text: String) throws -> [JSONValue] {
        #expect(text.hasPrefix("42["), "event: \(text)")
        guard case .array(let payload) = try JSONValue.parse(String(text.dropFirst(2))) else { return [] }
        return Array(payload.dropFirst())
    }

    @Test func volatileIsDroppedWhileSomethingWaitsForTheSocketAndSentOtherwise() async throws {
        try await self.withServer { server, port, recorder, group in
            let (client, reply) = try await TestWebSocketClient.connectSocketIO(port: port, group: group)
            let sid = try #require(reply["sid"]?.stringValue)
            #expect(reply["pid"] == nil, "no pid without recovery")
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))

            // Nothing waits: a volatile emit goes out.
            connection.volatile.emit("v", 1)
            #expect(try await client.nextText() == #"42["v",1]"#)

            // In one event-loop turn: a regular emit is queued for the socket (not flushed yet), so the volatile
            // one after it is dropped, not queued; the regular one after that still goes out.
            try await connection.eventLoop.submit {
                connection.emit("regular", arguments: [1])
                connection.volatile.emit("v", 2)
                connection.emit("regular", arguments: [2])
            }.get()
            #expect(try await client.nextText() == #"42["regular",1]"#)
            #expect(try await client.nextText() == #"42["regular",2]"#)

            // Through the gateway to a room, volatile: the idle client gets it.
            var options = EmitOptions()
            options.volatile = true
            let result = await server.gateway.emit("v", arguments: [3], to: .room(sid), options: options)
            #expect(result.localDeliveries == 1)
            #expect(try await client.nextText() == #"42["v",3]"#)
            #expect(client.hasNoPendingFrames())
            await client.close()
        }
    }

    @Test func aLostSessionIsRecoveredWithItsRoomsAndMissedEventsOnce() async throws {
        try await self.withServer(recovery: ConnectionStateRecoveryConfiguration()) { server, port, recorder, group in
            let (client, reply) = try await TestWebSocketClient.connectSocketIO(port: port, group: group)
            let sid = try #require(reply["sid"]?.stringValue)
            let pid = try #require(reply["pid"]?.stringValue)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            await connection.join("blue")
            connection.emit("hello", arguments: [1])
            let hello = try self.arguments(try await client.nextText())
            #expect(hello.first == 1)
            let offset = try #require(hello.last?.stringValue, "an offset as the last argument")

            // The transport is lost; emits meanwhile go to the log.
            await client.close()
            try await recorder.waitUntil { $0.events.contains("disconnected \(sid)") }
            await server.gateway.emit("news", arguments: [1], to: .room("blue"), options: EmitOptions())
            await server.gateway.emit("news", arguments: [2], to: .room("red"), options: EmitOptions())
            await server.gateway.emit("news", arguments: [3], to: .broadcast, options: EmitOptions())

            let auth = #"{"pid":"\#(pid)","offset":"\#(offset)"}"#
            let (again, replyAgain) = try await TestWebSocketClient.connectSocketIO(
                port: port,
                group: group,
                auth: auth
            )
            #expect(replyAgain["sid"]?.stringValue == sid)
            #expect(replyAgain["pid"]?.stringValue == pid)
            #expect(try self.arguments(try await again.nextText()).first == 1)
            #expect(try self.arguments(try await again.nextText()).first == 3)
            try await recorder.waitUntil { $0.events.contains("connected \(sid) recovered true") }
            let recovered = try #require(recorder.connection(sid))
            #expect(await recovered.rooms() == [sid, "blue"])
            await server.gateway.emit("news", arguments: [4], to: .room("blue"), options: EmitOptions())
            #expect(try self.arguments(try await again.nextText()).first == 4)
            #expect(again.hasNoPendingFrames())

            // Lost again: the recovered session is kept again under the same pid; the client's latest offset
            // leaves nothing to replay.
            await server.gateway.emit("news", arguments: [5], to: .room("blue"), options: EmitOptions())
            let five = try self.arguments(try await again.nextText())
            #expect(five.first == 5, "news 4 came once, then news 5")
            let latest = try #require(five.last?.stringValue)
            await again.close()
            try await recorder.waitUntil { $0.events.filter { $0 == "disconnected \(sid)" }.count == 2 }
            let latestAuth = #"{"pid":"\#(pid)","offset":"\#(latest)"}"#
            let (third, replyThird) = try await TestWebSocketClient.connectSocketIO(
                port: port,
                group: group,
                auth: latestAuth
            )
            #expect(replyThird["sid"]?.stringValue == sid)
            try await recorder.waitUntil { $0.events.filter { $0 == "connected \(sid) recovered true" }.count == 2 }
            #expect(third.hasNoPendingFrames())
            await third.close()

            // A pid nobody kept: a fresh session with a new sid and pid.
            let unknownAuth = #"{"pid":"nobody","offset":"\#(latest)"}"#
            let (fourth, replyFourth) = try await TestWebSocketClient.connectSocketIO(
                port: port,
                group: group,
                auth: unknownAuth
            )
            let fourthSID = try #require(replyFourth["sid"]?.stringValue)
            #expect(fourthSID != sid)
            #expect(replyFourth["pid"]?.stringValue != pid)
            try await recorder.waitUntil { $0.events.contains("connected \(fourthSID) recovered false") }
            await fourth.close()
        }
    }

    @Test func aFloodToDisconnectedSessionsStaysInTheLogBoundsAndIsGivenBackAfterTheWindow() async throws {
        // A window long enough for ten connects on a loaded machine, short enough to wait out.
        var recovery = ConnectionStateRecoveryConfiguration(maxDisconnectionDuration: .seconds(3))
        recovery.maxPackets = 200
        recovery.maxPacketBytes = 64 << 10
        try await self.withServer(recovery: recovery) { server, port, recorder, group in
            let state = try #require(server.gateway.shards.recovery)
            // Ten clients in the room "flood" lose their transport: their sessions are kept, the room held present.
            for _ in 0..<10 {
                let (client, reply) = try await TestWebSocketClient.connectSocketIO(port: port, group: group)
                let sid = try #require(reply["sid"]?.stringValue)
                try await recorder.waitUntil { $0.connection(sid) != nil }
                try await #require(recorder.connection(sid)).join("flood")
                await client.close()
                try await recorder.waitUntil { $0.events.contains("disconnected \(sid)") }
            }
            // All ten kept, unless a slow machine let the first ones' window end already (the flood below then
            // still needs one).
            #expect((1...10).contains(state.held.sessions), "\(state.held)")
            #expect(server.gateway.shards.presence.snapshot.isPresent(namespace: "/", room: "flood"))

            // 5,000 emits of about 1 KiB to the room: the log never holds more than its bounds.
            let payload = JSONValue.string(String(repeating: "x", count: 1000))
            var most = (packets: 0, bytes: 0)
            for index in 0..<5_000 {
                await server.gateway.emit(
                    "flood",
                    arguments: [.int(Int64(index)), payload],
                    to: .room("flood"),
                    options: EmitOptions()
                )
                let held = state.held
                most = (max(most.packets, held.packets), max(most.bytes, held.bytes))
            }
            #expect(most.packets <= 200 && most.packets > 0, "\(most)")
            #expect(most.bytes <= 64 << 10, "\(most)")

            // Nothing else happens: after the window every session and packet is given back, and the room is no
            // longer held present (bounded wait; no emit or connect calls in).
            for _ in 0..<1_000 where state.held != (0, 0, 0) {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(state.held == (0, 0, 0))
            #expect(!server.gateway.shards.presence.snapshot.isPresent(namespace: "/", room: "flood"))
        }
    }

    /// What the test middleware sets: the `name` of the CONNECT payload.
    enum Name: SocketDataKey { typealias Value = String }
    /// What a handler sets during the session.
    enum Score: SocketDataKey { typealias Value = Int }

    /// A lost session comes back with its data (what handlers set included); the middleware runs again unless
    /// `skipMiddlewares` is on, and then a client that would be refused still recovers (its user and data as
    /// they were), while a failed recovery runs the middleware and is refused.
    @Test(arguments: [false, true])
    func socketDataIsRestoredAndMiddlewaresAreSkippedOnlyWhenAsked(skip: Bool) async throws {
        var recovery = ConnectionStateRecoveryConfiguration()
        recovery.skipMiddlewares = skip
        let runs = NIOLockedValueBox(0)
        let prepare: (SocketServer) -> Void = { server in
            server.use { request in
                runs.withLockedValue { $0 += 1 }
                if request.handshake.auth?["refuse"] != nil { throw SocketConnectRefusal("go away") }
                request.data[Name.self] = request.handshake.auth?["name"]?.stringValue
            }
        }
        try await self.withServer(recovery: recovery, prepare: prepare) { server, port, recorder, group in
            let (client, reply) = try await TestWebSocketClient.connectSocketIO(
                port: port,
                group: group,
                auth: #"{"name":"ada"}"#
            )
            let sid = try #require(reply["sid"]?.stringValue)
            let pid = try #require(reply["pid"]?.stringValue)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            #expect(connection.data[Name.self] == "ada")
            connection.updateData { $0[Score.self] = 7 }
            connection.emit("hello", arguments: [1])
            let offset = try #require(try self.arguments(try await client.nextText()).last?.stringValue)
            await client.close()
            try await recorder.waitUntil { $0.events.contains("disconnected \(sid)") }
            #expect(runs.withLockedValue { $0 } == 1)

            // Back in time, with a payload the middleware refuses when it runs.
            let auth = #"{"pid":"\#(pid)","offset":"\#(offset)","name":"bob","refuse":true}"#
            let (again, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
            try await again.send("40" + auth)
            let replyAgain = try await again.nextText()
            if skip {
                #expect(replyAgain == #"40{"sid":"\#(sid)","pid":"\#(pid)"}"#)
                try await recorder.waitUntil { $0.events.filter { $0 == "connected \(sid) recovered true" }.count == 1 }
                let recovered = try #require(recorder.connection(sid))
                #expect(recovered.data[Name.self] == "ada", "the data as it was, not rebuilt")
                #expect(recovered.data[Score.self] == 7)
                #expect(runs.withLockedValue { $0 } == 1, "the middleware did not run")
            } else {
                #expect(replyAgain == #"44{"message":"go away"}"#)
                #expect(runs.withLockedValue { $0 } == 2)
            }
            await again.close()

            // Without skipMiddlewares: a recovery the middleware accepts restores the data under what it set.
            if !skip {
                let goodAuth = #"{"pid":"\#(pid)","offset":"\#(offset)","name":"bob"}"#
                let (third, replyThird) = try await TestWebSocketClient.connectSocketIO(
                    port: port,
                    group: group,
                    auth: goodAuth
                )
                #expect(replyThird["sid"]?.stringValue == sid)
                try await recorder.waitUntil { $0.events.contains("connected \(sid) recovered true") }
                let recovered = try #require(recorder.connection(sid))
                #expect(recovered.data[Name.self] == "bob", "what the middleware set wins")
                #expect(recovered.data[Score.self] == 7, "what a handler set is restored")
                #expect(runs.withLockedValue { $0 } == 3)
                await third.close()
            } else {
                // A pid nobody kept: the recovery fails, so the middleware runs (and refuses).
                let unknownAuth = #"{"pid":"nobody","offset":"\#(offset)","refuse":true}"#
                let (fourth, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
                try await fourth.send("40" + unknownAuth)
                #expect(try await fourth.nextText() == #"44{"message":"go away"}"#)
                #expect(runs.withLockedValue { $0 } == 2)
                await fourth.close()
            }
        }
    }

    @Test func skipMiddlewaresComesFromTheEnvironmentAndNeedsAWindow() throws {
        let window = SocketServerConfiguration.EnvironmentKey.recoveryWindow
        let skip = SocketServerConfiguration.EnvironmentKey.recoverySkipMiddlewares
        let on = try SocketServerConfiguration(environment: [window: "5", skip: "on"]).connectionStateRecovery
        #expect(on?.skipMiddlewares == true)
        let off = try SocketServerConfiguration(environment: [window: "5", skip: "off"]).connectionStateRecovery
        #expect(off?.skipMiddlewares == false)
        #expect(
            try SocketServerConfiguration(environment: [window: "5"]).connectionStateRecovery?.skipMiddlewares == false
        )
        #expect(try SocketServerConfiguration(environment: [skip: "off"]).connectionStateRecovery == nil)
        for bad in [[window: "5", skip: "maybe"], [skip: "on"], [window: "0", skip: "on"]] {
            #expect(throws: SocketServerConfigurationError.self, "\(bad)") {
                try SocketServerConfiguration(environment: bad)
            }
        }
    }

    @Test func theWindowComesFromTheEnvironmentAndBadValuesAreNamed() throws {
        let key = SocketServerConfiguration.EnvironmentKey.recoveryWindow
        #expect(try SocketServerConfiguration(environment: [:]).connectionStateRecovery == nil)
        #expect(try SocketServerConfiguration(environment: [key: "0"]).connectionStateRecovery == nil)
        let on = try SocketServerConfiguration(environment: [key: "2.5"]).connectionStateRecovery
        #expect(on?.maxDisconnectionDuration == .milliseconds(2500))
        for bad in ["abc", "-1", "86401"] {
            #expect(throws: SocketServerConfigurationError.self, "\(bad)") {
                try SocketServerConfiguration(environment: [key: bad])
            }
        }
        var configuration = SocketServerConfiguration().anonymous
        configuration.connectionStateRecovery = ConnectionStateRecoveryConfiguration(maxDisconnectionDuration: .zero)
        #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
        configuration.connectionStateRecovery = ConnectionStateRecoveryConfiguration()
        configuration.connectionStateRecovery?.maxMissedPackets = 0
        #expect(throws: SocketServerConfigurationError.self) { try configuration.validate() }
    }
}

/// Recovery on a clustered server: emits from a worker over Redis while the client is away are logged (its rooms
/// are held present meanwhile, so the server keeps receiving them) and replayed.
@Suite(.serialized) struct RecoveryOverRedisTests {
    @Test(arguments: [RedisChannelMode.python, .rooms])
    func workerEmitsWhileAwayAreReplayed(mode: RedisChannelMode) async throws {
        let redis = try await RedisServerProcess.start()
        let channel = "socketio-recovery-\(UUID().uuidString.prefix(8))"
        var logger = Logger(label: "socket-gateway.test")
        logger.logLevel = .critical
        var redisConfiguration = SocketServerRedisConfiguration(url: redis.urlString, channel: channel)
        redisConfiguration.mode = mode
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 2, redis: redisConfiguration)
            .anonymous
        configuration.connectionStateRecovery = ConnectionStateRecoveryConfiguration()
        let server = SocketServer(configuration: configuration, logger: logger)
        let recorder = Recorder()
        server.namespace("/").onConnect { connection in recorder.connected(connection) }
        server.namespace("/").onDisconnect { connection, _ in recorder.record("disconnected \(connection.id)") }
        let worker = WorkerSocketGateway(redisURL: redis.urlString, channel: channel, mode: mode, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tests = RecoveryAndVolatileTests()
        do {
            try await server.start()
            let port = try #require(server.localPort)
            for _ in 0..<500 where server.clusterHealth.redisConnected != true {
                try await Task.sleep(for: .milliseconds(10))
            }
            let (client, reply) = try await TestWebSocketClient.connectSocketIO(port: port, group: group)
            let sid = try #require(reply["sid"]?.stringValue)
            let pid = try #require(reply["pid"]?.stringValue)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            await server.gateway.joinRoom(sid, room: "sheet:7", namespace: "/")
            // Delivered live (bounded retries: in room-channel mode the channel may still be subscribing).
            var offset: String?
            for attempt in 0..<50 where offset == nil {
                await worker.emitToRoom("sheet:7", event: "progress", data: .int(Int64(attempt)))
                if case .text(let text)? = try? await client.next(attempts: 20) {
                    offset = try tests.arguments(text).last?.stringValue
                }
            }
            // Emits of earlier attempts still on their way: the last offset is that of the last one received.
            while case .text(let text)? = try? await client.next(attempts: 30) {
                offset = try tests.arguments(text).last?.stringValue
            }
            let last = try #require(offset)
            await client.close()
            try await recorder.waitUntil { $0.events.contains("disconnected \(sid)") }

            // Away: only the kept session is in the room here.
            let recovery = try #require(server.gateway.shards.recovery)
            let logged = recovery.held.packets
            for percent in [50, 100] {
                let result = await worker.emitToRoom("sheet:7", event: "progress", data: .int(Int64(percent)))
                #expect(result.outcome == .published)
            }
            // The worker's emits are published in order; wait (bounded) until both are in the log.
            for _ in 0..<500 where recovery.held.packets < logged + 2 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(recovery.held.packets == logged + 2, "the worker's emits reached the server while it was away")
            let auth = #"{"pid":"\#(pid)","offset":"\#(last)"}"#
            let (again, replyAgain) = try await TestWebSocketClient.connectSocketIO(
                port: port,
                group: group,
                auth: auth
            )
            #expect(replyAgain["sid"]?.stringValue == sid)
            #expect(try tests.arguments(try await again.nextText()).first == 50)
            #expect(try tests.arguments(try await again.nextText()).first == 100)
            await again.close()
        } catch {
            await worker.shutdown(timeout: .seconds(1))
            try? await server.shutdown()
            try await group.shutdownGracefully()
            await redis.stop()
            throw error
        }
        await worker.shutdown(timeout: .seconds(1))
        try await server.shutdown()
        try await group.shutdownGracefully()
        await redis.stop()
    }
}
