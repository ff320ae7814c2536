import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOWebSocket
import Testing

@testable import SocketGatewayEngineIO

/// permessage-deflate (RFC 7692) without sockets: the negotiation (offers in, answer out), the zlib codec, the
/// rewrite of the server's frames, and the receive rules for RSV1.
@Suite struct WebSocketDeflateTests {
    typealias Negotiation = WebSocketDeflateNegotiation

    // MARK: negotiation

    @Test(arguments: [
        // What browsers, websocket-client and aiohttp send.
        ("permessage-deflate; client_max_window_bits", false),
        ("permessage-deflate", false),
        ("PerMessage-Deflate ;client_max_window_bits=10", false),
        ("permessage-deflate; client_max_window_bits=\"12\"", false),
        ("permessage-deflate; server_no_context_takeover; client_no_context_takeover", false),
        ("permessage-deflate; server_max_window_bits=15", true),
        // The first acceptable offer wins: the one asking for a smaller server window is declined, the next taken.
        ("permessage-deflate; server_max_window_bits=10, permessage-deflate", false),
        ("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", false),
    ])
    func acceptedOffers(offer: String, answersWindowBits: Bool) {
        #expect(Negotiation.negotiate(offers: [offer]) == answersWindowBits)
    }

    @Test(arguments: [
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=10",  // we compress with one 15-bit window for every client
        "permessage-deflate; server_max_window_bits",  // a value is required
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=ten",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; unknown_parameter",
    ])
    func declinedOffers(offer: String) {
        #expect(Negotiation.negotiate(offers: [offer]) == nil)
    }

    @Test func offersAcrossHeaderLines() {
        // Several Sec-WebSocket-Extensions lines are one list, in order (RFC 6455 §9.1).
        #expect(Negotiation.negotiate(offers: ["permessage-deflate; foo", "permessage-deflate"]) == false)
    }

