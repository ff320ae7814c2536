import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayEngineIO
import Testing

/// Attacks on the WebSocket transport from raw sockets: peers that never read, broken frames and closes, refused
/// upgrades. Each test checks what the server does to the attacker and that a well-behaved client is unaffected.
@Suite struct WebSocketHardeningTests {
    static let webSocketPath = "/engine.io/?EIO=4&transport=websocket"

    /// A well-behaved WebSocket client, connected before the attack and checked after it: it still echoes, and the
    /// attacker's session ended, with `reason` (waited for, bounded: the attacker may see its socket go a moment
    /// before the session's close is reported), while the well-behaved session is still open.
    func withWellBehavedClient(
        port: Int,
        application: RecordingEchoApplication,
        attackerEndsWith reason: EngineIOCloseReason,
        _ body: () async throws -> Void
    ) async throws {
        try await RawTestConnection.with(port: port) { good in
            let status = try await good.upgradeToWebSocket(Self.webSocketPath).status
            #expect(status == 101)
            _ = try await good.readText()  // the open packet
            try await body()
            let reasons = try await application.closeReasons()
            #expect(reasons == [reason])
            try await good.sendText("4still here")
            let echo = try await good.readText()
            #expect(echo == "4still here")
        }
    }

    /// A well-behaved WebSocket client, connected before the attacks and checked after them.
    func withWellBehavedClient(port: Int, _ body: () async throws -> Void) async throws {
        try await RawTestConnection.with(port: port) { good in
            let status = try await good.upgradeToWebSocket(Self.webSocketPath).status
            #expect(status == 101)
            _ = try await good.readText()  // the open packet
            try await body()
            try await good.sendText("4still here")
            let echo = try await good.readText()
            #expect(echo == "4still here")
        }
    }

    @Test func nonReadingPingFlooderIsDisconnected() async throws {
        // Every ping would queue a pong for a peer that reads none of them: once its write buffer passes the
        // limit the session ends (slow client) and the connection is reset, although the close frame cannot be
        // flushed to it.
        let configuration = EngineIOConfiguration(pingInterval: .seconds(60), maxBufferedBytesPerSession: 64 << 10)
        try await EngineIOServerTests().withServer(configuration: configuration) { port, application in
            try await self.withWellBehavedClient(port: port, application: application, attackerEndsWith: .slowClient) {
                let flooder = try NonReadingSocket(port: port)
                #expect(try flooder.upgrade(Self.webSocketPath).contains("101"))
                let ping = NonReadingSocket.frame(opcode: 0x9, payload: Array(repeating: 0x70, count: 125))
                let batch = Array([[UInt8]](repeating: ping, count: 64).joined())
                var closed = false
                // At most 4000 batches of 64 pings (33 MB): far more than the limit, bounded all the same. A server
                // that is slow to read (a loaded machine) is waited for, up to 20 s without progress, so the flood
                // never stops in the middle of a frame while the server still reads: it only ends when the server
                // has closed, or has stopped reading the flooder for good (then the wait below decides).
                flood: for _ in 0..<4000 where !closed {
                    switch try flooder.send(batch, patience: 2_000) {
                    case .sent: closed = flooder.peerHasClosed()
                    case .blocked: break flood
                    case .closed: closed = true
                    }
                }
                if !closed { closed = try await flooder.waitUntilPeerCloses() }
                #expect(closed, "the server kept the connection of a peer that reads nothing")
            }
        }
    }

