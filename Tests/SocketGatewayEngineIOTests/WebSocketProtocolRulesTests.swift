import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import SocketGatewayEngineIO

/// The RFC 6455 rules on byte fixtures: frames as a client puts them on the wire, decoded by NIO's own decoder.
@Suite struct WebSocketProtocolRulesTests {
    typealias Rules = WebSocketProtocolRules

    /// Decodes one frame from wire bytes with NIO's `WebSocketFrameDecoder`.
    func frame(_ bytes: [UInt8]) throws -> WebSocketFrame {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder()))
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        return try #require(try channel.readInbound(as: WebSocketFrame.self))
    }

    /// A masked (mask 0: payload as is) client frame.
    func masked(_ first: UInt8, _ payload: [UInt8] = []) -> [UInt8] {
        [first, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload
    }

    func closePayload(_ code: UInt16, _ reason: [UInt8] = []) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(code)
        buffer.writeBytes(reason)
        return buffer
    }

    @Test func wellFormedFramesPass() throws {
        for first: UInt8 in [0x81, 0x82, 0x01, 0x00, 0x80, 0x88, 0x89, 0x8A] {
            #expect(Rules.check(try self.frame(self.masked(first, [0x34]))) == nil, "first byte \(first)")
        }
    }

    @Test(arguments: [UInt8(0x40), 0x20, 0x10, 0x70])
    func reservedBitsFailWith1002(rsv: UInt8) throws {
        let violation = try #require(Rules.check(try self.frame(self.masked(0x81 | rsv, [0x34]))))
        #expect(violation.close.code == 1002)
    }

    @Test func unmaskedFrameFailsWith1002() throws {
        let violation = try #require(Rules.check(try self.frame([0x81, 0x02, 0x34, 0x78])))
        #expect(violation.close == WebSocketClose(code: 1002, reason: "unmasked frame"))
    }

    @Test(arguments: [UInt8(3), 4, 5, 6, 7, 11, 12, 13, 14, 15])
    func reservedOpcodesFailWith1002(opcode: UInt8) throws {
        let violation = try #require(Rules.check(try self.frame(self.masked(0x80 | opcode))))
        #expect(violation.close.code == 1002)
    }

    @Test func textMustBeValidUTF8() {
        #expect(Rules.checkText(ByteBuffer(string: "4{\"a\":\"héllo 🌍\"}")) == nil)
        #expect(Rules.checkText(ByteBuffer()) == nil)
        for invalid: [UInt8] in [
            [0x34, 0xFF],  // never valid
            [0x34, 0xC0, 0xAF],  // overlong '/'
            [0x34, 0xED, 0xA0, 0x80],  // UTF-16 surrogate U+D800
            [0x34, 0xF4, 0x90, 0x80, 0x80],  // past U+10FFFF
            [0x34, 0xE2, 0x82],  // cut in the middle of a sequence
        ] {
            #expect(Rules.checkText(ByteBuffer(bytes: invalid))?.close.code == 1007, "\(invalid)")
        }
    }

    @Test(arguments: [
        UInt16(1000), 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
    ])
    func validCloseCodesAreEchoed(code: UInt16) {
        #expect(
            Rules.reply(toClosePayload: self.closePayload(code, Array("bye".utf8)))
                == .success(WebSocketClose(code: code))
        )
    }

    @Test(arguments: [UInt16(0), 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    func invalidCloseCodesFailWith1002(code: UInt16) throws {
        let reply = Rules.reply(toClosePayload: self.closePayload(code))
        guard case .failure(let violation) = reply else {
            Issue.record("code \(code) was answered \(reply)")
            return
        }
        #expect(violation.close.code == 1002)
    }

    @Test func closeWithoutCodeIsAnswered1000() {
        #expect(Rules.reply(toClosePayload: ByteBuffer()) == .success(.normal))
    }

    @Test func oneByteCloseFailsWith1002() {
        guard case .failure(let violation) = Rules.reply(toClosePayload: ByteBuffer(bytes: [0x03])) else {
            Issue.record("a 1-byte close payload was accepted")
            return
        }
        #expect(violation.close.code == 1002)
    }

    @Test func closeReasonMustBeValidUTF8() {
        guard
            case .failure(let violation) = Rules.reply(
                toClosePayload: self.closePayload(1000, [0xCE, 0xBA, 0xE1, 0xBD])
            )
        else {
            Issue.record("an invalid UTF-8 reason was accepted")
            return
        }
        #expect(violation.close.code == 1007)
    }

    @Test func closeFrameBytes() {
        #expect(
            WebSocketClose(code: 1002, reason: "ab").frameBytes == ByteBuffer(bytes: [0x88, 4, 0x03, 0xEA, 0x61, 0x62])
        )
        // A long reason is cut to fit a control frame (125 bytes), on a scalar boundary.
        let long = WebSocketClose(code: 1000, reason: String(repeating: "é", count: 100)).frameBytes
        #expect(long.readableBytes == 2 + 2 + 122)
    }

    @Test func sessionCloseReasonsMapToCodes() {
        #expect(Rules.close(for: .parseError).code == 1002)
        #expect(Rules.close(for: .payloadTooLarge).code == 1009)
        #expect(Rules.close(for: .slowClient).code == 1008)
        #expect(Rules.close(for: .forcedServerShutdown).code == 1001)
        #expect(Rules.close(for: .clientClose) == .normal)
        #expect(Rules.close(for: .serverClose) == .normal)
    }

    // MARK: joining fragments

    /// Feeds wire bytes (one or more frames) to an assembler; returns what each frame gave.
    func assemble(
        _ frames: [[UInt8]],
        limit: Int = 100,
        maxFragments: Int = 1 << 16
    ) throws -> [Result<WebSocketMessageAssembler.Output, WebSocketProtocolViolation>] {
        var assembler = WebSocketMessageAssembler(maxMessageSize: limit, maxFragments: maxFragments)
        return try frames.map { assembler.receive(try self.frame($0)) }
    }

    @Test func fragmentsAreJoinedAroundControlFrames() throws {
        let results = try self.assemble([
            self.masked(0x01, Array("4he".utf8)), self.masked(0x89, [1]), self.masked(0x00, Array("ll".utf8)),
            self.masked(0x80, Array("o".utf8)),
        ])
        #expect(try results[0].get() == .none)
        guard case .control(let ping) = try results[1].get() else {
            Issue.record("the ping was not passed on: \(results[1])")
            return
        }
        #expect(ping.opcode == .ping)
        #expect(try results[2].get() == .none)
        #expect(try results[3].get() == .message(.text, ByteBuffer(string: "4hello"), compressed: false))
    }

    @Test func fragmentSequenceErrorsFailWith1002() throws {
        // A continuation without a message, and a new message inside one.
        #expect(try self.assemble([self.masked(0x80, [1])])[0].failureCode == 1002)
        #expect(try self.assemble([self.masked(0x01, [0x34]), self.masked(0x81, [0x34])])[1].failureCode == 1002)
        // A continuation with RSV1: caught although NIO's aggregator would have joined it silently.
        #expect(try self.assemble([self.masked(0x01, [0x34]), self.masked(0xC0, [0x34])])[1].failureCode == 1002)
        #expect(
            try self.assemble(
                [self.masked(0x02, [1]), self.masked(0x00, [2]), self.masked(0x00, [3])],
                maxFragments: 2
            )[2].failureCode == 1002
        )
    }

    @Test func messagesOverTheLimitFailWith1009() throws {
        #expect(
            try self.assemble([self.masked(0x82, Array(repeating: 1, count: 11))], limit: 10)[0].failureCode == 1009
        )
        let split = try self.assemble(
            [self.masked(0x02, Array(repeating: 1, count: 6)), self.masked(0x80, Array(repeating: 1, count: 5))],
            limit: 10
        )
        #expect(split[1].failureCode == 1009)
        let fits = try self.assemble(
            [self.masked(0x02, Array(repeating: 1, count: 5)), self.masked(0x80, Array(repeating: 1, count: 5))],
            limit: 10
        )
        #expect(
            try fits[1].get() == .message(.binary, ByteBuffer(bytes: Array(repeating: 1, count: 10)), compressed: false)
        )
    }
}

extension Result where Failure == WebSocketProtocolViolation {
    /// The close code of a failure; nil for a success.
    var failureCode: UInt16? {
        guard case .failure(let violation) = self else { return nil }
        return violation.close.code
    }
}
