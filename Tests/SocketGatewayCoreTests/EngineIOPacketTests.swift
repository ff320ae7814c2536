import NIOCore
import SocketGatewayCore
import Testing

@Suite struct EngineIOPacketTests {
    private func decodeText(_ text: String) throws(EngineIOCodecError) -> EngineIOPacket {
        try EngineIOPacket.decode(text: ByteBuffer(string: text))
    }

    @Test func decodesEveryTextPacketType() throws {
        #expect(try self.decodeText("0{\"sid\":\"x\"}") == .open(ByteBuffer(string: "{\"sid\":\"x\"}")))
        #expect(try self.decodeText("1") == .close)
        #expect(try self.decodeText("2") == .ping(probe: false))
        #expect(try self.decodeText("2probe") == .ping(probe: true))
        #expect(try self.decodeText("3") == .pong(probe: false))
        #expect(try self.decodeText("3probe") == .pong(probe: true))
        #expect(try self.decodeText("4hello") == .message(ByteBuffer(string: "hello")))
        #expect(try self.decodeText("4") == .message(ByteBuffer()))
        #expect(try self.decodeText("5") == .upgrade)
        #expect(try self.decodeText("6") == .noop)
    }

    @Test func binaryFrameIsABinaryMessage() throws {
        let bytes = ByteBuffer(bytes: [1, 2, 3, 4])
        #expect(try EngineIOPacket.decode(webSocketFrame: bytes, isBinary: true) == .binaryMessage(bytes))
        #expect(
            try EngineIOPacket.decode(webSocketFrame: ByteBuffer(string: "4x"), isBinary: false)
                == .message(ByteBuffer(string: "x"))
        )
    }

    @Test func rejectsInvalidPackets() {
        #expect(throws: EngineIOCodecError.self) { try self.decodeText("") }
        do {
            _ = try self.decodeText("abc")
            Issue.record("abc decoded")
        } catch {
            #expect(error.code == .unknownPacketType)
            #expect(error.context.contains("0x61"))
        }
        do {
            _ = try self.decodeText("")
        } catch {
            #expect(error.code == .emptyPacket)
        }
    }

    @Test func encodesWebSocketPayloads() throws {
        let cases: [(EngineIOPacket, String)] = [
            (.open(ByteBuffer(string: "{}")), "0{}"),
            (.close, "1"),
            (.ping(probe: false), "2"),
            (.ping(probe: true), "2probe"),
            (.pong(probe: true), "3probe"),
            (.message(ByteBuffer(string: "héllo")), "4héllo"),
            (.upgrade, "5"),
            (.noop, "6"),
        ]
        for (packet, text) in cases {
            #expect(String(buffer: packet.webSocketPayload()) == text)
            #expect(try EngineIOPacket.decode(text: ByteBuffer(string: text)) == packet)
        }
        #expect(
            EngineIOPacket.binaryMessage(ByteBuffer(bytes: [9, 8])).webSocketPayload() == ByteBuffer(bytes: [9, 8])
        )
    }
}

@Suite struct EngineIOPollingPayloadTests {
    @Test func decodesTheSpecExample() throws {
        let packets = try EngineIOPollingPayload.decode(
            ByteBuffer(string: "4hello\u{1e}2\u{1e}4world"),
            maxPayload: 100
        )
        #expect(
            packets == [
                .message(ByteBuffer(string: "hello")), .ping(probe: false), .message(ByteBuffer(string: "world")),
            ]
        )
    }

    @Test func decodesBinaryRecords() throws {
        let packets = try EngineIOPollingPayload.decode(ByteBuffer(string: "4hello\u{1e}bAQIDBA=="), maxPayload: 100)
        #expect(packets == [.message(ByteBuffer(string: "hello")), .binaryMessage(ByteBuffer(bytes: [1, 2, 3, 4]))])
    }

    @Test func encodesBatches() {
        let body = EngineIOPollingPayload.encode([
            .message(ByteBuffer(string: "test1")), .message(ByteBuffer(string: "test2")),
            .message(ByteBuffer(string: "test3")),
        ])
        #expect(String(buffer: body) == "4test1\u{1e}4test2\u{1e}4test3")
        let mixed = EngineIOPollingPayload.encode([
            .message(ByteBuffer(string: "hello")), .binaryMessage(ByteBuffer(bytes: [1, 2, 3, 4])),
        ])
        #expect(String(buffer: mixed) == "4hello\u{1e}bAQIDBA==")
        #expect(String(buffer: EngineIOPollingPayload.encode([.noop])) == "6")
    }

    @Test(arguments: [0, 1, 2, 3, 4, 5, 6, 7, 255, 256, 1000])
    func binaryRoundTrip(length: Int) throws {
        let bytes = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        let body = EngineIOPollingPayload.encode([.binaryMessage(bytes), .message(ByteBuffer(string: "x"))])
        #expect(
            try EngineIOPollingPayload.decode(body, maxPayload: 1 << 20) == [
                .binaryMessage(bytes), .message(ByteBuffer(string: "x")),
            ]
        )
        #expect(EngineIOPollingPayload.encodedRecordLength(.binaryMessage(bytes)) == body.readableBytes - 3)
    }

    @Test func rejectsBadPayloads() {
        func code(_ text: String, max: Int = 100) -> EngineIOCodecError.Code? {
            do {
                _ = try EngineIOPollingPayload.decode(ByteBuffer(string: text), maxPayload: max)
                return nil
            } catch {
                return error.code
            }
        }
        #expect(code("abc") == .unknownPacketType)
        #expect(code("4a\u{1e}\u{1e}4b") == .emptyPacket)
        #expect(code("") == .emptyPacket)
        #expect(code("b!!!") == .invalidBase64)
        #expect(code("bA") == .invalidBase64)
        #expect(code("4hello", max: 5) == .payloadTooLarge)
        #expect(code("4hello", max: 6) == nil)
    }

    @Test func errorContextNamesTheRecord() {
        do {
            _ = try EngineIOPollingPayload.decode(ByteBuffer(string: "4ok\u{1e}x"), maxPayload: 100)
        } catch {
            #expect(error.context.hasPrefix("record 2 of a polling payload"))
        }
    }
}