    @Test func nonReadingBroadcastReceiverIsDisconnected() async throws {
        // The server sends (broadcasts) to a peer that reads nothing: past maxBufferedBytesPerSession the session
        // ends as a slow client, and the connection must actually go, not wait for a close frame it never reads.
        let configuration = EngineIOConfiguration(pingInterval: .seconds(60), maxBufferedBytesPerSession: 64 << 10)
        try await EngineIOServerTests().withServer(configuration: configuration) { port, application in
            try await self.withWellBehavedClient(port: port, application: application, attackerEndsWith: .slowClient) {
                let receiver = try NonReadingSocket(port: port)
                #expect(try receiver.upgrade(Self.webSocketPath).contains("101"))
                #expect(try receiver.send(NonReadingSocket.frame(opcode: 0x1, payload: Array("4burst".utf8))) == .sent)
                #expect(
                    try await receiver.waitUntilPeerCloses(),
                    "the server kept the connection of a peer that reads nothing"
                )
            }
        }
    }

    @Test func closeFrameStuckBehindUnreadDataIsBoundedByTheCloseTimeout() async throws {
        // The session ends while its connection is still under the write buffer limit, but the peer reads
        // nothing, so the close frame waits behind 256 KiB forever: the close timeout resets the connection.
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60))
        configuration.webSocketCloseTimeout = .milliseconds(200)
        try await EngineIOServerTests().withServer(configuration: configuration) { port, application in
            try await self.withWellBehavedClient(port: port, application: application, attackerEndsWith: .serverClose) {
                let receiver = try NonReadingSocket(port: port)
                #expect(try receiver.upgrade(Self.webSocketPath).contains("101"))
                #expect(
                    try receiver.send(NonReadingSocket.frame(opcode: 0x1, payload: Array("4fill and close".utf8)))
                        == .sent
                )
                #expect(
                    try await receiver.waitUntilPeerCloses(),
                    "the close frame was never written and the connection stayed"
                )
            }
        }
    }

    /// Opens a WebSocket session, writes `bytes` raw, and returns the code of the server's first close frame (nil
    /// when the connection ended without one). A valid close (1000) follows the bytes, so a server that ignores
    /// them still ends the exchange (answering 1000) and the read until the server closes is bounded.
    func closeCode(port: Int, after bytes: [UInt8]) async throws -> UInt16? {
        var code: UInt16?
        try await RawTestConnection.with(port: port) { connection in
            let got5 = try await connection.upgradeToWebSocket(Self.webSocketPath).status
            #expect(got5 == 101)
            _ = try await connection.readText()  // the open packet
            try await connection.writeRaw(ByteBuffer(bytes: bytes + Self.closeFrame(1000)))
            while let frame = try await connection.readFrame() {
                if frame.opcode == 0x8, code == nil {
                    code = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self)
                }
            }
        }
        return code
    }

    static func closeFrame(_ code: UInt16, reason: [UInt8] = []) -> [UInt8] {
        NonReadingSocket.frame(opcode: 0x8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)] + reason)
    }

    @Test func clientCloseCodesAreCheckedBeforeTheyAreAnswered() async throws {
        try await EngineIOServerTests().withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            _ in
            try await self.withWellBehavedClient(port: port) {
                for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
                    let got6 = try await self.closeCode(port: port, after: Self.closeFrame(code))
                    #expect(got6 == 1002, "code \(code)")
                }
                for code: UInt16 in [1000, 1001, 1003, 1011, 3000, 4999] {
                    let got7 = try await self.closeCode(port: port, after: Self.closeFrame(code))
                    #expect(got7 == code, "code \(code)")
                }
                let oneByte = NonReadingSocket.frame(opcode: 0x8, payload: [0x03])
                let got8 = try await self.closeCode(port: port, after: oneByte)
                #expect(got8 == 1002)
                let badReason = Self.closeFrame(1000, reason: [0xCE, 0xBA, 0xE1, 0xBD])
                let got9 = try await self.closeCode(port: port, after: badReason)
                #expect(got9 == 1007)
            }
        }
    }

    @Test func framesThatMustFailTheConnectionDo() async throws {
        try await EngineIOServerTests().withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            application in
            try await self.withWellBehavedClient(port: port) {
                let text = Array("4hello".utf8)
                for rsv: UInt8 in [0x40, 0x20, 0x10] {
                    let frame = NonReadingSocket.frame(opcode: 0x1, payload: text, rsv: rsv)
                    let got10 = try await self.closeCode(port: port, after: frame)
                    #expect(got10 == 1002, "rsv \(rsv)")
                }
                // A fragmented message whose continuation has RSV1: the aggregator must not hide it.
                let fragments =
                    NonReadingSocket.frame(opcode: 0x1, payload: Array("4he".utf8), fin: false)
                    + NonReadingSocket.frame(opcode: 0x0, payload: Array("llo".utf8), rsv: 0x40)
                let got11 = try await self.closeCode(port: port, after: fragments)
                #expect(got11 == 1002)
                let unmasked: [UInt8] = [0x81, UInt8(text.count)] + text
                let got12 = try await self.closeCode(port: port, after: unmasked)
                #expect(got12 == 1002)
                for opcode: UInt8 in [3, 7, 11, 15] {
                    let got13 = try await self.closeCode(
                        port: port,
                        after: NonReadingSocket.frame(opcode: opcode, payload: [])
                    )
                    #expect(got13 == 1002)
                }
                let invalidText = NonReadingSocket.frame(opcode: 0x1, payload: [0x34, 0xFF, 0xFE])
                let got14 = try await self.closeCode(port: port, after: invalidText)
                #expect(got14 == 1007)
                // Invalid UTF-8 split across fragments is caught once the message is whole.
                let splitText =
                    NonReadingSocket.frame(opcode: 0x1, payload: [0x34, 0xE2], fin: false)
                    + NonReadingSocket.frame(opcode: 0x0, payload: [0x28, 0xA1])
                let got15 = try await self.closeCode(port: port, after: splitText)
                #expect(got15 == 1007)
            }
            let reasons = try await application.closeReasons()
            #expect(!reasons.isEmpty && !reasons.contains(.clientClose), "\(reasons)")
        }
    }

    /// Sends an upgrade request with these WebSocket headers (and `extra`) on a fresh connection.
    func upgrade(
        port: Int,
        key: String?,
        version: String?,
        extra: [(String, String)] = []
    ) async throws -> RawTestConnection.Response {
        var response: RawTestConnection.Response?
        try await RawTestConnection.with(port: port) { connection in
            var headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
            if let key { headers.append(("Sec-WebSocket-Key", key)) }
            if let version { headers.append(("Sec-WebSocket-Version", version)) }
            try await connection.sendRequest("GET", Self.webSocketPath, headers: headers + extra)
            response = try await connection.readResponse()
        }
        return try #require(response)
    }

    @Test func refusedUpgradesGetAnHTTPStatus() async throws {
        try await EngineIOServerTests().withServer { port, _ in
            let key = "dGhlIHNhbXBsZSBub25jZQ=="
            let got16 = try await self.upgrade(port: port, key: nil, version: "13").status
            #expect(got16 == 400)
            let got17 = try await self.upgrade(port: port, key: key, version: nil).status
            #expect(got17 == 400)
            let wrongVersion = try await self.upgrade(port: port, key: key, version: "8")
            #expect(wrongVersion.status == 426)
            #expect(wrongVersion.header("Sec-WebSocket-Version") == "13")
            for malformed in [
                "short", "!!!!", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ] {
                let got18 = try await self.upgrade(port: port, key: malformed, version: "13").status
                #expect(got18 == 400, "key \(malformed)")
            }
            let got19 = try await self.upgrade(port: port, key: key, version: "13").status
            #expect(got19 == 101)
        }
    }

    @Test func upgradesFromOtherOriginsAreRefusedWhenOriginsAreListed() async throws {
        let configuration = EngineIOConfiguration(pingInterval: .seconds(60), cors: .origins(["https://app.example"]))
        try await EngineIOServerTests().withServer(configuration: configuration) { port, _ in
            let key = "dGhlIHNhbXBsZSBub25jZQ=="
            let evil = try await self.upgrade(
                port: port,
                key: key,
                version: "13",
                extra: [("Origin", "https://evil.example")]
            )
            #expect(evil.status == 403)
            #expect(evil.text == "{\"code\":4,\"message\":\"Forbidden\"}")
            let allowed = try await self.upgrade(
                port: port,
                key: key,
                version: "13",
                extra: [("Origin", "https://app.example")]
            )
            #expect(allowed.status == 101)
            // Non-browser clients (python-socketio) send no Origin: still allowed.
            let got20 = try await self.upgrade(port: port, key: key, version: "13").status
            #expect(got20 == 101)
        }
        // Without a list of origins, any origin may upgrade (as before).
        try await EngineIOServerTests().withServer(configuration: EngineIOConfiguration(pingInterval: .seconds(60))) {
            port,
            _ in
            let response = try await self.upgrade(
                port: port,
                key: "dGhlIHNhbXBsZSBub25jZQ==",
                version: "13",
                extra: [("Origin", "https://evil.example")]
            )
            #expect(response.status == 101)
        }
    }
}
