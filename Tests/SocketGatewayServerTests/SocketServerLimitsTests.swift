import Foundation
import Logging
import MetricsTestKit
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

/// A gate a handler waits at until the test opens it; no sleeps.
final class TestGate: Sendable {
    private let state = NIOLockedValueBox<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = self.state.withLockedValue { state -> Bool in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// The server's per-client limits, end to end over real sockets on 127.0.0.1.
@Suite(.serialized) struct SocketServerLimitsTests {
    /// A running server and what a test needs to drive and observe it.
    struct Harness {
        var server: SocketServer
        var port: Int
        var recorder: Recorder
        var gate: TestGate
        var group: any EventLoopGroup
        var metrics: TestMetrics
        var logs: NIOLockedValueBox<[CapturingLogHandler.Line]>

        /// The warnings logged so far.
        var warnings: [CapturingLogHandler.Line] { self.logs.withLockedValue { $0.filter { $0.level == .warning } } }

        /// The value of counter `label` with `dimensions` (0 when never incremented).
        func counter(_ label: String, _ dimensions: [(String, String)]) -> Int64 {
            (try? self.metrics.expectCounter(label, dimensions).totalValue) ?? 0
        }

        /// How many clients were closed for exceeding `limit`.
        func limitExceeded(_ limit: String) -> Int64 {
            self.counter("socketgateway_client_limit_exceeded_total", [("limit", limit)])
        }
    }

    /// Starts a server configured by `configure` with handlers on `/`: `block` waits at the gate, `flood` records,
    /// `hold` keeps its ack unanswered, `echo` acks; runs `body`, then opens the gate and shuts down.
    func withServer(
        authenticator: (any SocketAuthenticator)? = nil,
        connectGate: TestGate? = nil,
        _ configure: (inout SocketServerConfiguration) -> Void = { _ in },
        _ body: (Harness) async throws -> Void
    ) async throws {
        let logs = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        let logger = Logger(label: "socket-gateway.test") { _ in CapturingLogHandler(lines: logs) }
        var configuration = SocketServerConfiguration(port: 0, eventLoopThreads: 2).anonymous
        configure(&configuration)
        let metrics = TestMetrics()
        let server = SocketServer(
            configuration: configuration,
            authenticator: authenticator,
            logger: logger,
            httpFallback: nil,
            metricsFactory: metrics
        )
        let recorder = Recorder()
        let gate = TestGate()
        let held = NIOLockedValueBox<[SocketAck]>([])
        let namespace = server.namespace("/")
        namespace.onConnect { connection in
            recorder.connected(connection)
            await connectGate?.wait()
        }
        namespace.onDisconnect { connection, reason in recorder.disconnected(connection.id, reason) }
        namespace.on("block") { _, _, ack in
            recorder.record("blocked")
            await gate.wait()
            recorder.record("unblocked")
            ack?()
        }
        namespace.on("flood") { _, arguments, _ in
            recorder.record("flood \(arguments.first?.intValue ?? -1)")
        }
        namespace.on("hold") { _, _, ack in
            if let ack { held.withLockedValue { $0.append(ack) } }
        }
        namespace.on("echo") { _, arguments, ack in
            ack?.send(arguments)
        }
        try await server.start()
        let port = try #require(server.localPort)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let harness = Harness(
            server: server,
            port: port,
            recorder: recorder,
            gate: gate,
            group: clients,
            metrics: metrics,
            logs: logs
        )
        do {
            try await body(harness)
        } catch {
            gate.open()
            try await server.shutdown()
            try await clients.shutdownGracefully()
            throw error
        }
        gate.open()
        try await server.shutdown()
        try await clients.shutdownGracefully()
    }

    /// Connects a WebSocket client to `/`; returns it and its Socket.IO sid.
    func connect(port: Int, group: any EventLoopGroup, auth: String = "") async throws -> (TestWebSocketClient, String)
    {
        let (client, _) = try await TestWebSocketClient.connectEngineIO(port: port, group: group)
        try await client.send("40" + auth)
        let reply = try await client.nextText()
        #expect(reply.hasPrefix("40{\"sid\":\""), "CONNECT reply: \(reply)")
        return (client, String(reply.dropFirst("40{\"sid\":\"".count).dropLast(2)))
    }

    // MARK: 1. The handler queue is bounded

    @Test func floodWhileTheHandlerWaitsClosesOnlyThatClient() async throws {
        let configure: (inout SocketServerConfiguration) -> Void = { $0.maxQueuedEventsPerConnection = 8 }
        try await self.withServer(configure) { h in
            let (port, recorder, gate, group) = (h.port, h.recorder, h.gate, h.group)
            let (flooder, sid) = try await self.connect(port: port, group: group)
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            try await flooder.send(#"42["block"]"#)
            try await recorder.waitUntil { $0.events.contains("blocked") }

            // Eight events fit in the queue behind the waiting handler.
            for index in 0..<8 {
                try await flooder.send("42[\"flood\",\(index)]")
            }
            try await self.waitUntil("eight queued events") { await connection.queuedEvents().count == 8 }
            #expect(!flooder.isClosed)

            // The ninth closes the client; the rest of the flood goes nowhere.
            for index in 8..<200 {
                try? await flooder.send("42[\"flood\",\(index)]")
            }
            try await flooder.waitForClose()
            #expect(await connection.queuedEvents().count <= 8)

            // Another client is served while the first one's handler still waits.
            let (other, _) = try await self.connect(port: port, group: group)
            try await other.send(#"421["echo","still served"]"#)
            #expect(try await other.nextText() == #"431["still served"]"#)

            // Once the handler returns, the queued events are dropped, not handled, and onDisconnect says why.
            gate.open()
            try await recorder.waitUntil { $0.disconnectReason(sid) != nil }
            #expect(recorder.disconnectReason(sid) == .eventQueueFull)
            #expect(h.limitExceeded("event queue full") == 1)
            #expect(recorder.events == ["blocked", "unblocked"])
            #expect(await connection.queuedEvents().count == 0)
            await other.close()
        }
    }

    @Test func eventsWithinTheQueueAreAllHandledInOrder() async throws {
        let configure: (inout SocketServerConfiguration) -> Void = { $0.maxQueuedEventsPerConnection = 8 }
        try await self.withServer(configure) { h in
            let (port, recorder, gate, group) = (h.port, h.recorder, h.gate, h.group)
            let (client, _) = try await self.connect(port: port, group: group)
            try await client.send(#"427["block"]"#)
            try await recorder.waitUntil { $0.events.contains("blocked") }
            // Exactly as many as may wait: seven floods and an echo.
            for index in 0..<7 {
                try await client.send("42[\"flood\",\(index)]")
            }
            try await client.send(#"428["echo","last"]"#)
            gate.open()
            #expect(try await client.nextText() == "437[]")
            #expect(try await client.nextText() == #"438["last"]"#)
            #expect(recorder.events == ["blocked", "unblocked"] + (0..<7).map { "flood \($0)" })
            #expect(!client.isClosed)
            #expect(h.limitExceeded("event queue full") == 0)
            await client.close()
        }
    }

    @Test func queuedBytesAreBoundedToo() async throws {
        let configure: (inout SocketServerConfiguration) -> Void = { $0.maxQueuedEventBytesPerConnection = 1000 }
        try await self.withServer(configure) { h in
            let (port, recorder, group) = (h.port, h.recorder, h.group)
            let (client, sid) = try await self.connect(port: port, group: group)
            try await client.send(#"42["block"]"#)
            try await recorder.waitUntil { $0.events.contains("blocked") }
            let big = String(repeating: "x", count: 400)
            // Two of about 415 bytes fit in 1000 bytes; the third does not.
            for index in 0..<3 {
                try await client.send("42[\"flood\",\(index),\"\(big)\"]")
            }
            try await client.waitForClose()
            try await recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(recorder.connection(sid))
            let queued = await connection.queuedEvents()
            #expect(queued.count == 2)
            #expect(queued.bytes <= 1000)
            #expect(h.limitExceeded("event queue full") == 1)
        }
    }

    // MARK: 2. Acks a client asks for are bounded

    @Test func ackIDsOfUnknownEventsAreNotKept() async throws {
        try await self.withServer { h in
            let (client, sid) = try await self.connect(port: h.port, group: h.group)
            try await h.recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(h.recorder.connection(sid))
            for id in 1...2000 {
                try await client.send("42\(id)[\"no-such-event\"]")
            }
            // A real ack still works after the flood (and proves the flood was processed).
            try await client.send(#"422001["echo","real"]"#)
            #expect(try await client.nextText() == #"432001["real"]"#)
            #expect(await connection.owedAcks() == 0)
            #expect(!client.isClosed)
            await client.close()
        }
    }

    @Test func eventsQueuedBehindOnConnectThatNobodyHandlesOweNoAck() async throws {
        let connectGate = TestGate()
        try await self.withServer(connectGate: connectGate) { h in
            let (client, sid) = try await self.connect(port: h.port, group: h.group)
            try await h.recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(h.recorder.connection(sid))
            // While onConnect runs, a listener for every event may still be added: these are queued, acks owed.
            for id in 1...20 {
                try await client.send("42\(id)[\"no-such-event\"]")
            }
            try await self.waitUntil("twenty acks owed behind onConnect") { await connection.owedAcks() == 20 }
            connectGate.open()
            // onConnect added no listener: nobody handled them, so their ack ids are forgotten, not kept for good.
            try await client.send(#"4221["echo","real"]"#)
            #expect(try await client.nextText() == #"4321["real"]"#)
            #expect(await connection.owedAcks() == 0)
            #expect(!client.isClosed)
            await client.close()
        }
    }

    @Test func unansweredAcksAreBoundedPerConnection() async throws {
        let configure: (inout SocketServerConfiguration) -> Void = { $0.maxPendingAcksPerConnection = 16 }
        try await self.withServer(configure) { h in
            let (client, sid) = try await self.connect(port: h.port, group: h.group)
            try await h.recorder.waitUntil { $0.connection(sid) != nil }
            let connection = try #require(h.recorder.connection(sid))
            // `hold` keeps its ack unanswered.
            for id in 1...15 {
                try await client.send("42\(id)[\"hold\"]")
            }
            // An answered ack is forgotten.
            try await client.send(#"4299["echo","answered acks are not kept"]"#)
            #expect(try await client.nextText() == #"4399["answered acks are not kept"]"#)
            #expect(await connection.owedAcks() == 15)
            // The sixteenth fits; the seventeenth closes the client.
            try await client.send(#"4216["hold"]"#)
            try await client.send(#"4217["hold"]"#)
            try await client.waitForClose()
            try await h.recorder.waitUntil { $0.disconnectReason(sid) != nil }
            #expect(h.recorder.disconnectReason(sid) == .tooManyPendingAcks)
            #expect(h.limitExceeded("too many pending acks") == 1)
        }
    }

    @Test func duplicateOrOutOfRangeAckIDIsAProtocolError() async throws {
        try await self.withServer { h in
            let (client, sid) = try await self.connect(port: h.port, group: h.group)
            try await client.send(#"425["hold"]"#)
            try await client.send(#"425["hold"]"#)
            try await client.waitForClose()
            try await h.recorder.waitUntil { $0.disconnectReason(sid) != nil }
            #expect(h.recorder.disconnectReason(sid) == .protocolError)
            #expect(h.counter("socketgateway_protocol_errors_total", [("code", "duplicate ack id")]) == 1)

            // An ack id beyond 64 bits is a protocol error too.
            let (other, otherSid) = try await self.connect(port: h.port, group: h.group)
            try await other.send(#"4218446744073709551616["echo"]"#)
            try await other.waitForClose()
            try await h.recorder.waitUntil { $0.disconnectReason(otherSid) != nil }
            #expect(h.recorder.disconnectReason(otherSid) == .protocolError)
            #expect(h.counter("socketgateway_protocol_errors_total", [("code", "invalidAckID")]) == 1)
        }
    }

    // MARK: 3. Optional event rate limit

    @Test func eventRateLimitClosesOnlyTheFastClient() async throws {
        let limit = SocketEventRateLimit(eventsPerSecond: 1, burst: 5)
        let configure: (inout SocketServerConfiguration) -> Void = { $0.eventRateLimit = limit }
        try await self.withServer(configure) { h in
            let (slow, _) = try await self.connect(port: h.port, group: h.group)
            let (fast, sid) = try await self.connect(port: h.port, group: h.group)
            // Fifty events at once are far over one per second after a burst of five.
            for index in 0..<50 {
                try? await fast.send("42[\"flood\",\(index)]")
            }
            try await fast.waitForClose()
            try await h.recorder.waitUntil { $0.disconnectReason(sid) != nil }
            #expect(h.recorder.disconnectReason(sid) == .eventRateExceeded)
            #expect(h.limitExceeded("event rate exceeded") == 1)
            // The other client's burst is its own.
            try await slow.send(#"421["echo","slow"]"#)
            #expect(try await slow.nextText() == #"431["slow"]"#)
            await slow.close()
        }
    }

    // MARK: 4. CONNECT retries after a refusal

    @Test func refusedConnectRetriesCloseTheSession() async throws {
        let secret = "limits-test-secret-0123456789abcdef"
        let configure: (inout SocketServerConfiguration) -> Void = { $0.maxRefusedConnectsPerSession = 3 }
        try await self.withServer(authenticator: try JWTAuthenticator(secret: secret), configure) { h in
            let (client, _) = try await TestWebSocketClient.connectEngineIO(port: h.port, group: h.group)
            for _ in 1...2 {
                try await client.send(#"40{"token":"guess"}"#)
                #expect(try await client.nextText() == #"44{"message":"Unauthorized"}"#)
            }
            #expect(!client.isClosed)
            // The third refusal is still answered, then the session closes.
            try await client.send(#"40{"token":"guess"}"#)
            #expect(try await client.nextText() == #"44{"message":"Unauthorized"}"#)
            try await client.waitForClose()
            #expect(h.limitExceeded("too many refused connects") == 1)
            #expect(h.counter("socketgateway_auth_failures_total", [("namespace", "/")]) == 3)
            // An unknown namespace is refused too, but it is no authentication failure.
            let (lost, _) = try await TestWebSocketClient.connectEngineIO(port: h.port, group: h.group)
            try await lost.send("40/no-such-namespace")
            #expect(try await lost.nextText() == #"44/no-such-namespace,{"message":"Invalid namespace"}"#)
            #expect(h.counter("socketgateway_auth_failures_total", [("namespace", "/no-such-namespace")]) == 0)
            #expect(h.counter("socketgateway_auth_failures_total", [("namespace", "/")]) == 3)
            await lost.close()

            // A client with a good token on a new session is unaffected.
            let token = try await TestTokens.hs256(["sub": "alice"], secret: secret)
            let (good, _) = try await self.connect(port: h.port, group: h.group, auth: #"{"token":"\#(token)"}"#)
            try await good.send(#"421["echo","ok"]"#)
            #expect(try await good.nextText() == #"431["ok"]"#)
            await good.close()
        }
    }

    // MARK: 6. Protocol errors

    @Test func protocolErrorsAreCountedAndLoggedRateLimitedOnOneEscapedLine() async throws {
        try await self.withServer { h in
            let (healthy, _) = try await self.connect(port: h.port, group: h.group)
            // A namespace and an event name with a newline and a terminal escape: a reserved event name is a
            // protocol error whose description quotes both.
            let hostile = "42/evil\nFORGED LINE \u{1B}[31m,[\"connect\"]"
            var sids: [String] = []
            for _ in 0..<20 {
                let (client, sid) = try await self.connect(port: h.port, group: h.group)
                try await client.send(hostile)
                try await client.waitForClose()
                sids.append(sid)
            }
            for sid in sids {
                try await h.recorder.waitUntil { $0.disconnectReason(sid) != nil }
                #expect(h.recorder.disconnectReason(sid) == .protocolError)
            }
            #expect(h.counter("socketgateway_protocol_errors_total", [("code", "invalidPayload")]) == 20)

            // Twenty closes, far fewer lines: the first at once, the rest counted as suppressed in later ones.
            let warnings = h.warnings.filter { $0.message.contains("closing engine.io session") }
            #expect(!warnings.isEmpty)
            #expect(warnings.count < 20)
            for line in warnings {
                #expect(!line.text.contains("\n") && !line.text.contains("\u{1B}"), "one line, no escape: \(line.text)")
                #expect(line.message.contains(#"/evil\nFORGED LINE \u{1B}[31m"#), "escaped: \(line.message)")
                #expect(line.message.contains("protocol violation") && line.metadata.contains("code=invalidPayload"))
            }

            // Other clients are unaffected.
            try await healthy.send(#"421["echo","fine"]"#)
            #expect(try await healthy.nextText() == #"431["fine"]"#)
            await healthy.close()
        }
    }

    @Test func limitWarningsAreRateLimitedPerKind() async throws {
        let configure: (inout SocketServerConfiguration) -> Void = { $0.maxRefusedConnectsPerSession = 1 }
        try await self.withServer(configure) { h in
            for _ in 0..<10 {
                let (client, _) = try await TestWebSocketClient.connectEngineIO(port: h.port, group: h.group)
                try await client.send("40/no-such-namespace")
                #expect(try await client.nextText() == #"44/no-such-namespace,{"message":"Invalid namespace"}"#)
                try await client.waitForClose()
            }
            #expect(h.limitExceeded("too many refused connects") == 10)
            let refused = h.warnings.filter { $0.message.contains("too many refused connects") }
            #expect(!refused.isEmpty && refused.count < 10)
            // A protocol error is another kind: its first warning is not suppressed by the refusals.
            let (client, _) = try await self.connect(port: h.port, group: h.group)
            try await client.send("4abc")
            try await client.waitForClose()
            #expect(h.warnings.contains { $0.message.contains("protocol violation") })
        }
    }

    /// Polls `condition` (bounded: 500 × 10 ms).
    func waitUntil(_ what: String, _ condition: () async -> Bool) async throws {
        for _ in 0..<500 {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestClientError(description: "timed out waiting for \(what)")
    }
}
