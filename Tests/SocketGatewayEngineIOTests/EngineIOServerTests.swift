import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SocketGatewayEngineIO
import Testing

/// Records what the server told the application; echoes like EngineIOEchoApplication, answers the text `fanout`
/// with an EngineIOOutboundMessage carrying one attachment, `burst` with 16 MB of messages over a second,
/// and `fill and close` with 256 KiB and the end of the session.
final class RecordingEchoApplication: EngineIOApplication {
    let closes = NIOLockedValueBox<[EngineIOCloseReason]>([])
    let opened = NIOLockedValueBox(0)

    func sessionOpened(_ session: EngineIOSession) {
        self.opened.withLockedValue { $0 += 1 }
    }

    func session(_ session: EngineIOSession, didReceive message: EngineIOMessage) {
        switch message {
        case .text(let payload) where String(buffer: payload) == "fanout":
            session.send(
                EngineIOOutboundMessage(
                    textPayload: ByteBuffer(string: "fan"),
                    attachments: [ByteBuffer(bytes: [7, 8, 9])]
                )
            )
        case .text(let payload) where String(buffer: payload) == "burst":
            // Server-originated messages spread over time, as broadcasts come: 1000 × 16 KiB, one per millisecond
            // (more than the kernel's largest send buffer, 4 MiB by default, can hide).
            let message = ByteBuffer(repeating: UInt8(ascii: "b"), count: 16 << 10)
            for index in 0..<1000 {
                session.eventLoop.scheduleTask(in: .milliseconds(Int64(index))) { session.sendMessage(message) }
            }
        case .text(let payload) where String(buffer: payload).hasPrefix("batch "):
            // `batch <size>...`: one message of each size, encoded in one buffer each and queued as a delivery
            // batch does, with a plain `sendMessage` between them, then the batch's one flush.
            let batch = EngineIOFlushBatch()
            for (index, size) in String(buffer: payload).split(separator: " ").dropFirst().enumerated() {
                let message = EngineIOOutboundMessage(textPayloadCapacity: 8) { text in
                    text.writeString("\(index):")
                    text.writeRepeatingByte(UInt8(ascii: "m"), count: Int(size) ?? 0)
                }
                session.send(message, flushingIn: batch)
                session.sendMessage(ByteBuffer(string: "between \(index)"))
            }
            batch.flush()
        case .text(let payload) where String(buffer: payload) == "fill and close":
            // 256 KiB at once (under the default buffer limit), then the server ends the session.
            let message = ByteBuffer(repeating: UInt8(ascii: "f"), count: 4096)
            for _ in 0..<64 { session.sendMessage(message) }
            session.close(reason: .serverClose)
        case .text(let payload):
            session.sendMessage(payload)
        case .binary(let bytes):
            session.sendBinary(bytes)
        }
    }

    func sessionClosed(_ session: EngineIOSession, reason: EngineIOCloseReason) {
        self.closes.withLockedValue { $0.append(reason) }
    }

    /// The close reasons, once at least one session has closed (the client may see its socket close a moment
    /// before the session's event loop reports it). Bounded: gives up after 200 short polls.
    /// The close reasons so far, once at least `count` sessions closed (or after 10 s: the test servers share
    /// NIO's singleton loops with every other test's clients, which a full parallel run keeps busy).
    func closeReasons(count: Int = 1) async throws -> [EngineIOCloseReason] {
        for _ in 0..<1000 where self.closes.withLockedValue({ $0.count < count }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        return self.closes.withLockedValue { $0 }
    }
}

/// Serves a fixed page, standing in for static files.
struct FixedPageResponder: HTTPFallbackResponder {
    func respond(to head: HTTPRequestHead, body: ByteBuffer) async -> HTTPFallbackResponse {
        guard head.uri == "/" else { return HTTPFallbackResponse(status: .notFound) }
        return HTTPFallbackResponse(
            status: .ok,
            headers: HTTPHeaders([("Content-Type", "text/html")]),
            body: ByteBuffer(string: "<h1>hi</h1>")
        )
    }
}

struct HandshakeInfo: Decodable {
    var sid: String
    var upgrades: [String]
    var pingInterval: Int
    var pingTimeout: Int
    var maxPayload: Int
}

@Suite struct EngineIOServerTests {
    static let path = "/engine.io/?EIO=4&transport=polling"