    @Test func answerAndConfiguration() throws {
        let headers = HTTPHeaders([("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
        // Off by default: no answer however good the offer.
        #expect(Negotiation.negotiate(headers, configuration: nil) == nil)
        let agreement = try #require(Negotiation.negotiate(headers, configuration: .init(threshold: 2048)))
        #expect(agreement.threshold == 2048)
        #expect(
            agreement.responseHeader == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        )
        let windowBits = HTTPHeaders([("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=15")])
        #expect(
            Negotiation.negotiate(windowBits, configuration: .init())?.responseHeader
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                + "server_max_window_bits=15"
        )
        #expect(Negotiation.negotiate(HTTPHeaders(), configuration: .init()) == nil)
    }

    // MARK: codec

    static func compress(_ bytes: [UInt8]) throws -> ByteBuffer {
        let deflater = try #require(WebSocketDeflater())
        var output = ByteBuffer()
        let input = ByteBuffer(bytes: bytes)
        deflater.compress(input.readableBytesView, into: &output)
        return output
    }

    static func sample(count: Int) -> [UInt8] {
        // Compressible but not trivial: JSON-ish text with a counter.
        var text = ""
        var index = 0
        while text.utf8.count < count {
            text += "{\"row\":\(index),\"value\":\"cell \(index % 97)\"},"
            index += 1
        }
        return Array(text.utf8.prefix(count))
    }

    @Test(arguments: [0, 1, 100, 1024, 70_000, 1 << 20])
    func roundTrip(count: Int) throws {
        let bytes = Self.sample(count: count)
        let compressed = try Self.compress(bytes)
        if count >= 1024 { #expect(compressed.readableBytes < count / 2) }
        // The 00 00 FF FF tail of the sync flush is not sent (§7.2.1).
        #expect(compressed.readableBytesView.suffix(4).elementsEqual([0, 0, 0xFF, 0xFF]) == false)
        let inflater = try #require(WebSocketInflater())
        let inflated = try inflater.inflate(compressed, limit: 1 << 20).get()
        #expect(Array(inflated.readableBytesView) == bytes)
        // The same inflater takes the next message (reset between messages: client_no_context_takeover).
        let again = try inflater.inflate(compressed, limit: 1 << 20).get()
        #expect(Array(again.readableBytesView) == bytes)
    }

    @Test func inflateStopsAtTheLimit() throws {
        // 64 MiB of zeros compress to about 64 KiB: inflating must stop at the limit, not allocate 64 MiB.
        let bomb = try Self.compress(Array(repeating: 0, count: 64 << 20))
        #expect(bomb.readableBytes < 100_000)
        let inflater = try #require(WebSocketInflater())
        #expect(inflater.inflate(bomb, limit: 1_000_000) == .failure(.tooLarge(limit: 1_000_000)))
        // Exactly at the limit is fine; one byte over is not.
        let exact = try Self.compress(Array(repeating: 0, count: 5000))
        #expect(try inflater.inflate(exact, limit: 5000).get().readableBytes == 5000)
        #expect(inflater.inflate(exact, limit: 4999) == .failure(.tooLarge(limit: 4999)))
    }

    @Test func corruptDataFails() throws {
        let inflater = try #require(WebSocketInflater())
        // 0xFF: BTYPE 11 is reserved in DEFLATE.
        #expect(inflater.inflate(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF]), limit: 1000) == .failure(.corrupt))
        // The inflater still works after a failure.
        let fine = try Self.compress(Array("hello".utf8))
        #expect(try inflater.inflate(fine, limit: 1000).get() == ByteBuffer(string: "hello"))
    }

    // MARK: frames

    /// Splits server frames into (first byte, payload).
    static func frames(_ buffer: ByteBuffer) -> [(first: UInt8, payload: ByteBuffer)] {
        var buffer = buffer
        var frames: [(UInt8, ByteBuffer)] = []
        while let first = buffer.readInteger(as: UInt8.self), let second = buffer.readInteger(as: UInt8.self) {
            var length = Int(second & 0x7F)
            if length == 126 { length = Int(buffer.readInteger(as: UInt16.self)!) }
            if length == 127 { length = Int(buffer.readInteger(as: UInt64.self)!) }
            frames.append((first, buffer.readSlice(length: length)!))
        }
        return frames
    }

    @Test func framesAtOrAboveTheThresholdAreCompressed() throws {
        let large = Self.sample(count: 5000)
        let message = EngineIOOutboundMessage(
            textPayload: ByteBuffer(bytes: large),
            attachments: [ByteBuffer(bytes: large), ByteBuffer(bytes: [1, 2, 3])]
        )
        let frames = Self.frames(WebSocketDeflateFrames.compress(message.webSocketFrames, threshold: 1024))
        #expect(frames.map(\.first) == [0xC1, 0xC2, 0x82])  // FIN+RSV1 text, FIN+RSV1 binary, plain binary
        let inflater = try #require(WebSocketInflater())
        #expect(Array(try inflater.inflate(frames[0].payload, limit: 1 << 20).get().readableBytesView) == [52] + large)
        #expect(Array(try inflater.inflate(frames[1].payload, limit: 1 << 20).get().readableBytesView) == large)
        #expect(frames[2].payload == ByteBuffer(bytes: [1, 2, 3]))
    }

    @Test func smallOrIncompressibleFramesAreLeftAlone() {
        let small = EngineIOOutboundMessage(textPayload: ByteBuffer(string: "2[\"tick\"]"))
        #expect(WebSocketDeflateFrames.compress(small.webSocketFrames, threshold: 1024) == small.webSocketFrames)
        // Random bytes do not get smaller: sent as they are (RSV1 clear).
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let binary = EngineIOOutboundMessage(
            textPayload: ByteBuffer(string: "x"),
            attachments: [ByteBuffer(bytes: noise)]
        )
        #expect(WebSocketDeflateFrames.compress(binary.webSocketFrames, threshold: 1024) == binary.webSocketFrames)
        // Threshold 0 compresses everything that shrinks.
        let text = EngineIOOutboundMessage(textPayload: ByteBuffer(bytes: Self.sample(count: 200)))
        #expect(Self.frames(WebSocketDeflateFrames.compress(text.webSocketFrames, threshold: 0)).map(\.first) == [0xC1])
    }

    @Test func broadcastIsCompressedOncePerMessage() throws {
        // Two clients that agreed get the very same compressed bytes (one buffer), a third that did not gets the
        // plain frames.
        let endpoint = EngineIOEndpoint(
            path: "/engine.io/",
            configuration: EngineIOConfiguration(),
            application: EngineIOEchoApplication(),
            logger: Logger(label: "test")
        )
        let agreement = WebSocketDeflateAgreement(threshold: 1024, answersServerMaxWindowBits: false)
        let first = ChannelWebSocketConnection(channel: EmbeddedChannel(), endpoint: endpoint, deflate: agreement)
        let second = ChannelWebSocketConnection(channel: EmbeddedChannel(), endpoint: endpoint, deflate: agreement)
        let plain = ChannelWebSocketConnection(channel: EmbeddedChannel(), endpoint: endpoint)
        let message = EngineIOOutboundMessage(textPayload: ByteBuffer(bytes: Self.sample(count: 4000)))
        let a = message.webSocketFrames(for: first)
        let b = message.webSocketFrames(for: second)
        #expect(a.readableBytes < message.webSocketFrames.readableBytes)
        let sameStorage = a.withUnsafeReadableBytes { x in
            b.withUnsafeReadableBytes { y in x.baseAddress == y.baseAddress }
        }
        #expect(sameStorage)
        #expect(message.webSocketFrames(for: plain) == message.webSocketFrames)
    }

    // MARK: receive rules

    func frame(_ bytes: [UInt8]) throws -> WebSocketFrame {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder()))
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        return try #require(try channel.readInbound(as: WebSocketFrame.self))
    }

