import NIOCore
import Testing

@testable import SocketGatewayEngineIO

/// permessage-deflate on a real server from a raw socket: the 101's answer, RSV1 on what the server sends, the
/// inflating of what it receives, and a zip bomb that closes only its own connection.
@Suite struct WebSocketDeflateServerTests {
    static let path = "/engine.io/?EIO=4&transport=websocket"
    static let offer = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")

    static func configuration(compression: WebSocketCompressionConfiguration?) -> EngineIOConfiguration {
        var configuration = EngineIOConfiguration(pingInterval: .seconds(60), cors: .any)
        configuration.webSocketCompression = compression
        return configuration
    }

    static func compress(_ text: String) throws -> ByteBuffer {
        let deflater = try #require(WebSocketDeflater())
        var output = ByteBuffer()
        deflater.compress(ByteBuffer(string: text).readableBytesView, into: &output)
        return output
    }

    @Test func compressedBothWaysWhenAgreed() async throws {
        let configuration = Self.configuration(compression: .init(threshold: 1024))
        try await EngineIOServerTests().withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { client in
                let response = try await client.upgradeToWebSocket(Self.path, extraHeaders: [Self.offer])
                #expect(response.status == 101)
                #expect(
                    response.header("Sec-WebSocket-Extensions")
                        == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                )
                let open = try #require(try await client.readFrameWithFlags())
                #expect(open.first == 0x81)  // small: not compressed
                // A large message, sent compressed: inflated by the server, echoed compressed (RSV1).
                let large = "4" + String(repeating: "{\"cell\":\"A1\",\"value\":42},", count: 200)
                try await client.sendFrame(opcode: 0x1, payload: try Self.compress(large), rsv1: true)
                let echo = try #require(try await client.readFrameWithFlags())
                #expect(echo.first == 0xC1)
                #expect(echo.payload.readableBytes < large.utf8.count / 4)
                let inflater = try #require(WebSocketInflater())
                #expect(String(buffer: try inflater.inflate(echo.payload, limit: 1 << 20).get()) == large)
                // Below the threshold: plain both ways (an uncompressed message is allowed from the client too).
                try await client.sendText("4small")
                let small = try #require(try await client.readFrameWithFlags())
                #expect(small.first == 0x81)
                #expect(String(buffer: small.payload) == "4small")
                // A batch (the fan-out path, EngineIOOutboundMessage) is compressed as well.
                try await client.sendText("4batch 3000")
                let batched = try #require(try await client.readFrameWithFlags())
                #expect(batched.first == 0xC1)
                let text = String(buffer: try inflater.inflate(batched.payload, limit: 1 << 20).get())
                #expect(text == "40:" + String(repeating: "m", count: 3000))
            }
        }
    }

    @Test func noAnswerWithoutOfferOrWhenOff() async throws {
        // Off (the default): the offer is ignored, and RSV1 stays a protocol error.
        try await EngineIOServerTests().withServer(configuration: Self.configuration(compression: nil)) { port, _ in
            try await RawTestConnection.with(port: port) { client in
                let response = try await client.upgradeToWebSocket(Self.path, extraHeaders: [Self.offer])
                #expect(response.status == 101)
                #expect(response.header("Sec-WebSocket-Extensions") == nil)
                _ = try await client.readFrameWithFlags()
                try await client.sendFrame(opcode: 0x1, payload: try Self.compress("4hello"), rsv1: true)
                let close = try #require(try await client.readFrameWithFlags())
                #expect(close.first & 0x0F == 0x8)
                #expect(close.payload.getInteger(at: close.payload.readerIndex, as: UInt16.self) == 1002)
            }
        }
        // On, but the client offers nothing: uncompressed, even for large messages.
        let configuration = Self.configuration(compression: .init(threshold: 0))
        try await EngineIOServerTests().withServer(configuration: configuration) { port, _ in
            try await RawTestConnection.with(port: port) { client in
                let response = try await client.upgradeToWebSocket(Self.path)
                #expect(response.header("Sec-WebSocket-Extensions") == nil)
                _ = try await client.readFrameWithFlags()
                let large = "4" + String(repeating: "x", count: 5000)
                try await client.sendText(large)
                let echo = try #require(try await client.readFrameWithFlags())
                #expect(echo.first == 0x81)
                #expect(String(buffer: echo.payload) == large)
            }
        }
    }

    @Test func zipBombClosesOnlyItsConnectionWith1009() async throws {
        var configuration = Self.configuration(compression: .init())
        configuration.maxPayload = 100_000
        try await EngineIOServerTests().withServer(configuration: configuration) { port, application in
            try await WebSocketHardeningTests().withWellBehavedClient(
                port: port,
                application: application,
                attackerEndsWith: .payloadTooLarge
            ) {
                try await RawTestConnection.with(port: port) { attacker in
                    let response = try await attacker.upgradeToWebSocket(Self.path, extraHeaders: [Self.offer])
                    #expect(response.header("Sec-WebSocket-Extensions") != nil)
                    _ = try await attacker.readFrameWithFlags()
                    // 16 MiB of "4" + zeros in about 16 KiB: within the frame limit, far past maxPayload inflated.
                    let bomb = try Self.compress("4" + String(repeating: "0", count: 16 << 20))
                    #expect(bomb.readableBytes < 100_000)
                    try await attacker.sendFrame(opcode: 0x1, payload: bomb, rsv1: true)
                    let close = try #require(try await attacker.readFrameWithFlags())
                    #expect(close.first & 0x0F == 0x8)
                    #expect(close.payload.getInteger(at: close.payload.readerIndex, as: UInt16.self) == 1009)
                }
            }
        }
    }
}