    /// Starts a server on an ephemeral port with the recording echo app at /engine.io/.
    func withServer(
        configuration: EngineIOConfiguration = EngineIOConfiguration(
            pingInterval: .milliseconds(300),
            pingTimeout: .milliseconds(200),
            cors: .any
        ),
        _ body: (Int, RecordingEchoApplication) async throws -> Void
    ) async throws {
        let application = RecordingEchoApplication()
        let server = EngineIOServer(
            host: "127.0.0.1",
            port: 0,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        server.mount(path: "/engine.io/", configuration: configuration, application: application)
        try await server.start()
        let port = try #require(server.localPort)
        do {
            try await body(port, application)
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    func handshake(_ response: RawTestConnection.Response) throws -> HandshakeInfo {
        let text = response.text
        #expect(text.hasPrefix("0"))
        return try JSONDecoder().decode(HandshakeInfo.self, from: Data(text.dropFirst().utf8))
    }

    @Test func pollingHandshakeAndEcho() async throws {
        // A heartbeat that cannot fire mid-test on a loaded machine: a ping would join the echoed payload.
        let configuration = EngineIOConfiguration(
            pingInterval: .seconds(60),
            pingTimeout: .milliseconds(200),
            cors: .any
        )
        try await self.withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let open = try await connection.request("GET", Self.path)
                #expect(open.status == 200)
                #expect(open.header("Access-Control-Allow-Origin") == "*")
                let info = try self.handshake(open)
                #expect(info.upgrades == ["websocket"])
                #expect(info.pingInterval == 60_000)
                #expect(info.pingTimeout == 200)
                #expect(info.maxPayload == 1_000_000)
                #expect(info.sid.count == 22)
                let target = "\(Self.path)&sid=\(info.sid)"
                let post = try await connection.request("POST", target, body: "4test1\u{1e}4test2\u{1e}bAQIDBA==")
                #expect(post.status == 200)
                #expect(post.text == "ok")
                let poll = try await connection.request("GET", target)
                #expect(poll.text == "4test1\u{1e}4test2\u{1e}bAQIDBA==")
            }
        }
    }

    @Test func badRequestsGetEngineIOErrors() async throws {
        try await self.withServer { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let noEIO = try await connection.request("GET", "/engine.io/?transport=polling")
                #expect(noEIO.status == 400)
                #expect(noEIO.text == "{\"code\":5,\"message\":\"Unsupported protocol version\"}")
                let noTransport = try await connection.request("GET", "/engine.io/?EIO=4")
                #expect(noTransport.status == 400)
                #expect(noTransport.text == "{\"code\":0,\"message\":\"Transport unknown\"}")
                let badTransport = try await connection.request("GET", "/engine.io/?EIO=4&transport=abc")
                #expect(badTransport.text == "{\"code\":0,\"message\":\"Transport unknown\"}")
                let post = try await connection.request("POST", Self.path, body: "4x")
                #expect(post.status == 400)
                #expect(post.text == "{\"code\":2,\"message\":\"Bad handshake method\"}")
                let unknown = try await connection.request("GET", "\(Self.path)&sid=nope")
                #expect(unknown.status == 400)
                #expect(unknown.text == "{\"code\":1,\"message\":\"Session ID unknown\"}")
                let other = try await connection.request("GET", "/elsewhere")
                #expect(other.status == 404)
            }
        }
    }