    func masked(_ first: UInt8, _ payload: [UInt8] = []) -> [UInt8] {
        [first, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload
    }

    @Test func rsv1MarksTheFirstFrameOfACompressedMessage() throws {
        var assembler = WebSocketMessageAssembler(maxMessageSize: 1000, compressionAgreed: true)
        #expect(
            try assembler.receive(try self.frame(self.masked(0xC1, [1]))).get()
                == .message(.text, ByteBuffer(bytes: [1]), compressed: true)
        )
        // Fragmented: RSV1 on the first frame only, the message is compressed as a whole.
        #expect(try assembler.receive(try self.frame(self.masked(0x42, [1]))).get() == .none)
        #expect(
            try assembler.receive(try self.frame(self.masked(0x80, [2]))).get()
                == .message(.binary, ByteBuffer(bytes: [1, 2]), compressed: true)
        )
        #expect(
            try assembler.receive(try self.frame(self.masked(0x81, [3]))).get()
                == .message(.text, ByteBuffer(bytes: [3]), compressed: false)
        )
    }

    @Test(arguments: [
        (UInt8(0xC9), true),  // RSV1 on a ping
        (0xC1, false),  // RSV1 without the extension
        (0xA1, true),  // RSV2 is never ours
    ])
    func rsv1ElsewhereIsAProtocolError(first: UInt8, agreed: Bool) throws {
        var assembler = WebSocketMessageAssembler(maxMessageSize: 1000, compressionAgreed: agreed)
        guard case .failure(let violation) = assembler.receive(try self.frame(self.masked(first, [1]))) else {
            Issue.record("frame \(first) accepted")
            return
        }
        #expect(violation.close.code == 1002)
    }

    @Test func rsv1OnAContinuationIsAProtocolError() throws {
        var assembler = WebSocketMessageAssembler(maxMessageSize: 1000, compressionAgreed: true)
        #expect(try assembler.receive(try self.frame(self.masked(0x41, [1]))).get() == .none)
        guard case .failure(let violation) = assembler.receive(try self.frame(self.masked(0xC0, [2]))) else {
            Issue.record("RSV1 continuation accepted")
            return
        }
        #expect(violation.close.code == 1002)
    }
}