    @Test func invalidPostClosesTheSession() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                let info = try self.handshake(try await connection.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                #expect(try await connection.request("POST", target, body: "abc").status == 400)
                #expect(try await connection.request("GET", target).status == 400)
            }
            #expect(try await application.closeReasons() == [.parseError])
        }
    }

    @Test func duplicateGetClosesTheSession() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { first in
                let info = try self.handshake(try await first.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                try await first.sendRequest("GET", target)
                try await Task.sleep(for: .milliseconds(50))
                // Make sure the first GET is parked before the second arrives: a POST round trip orders them.
                try await RawTestConnection.with(port: port) { other in
                    #expect(try await other.request("POST", target, body: "6").text == "ok")
                    let second = try await other.request("GET", target)
                    #expect(second.status == 400)
                }
                let pending = try await first.readResponse()
                #expect(pending.status == 200)
                #expect(pending.text == "1")
                #expect(try await first.request("GET", target).status == 400)
            }
            #expect(try await application.closeReasons() == [.transportError])
        }
    }

    @Test func clientCloseEndsPendingGetWithNoop() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { first in
                let info = try self.handshake(try await first.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                try await RawTestConnection.with(port: port) { other in
                    // Park a GET on `other`, then close from `first`.
                    try await other.sendRequest("GET", target)
                    try await Task.sleep(for: .milliseconds(50))
                    #expect(try await first.request("POST", target, body: "6").text == "ok")
                    #expect(try await first.request("POST", target, body: "1").text == "ok")
                    #expect(try await other.readResponse().text == "6")
                }
            }
            #expect(try await application.closeReasons() == [.clientClose])
        }
    }

    @Test func getRacingTheClientCloseGetsNoopOnce() async throws {
        // A long linger, so that a loaded machine reaching the GET late still tests the race, not the expiry.
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        configuration.closedSessionLingerTime = .seconds(60)
        try await self.withServer(configuration: configuration) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                let info = try self.handshake(try await connection.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                #expect(try await connection.request("POST", target, body: "1").text == "ok")
                // The GET the client had in flight when it closed ends cleanly; after that the sid is gone.
                #expect(try await connection.request("GET", target).text == "6")
                #expect(try await connection.request("GET", target).status == 400)
            }
            #expect(try await application.closeReasons() == [.clientClose])
        }
    }

    @Test func pollingHeartbeatAndTimeout() async throws {
        // A short ping interval keeps the test quick; the generous ping timeout is the client's time to answer,
        // so a loaded machine answering late does not end the session before the test means it to.
        let pingInterval = TimeAmount.milliseconds(300)
        let pingTimeout = TimeAmount.seconds(10)
        let configuration = EngineIOConfiguration(
            pingInterval: .nanoseconds(pingInterval.nanoseconds),
            pingTimeout: .nanoseconds(pingTimeout.nanoseconds),
            cors: .any
        )
        try await self.withServer(configuration: configuration) { port, application in
            try await RawTestConnection.with(port: port) { connection in
                let info = try self.handshake(try await connection.request("GET", Self.path))
                #expect(info.pingInterval == 300 && info.pingTimeout == 10_000)
                let target = "\(Self.path)&sid=\(info.sid)"
                var lastPongSent = NIODeadline.now()
                for _ in 0..<2 {
                    #expect(try await connection.request("GET", target).text == "2")
                    lastPongSent = .now()
                    #expect(try await connection.request("POST", target, body: "3").text == "ok")
                }
                #expect(application.closes.withLockedValue { $0.isEmpty })
                // Stop answering: the parked GET gets the next ping, then the timer closes the session.
                #expect(try await connection.request("GET", target).text == "2")
                let last = try await connection.request("GET", target)
                #expect(last.text == "1")
                // Lower bounds only (a slow machine makes them later, never earlier): the pong was read after it
                // was sent, the next ping was due a ping interval after that, and the timeout a ping timeout later.
                #expect(NIODeadline.now() - lastPongSent >= pingInterval + pingTimeout)
            }
            #expect(try await application.closeReasons() == [.pingTimeout])
        }
    }

    @Test func webSocketSessionEchoesAndClosesOnInvalidPacket() async throws {
        // No heartbeat during this test: a ping frame between an echo and its read is not what it checks.
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                #expect(try await connection.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket").status == 101)
                let open = try #require(try await connection.readText())
                let info = try JSONDecoder().decode(HandshakeInfo.self, from: Data(open.dropFirst().utf8))
                #expect(info.upgrades == [])
                try await connection.sendText("4hello")
                #expect(try await connection.readText() == "4hello")
                try await connection.sendFrame(opcode: 0x2, payload: ByteBuffer(bytes: [1, 2, 3, 4]))
                let binary = try #require(try await connection.readFrame())
                #expect(binary.opcode == 0x2)
                #expect(binary.payload == ByteBuffer(bytes: [1, 2, 3, 4]))
                try await connection.sendText("4fanout")
                #expect(try await connection.readText() == "4fan")
                let attachment = try #require(try await connection.readFrame())
                #expect(attachment.opcode == 0x2 && attachment.payload == ByteBuffer(bytes: [7, 8, 9]))
                try await connection.sendText("abc")
                var sawClose = false
                while let frame = try await connection.readFrame() {
                    if frame.opcode == 0x8 { sawClose = true }
                }
                #expect(sawClose)
            }
            #expect(try await application.closeReasons() == [.parseError])
        }
    }

    @Test func webSocketProtocolErrorsGetACloseFrameWithTheirCode() async throws {
        // The server answers WebSocket protocol errors itself: 1009 for a message over maxPayload, 1002 for a
        // fragmented control frame; then it closes the connection and the session.
        let configuration = EngineIOConfiguration(pingInterval: .seconds(60), maxPayload: 100)
        try await self.withServer(configuration: configuration) { port, application in
            func closeCode(after send: (RawTestConnection) async throws -> Void) async throws -> UInt16? {
                var code: UInt16?
                try await RawTestConnection.with(port: port) { connection in
                    #expect(
                        try await connection.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket").status == 101
                    )
                    _ = try await connection.readText()  // the open packet
                    try await send(connection)
                    while let frame = try await connection.readFrame() {
                        if frame.opcode == 0x8 {
                            code = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self)
                        }
                    }
                }
                return code
            }
            let tooLarge = try await closeCode { connection in
                try await connection.sendText("4" + String(repeating: "x", count: 200))
            }
            #expect(tooLarge == 1009)
            let fragmentedPing = try await closeCode { connection in
                var frame = ByteBuffer()
                frame.writeInteger(UInt8(0x09))  // ping without FIN
                frame.writeInteger(UInt8(0x80))  // masked, empty
                frame.writeBytes([0, 0, 0, 0])
                try await connection.writeRaw(frame)
            }
            #expect(fragmentedPing == 1002)
            let reasons = try await application.closeReasons(count: 2)
            #expect(reasons == [.payloadTooLarge, .transportError], "\(reasons)")
        }
    }

    @Test func webSocketRejectsBadQuery() async throws {
        try await self.withServer { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let response = try await connection.upgradeToWebSocket("/engine.io/?transport=websocket")
                #expect(response.status == 400)
            }
            try await RawTestConnection.with(port: port) { connection in
                let response = try await connection.upgradeToWebSocket(
                    "/engine.io/?EIO=4&transport=websocket&sid=unknown"
                )
                #expect(response.status == 400)
            }
        }
    }

    @Test func upgradeFromPolling() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { polling in
                let info = try self.handshake(try await polling.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                #expect(try await polling.request("POST", target, body: "4before").text == "ok")
                try await RawTestConnection.with(port: port) { ws in
                    #expect(
                        try await ws.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket&sid=\(info.sid)").status
                            == 101
                    )
                    try await ws.sendText("2probe")
                    #expect(try await ws.readText() == "3probe")
                    // The echo of "before" was buffered for polling: it still goes over polling during the upgrade,
                    // then a GET with nothing to carry gets the noop that lets the client pause polling.
                    #expect(try await polling.request("GET", target).text == "4before")
                    #expect(try await polling.request("GET", target).text == "6")
                    #expect(try await polling.request("POST", target, body: "4paused").text == "ok")
                    try await ws.sendText("5")
                    // Queued after the client paused polling: moved over to the WebSocket.
                    #expect(try await ws.readText() == "4paused")
                    try await ws.sendText("4hello")
                    #expect(try await ws.readText() == "4hello")
                    #expect(try await polling.request("GET", target).status == 400)
                    // A second WebSocket with the same sid completes its handshake, then is closed.
                    try await RawTestConnection.with(port: port) { second in
                        let response = try await second.upgradeToWebSocket(
                            "/engine.io/?EIO=4&transport=websocket&sid=\(info.sid)"
                        )
                        #expect(response.status == 101)
                        let closed = try await second.waitForClose()
                        #expect(closed)
                    }
                    try await ws.sendText("4still")
                    #expect(try await ws.readText() == "4still")
                }
            }
            // Closing the upgraded WebSocket ends the session.
            let reasons = try await application.closeReasons()
            #expect(reasons == [.transportClose], "\(reasons)")
        }
    }

    @Test func corsPolicies() async throws {
        let configuration = EngineIOConfiguration(cors: .origins(["https://app.example"]))
        try await self.withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let allowed = try await connection.request(
                    "GET",
                    Self.path,
                    headers: [("Origin", "https://app.example")]
                )
                #expect(allowed.header("Access-Control-Allow-Origin") == "https://app.example")
                #expect(allowed.header("Access-Control-Allow-Credentials") == "true")
                #expect(allowed.header("Vary") == "Origin")
                let refused = try await connection.request(
                    "GET",
                    Self.path,
                    headers: [("Origin", "https://evil.example")]
                )
                #expect(refused.header("Access-Control-Allow-Origin") == nil)
                let preflight = try await connection.request(
                    "OPTIONS",
                    Self.path,
                    headers: [("Origin", "https://app.example"), ("Access-Control-Request-Headers", "content-type")]
                )
                #expect(preflight.status == 204)
                #expect(preflight.header("Access-Control-Allow-Methods") == "GET, POST, OPTIONS")
                #expect(preflight.header("Access-Control-Allow-Headers") == "content-type")
            }
        }
        try await self.withServer(configuration: EngineIOConfiguration()) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let response = try await connection.request(
                    "GET",
                    Self.path,
                    headers: [("Origin", "https://app.example")]
                )
                #expect(response.status == 200)
                #expect(response.header("Access-Control-Allow-Origin") == nil)
            }
        }
    }

    @Test func oversizedPostGets413AndClosesTheSession() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(maxPayload: 10)) { port, application in
            var sid = ""
            try await RawTestConnection.with(port: port) { connection in
                sid = try self.handshake(try await connection.request("GET", Self.path)).sid
                let response = try await connection.request(
                    "POST",
                    "\(Self.path)&sid=\(sid)",
                    body: "4" + String(repeating: "x", count: 20)
                )
                #expect(response.status == 413)
            }
            try await RawTestConnection.with(port: port) { connection in
                let response = try await connection.request("GET", "\(Self.path)&sid=\(sid)")
                #expect(response.status == 400)
            }
            #expect(try await application.closeReasons() == [.payloadTooLarge])
        }
    }

    @Test func pollingResponseIsCappedAtSixteenPackets() async throws {
        // python-engineio's client drops the connection on a payload of more than 16 packets.
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                let sid = try self.handshake(try await connection.request("GET", Self.path)).sid
                let target = "\(Self.path)&sid=\(sid)"
                let words = (0..<19).map { "4word\($0)" }
                #expect(
                    try await connection.request("POST", target, body: words.joined(separator: "\u{1e}")).text == "ok"
                )
                let first = try await connection.request("GET", target)
                #expect(first.text.split(separator: "\u{1e}").map(String.init) == Array(words[0..<16]))
                let second = try await connection.request("GET", target)
                #expect(second.text.split(separator: "\u{1e}").map(String.init) == Array(words[16...]))
                #expect(try await connection.request("POST", target, body: "1").text == "ok")
            }
            #expect(try await application.closeReasons() == [.clientClose])
        }
    }

    @Test func pollingPacketLimitIsConfigurable() async throws {
        let configuration = EngineIOConfiguration(pingInterval: .seconds(60), maxPacketsPerPollingResponse: 2)
        try await self.withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                let sid = try self.handshake(try await connection.request("GET", Self.path)).sid
                let target = "\(Self.path)&sid=\(sid)"
                #expect(try await connection.request("POST", target, body: "4a\u{1e}4b\u{1e}4c").text == "ok")
                #expect(try await connection.request("GET", target).text == "4a\u{1e}4b")
                #expect(try await connection.request("GET", target).text == "4c")
            }
        }
    }

    @Test func upgradeOverTheKeepAlivePollingConnection() async throws {
        // aiohttp (python-engineio's client) sends the WebSocket upgrade over the pooled connection that carried
        // the polling handshake, so the upgrade must work on a connection's later requests too.
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                let info = try self.handshake(try await connection.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                #expect(try await connection.request("POST", target, body: "4before").text == "ok")
                let upgrade = try await connection.upgradeToWebSocket(
                    "/engine.io/?EIO=4&transport=websocket&sid=\(info.sid)&t=1.5"
                )
                #expect(upgrade.status == 101)
                try await connection.sendText("2probe")
                #expect(try await connection.readText() == "3probe")
                try await connection.sendText("5")
                #expect(try await connection.readText() == "4before")
                try await connection.sendText("4hello")
                #expect(try await connection.readText() == "4hello")
            }
            #expect(try await application.closeReasons() == [.transportClose])
        }
    }

    @Test func invalidUpgradeOnALaterRequestGetsTheEngineIOError() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                _ = try self.handshake(try await connection.request("GET", Self.path))
                let response = try await connection.upgradeToWebSocket(
                    "/engine.io/?EIO=4&transport=websocket&sid=unknown"
                )
                #expect(response.status == 400)
                #expect(response.text == "{\"code\":1,\"message\":\"Session ID unknown\"}")
            }
        }
    }

    @Test func messagesDuringTheUpgradeArriveOverPollingUntilItPausesThenOverTheWebSocket() async throws {
        // socket.io-client's default mode: it POSTs and long-polls while it probes the WebSocket, and pauses polling
        // (stops sending GETs) only after `3probe`. What the server sends meanwhile must reach it over polling, in
        // order; what is left when polling pauses goes over the WebSocket after `5`; nothing twice, nothing lost.
        let configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        try await self.withServer(configuration: configuration) { port, application in
            try await RawTestConnection.with(port: port) { poller in
                let info = try self.handshake(try await poller.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                var received: [String] = []
                func records(_ response: RawTestConnection.Response) -> [String] {
                    response.text.split(separator: "\u{1e}").map(String.init).filter { $0 != "6" }
                }
                try await RawTestConnection.with(port: port) { poster in
                    try await RawTestConnection.with(port: port) { ws in
                        let upgrade = "/engine.io/?EIO=4&transport=websocket&sid=\(info.sid)"
                        #expect(try await ws.upgradeToWebSocket(upgrade).status == 101)
                        // Attached, not probed yet: a parked GET carries the echo of a message posted now.
                        try await poller.sendRequest("GET", target)
                        #expect(try await poster.request("POST", target, body: "4m1").text == "ok")
                        received += records(try await poller.readResponse())
                        try await ws.sendText("2probe")
                        #expect(try await ws.readText() == "3probe")
                        // Probed: still over polling, whether the GET was parked first or finds the echoes queued.
                        try await poller.sendRequest("GET", target)
                        #expect(try await poster.request("POST", target, body: "4m2\u{1e}4m3").text == "ok")
                        received += records(try await poller.readResponse())
                        if received.count < 3 { received += records(try await poller.request("GET", target)) }
                        #expect(received == ["4m1", "4m2", "4m3"])
                        // Nothing queued: the GET ends with the noop, and the client pauses polling.
                        #expect(try await poller.request("GET", target).text == "6")
                        #expect(try await poster.request("POST", target, body: "4m4\u{1e}4m5").text == "ok")
                        try await ws.sendText("5")
                        for _ in 0..<2 { received.append(try #require(try await ws.readText())) }
                        try await ws.sendText("4m6")
                        received.append(try #require(try await ws.readText()))
                        #expect(received == ["4m1", "4m2", "4m3", "4m4", "4m5", "4m6"])
                        #expect(try await poller.request("GET", target).status == 400)
                    }
                }
            }
            #expect(try await application.closeReasons() == [.transportClose])
        }
    }

    @Test func pendingGetEndsWhenTheClientClosesAfterAReply() async throws {
        // The shape of a refused Socket.IO CONNECT over polling: the client's POST is answered on its pending GET,
        // the client polls again and closes; the new GET must end (the client waits for it before returning).
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await RawTestConnection.with(port: port) { poller in
                let info = try self.handshake(try await poller.request("GET", Self.path))
                let target = "\(Self.path)&sid=\(info.sid)"
                try await RawTestConnection.with(port: port) { poster in
                    try await poller.sendRequest("GET", target)
                    #expect(try await poster.request("POST", target, body: "440refused").text == "ok")
                    #expect(try await poller.readResponse().text == "440refused")
                    try await poller.sendRequest("GET", target)
                    #expect(try await poster.request("POST", target, body: "1").text == "ok")
                    // Parked before the close or arriving just after it: either way it ends with a noop.
                    #expect(try await poller.readResponse().text == "6")
                }
            }
            #expect(try await application.closeReasons() == [.clientClose])
        }
    }

    @Test func slowPollingClientIsDropped() async throws {
        try await self.withServer(
            configuration: EngineIOConfiguration(pingInterval: .seconds(60), maxBufferedBytesPerSession: 64)
        ) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                let sid = try self.handshake(try await connection.request("GET", Self.path)).sid
                let target = "\(Self.path)&sid=\(sid)"
                // Each echo is buffered (no GET is waiting) until the limit is passed.
                let body = Array(repeating: "4" + String(repeating: "y", count: 30), count: 3).joined(
                    separator: "\u{1e}"
                )
                #expect(try await connection.request("POST", target, body: body).text == "ok")
                #expect(try await connection.request("GET", target).status == 400)
            }
            #expect(try await application.closeReasons() == [.slowClient])
        }
    }

    @Test func slowWebSocketClientIsDropped() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(maxBufferedBytesPerSession: 200)) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                #expect(try await connection.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket").status == 101)
                _ = try await connection.readText()
                // The echo alone is more than the session may have waiting for the socket.
                try await connection.sendText("4" + String(repeating: "z", count: 300))
                var sawClose = false
                while let frame = try await connection.readFrame() {
                    if frame.opcode == 0x8 { sawClose = true }
                }
                #expect(sawClose)
            }
            #expect(try await application.closeReasons() == [.slowClient])
        }
    }

    /// Messages queued in a flush batch (one buffer each, frame headers of every length form) reach the client
    /// in the order they were queued, interleaved with messages the session flushes itself.
    @Test func aFlushBatchDeliversInOrder() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) { port, _ in
            try await RawTestConnection.with(port: port) { connection in
                #expect(try await connection.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket").status == 101)
                _ = try await connection.readText()
                let sizes = [0, 100, 122, 123, 200, 65_532, 65_533, 70_000, 3]
                try await connection.sendText("4batch " + sizes.map(String.init).joined(separator: " "))
                for (index, size) in sizes.enumerated() {
                    let text = try #require(try await connection.readText())
                    #expect(text == "4\(index):" + String(repeating: "m", count: size), "message \(index)")
                    #expect(try await connection.readText() == "4between \(index)")
                }
            }
        }
    }

    /// A flush batch is held to the session's buffer limit as the session's own flushes are: a batch that queues
    /// more than the limit ends the session as a slow client, before anything of it is written.
    @Test func aFlushBatchOverTheSessionLimitDropsTheClient() async throws {
        try await self.withServer(configuration: EngineIOConfiguration(maxBufferedBytesPerSession: 1000)) {
            port,
            application in
            try await RawTestConnection.with(port: port) { connection in
                #expect(try await connection.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket").status == 101)
                _ = try await connection.readText()
                try await connection.sendText("4batch 400 400 400")
                var texts: [String] = []
                var sawClose = false
                while let frame = try await connection.readFrame() {
                    if frame.opcode == 0x8 { sawClose = true }
                    if frame.opcode == 0x1 { texts.append(String(buffer: frame.payload)) }
                }
                #expect(sawClose)
                #expect(texts.isEmpty, "nothing of the batch is written: \(texts.map { $0.prefix(12) })")
            }
            #expect(try await application.closeReasons() == [.slowClient])
        }
    }

    @Test func fallbackServesOtherPaths() async throws {
        let server = EngineIOServer(
            host: "127.0.0.1",
            port: 0,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test"),
            fallback: FixedPageResponder()
        )
        server.mount(
            path: "/engine.io/",
            configuration: EngineIOConfiguration(),
            application: RecordingEchoApplication()
        )
        try await server.start()
        let port = try #require(server.localPort)
        // The fallback responses are tasks of the server's pool, run here by the test as SocketServer.run() does.
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await server.tasks.run() }
            try await RawTestConnection.with(port: port) { connection in
                let page = try await connection.request("GET", "/")
                #expect(page.status == 200)
                #expect(page.text == "<h1>hi</h1>")
                #expect(page.header("Content-Type") == "text/html")
                #expect(try await connection.request("GET", "/missing").status == 404)
                // Engine.IO still answers on the same connection.
                #expect(try await connection.request("GET", Self.path).text.hasPrefix("0{"))
            }
            server.tasks.finish()
            // Shutting down: a fallback request is refused with 503, not dropped.
            try await RawTestConnection.with(port: port) { connection in
                let refused = try await connection.request("GET", "/")
                #expect(refused.status == 503)
            }
        }
        try await server.shutdown()
    }

    @Test func shutdownClosesSessions() async throws {
        let application = RecordingEchoApplication()
        let server = EngineIOServer(
            host: "127.0.0.1",
            port: 0,
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "test")
        )
        server.mount(path: "/engine.io", configuration: EngineIOConfiguration(), application: application)
        try await server.start()
        let port = try #require(server.localPort)
        try await RawTestConnection.with(port: port) { connection in
            #expect(try await connection.upgradeToWebSocket("/engine.io/?EIO=4&transport=websocket").status == 101)
            _ = try await connection.readText()
            try await server.shutdown()
            #expect(try await connection.waitForClose())
        }
        #expect(try await application.closeReasons() == [.forcedServerShutdown])
    }
}
