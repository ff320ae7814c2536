import NIOCore
import NIOWebSocket
import SocketGatewayCore
import Testing

@testable import SocketGatewayEngineIO

/// A framework's WebSocket takes messages, not our pre-built frames: `WebSocketFrameBytes.split` recovers each
/// frame's opcode and payload from the bytes an emit encodes once for every recipient.
@Suite struct ExternalWebSocketFramesTests {
    func split(_ buffer: ByteBuffer) -> [(WebSocketOpcode, String)] {
        var messages: [(WebSocketOpcode, ByteBuffer)] = []
        WebSocketFrameBytes.split(buffer, into: &messages)
        return messages.map { ($0.0, String(buffer: $0.1)) }
    }

    @Test func textMessageAndAttachmentsSplitBackIntoTheirPayloads() {
        let message = EngineIOOutboundMessage(
            textPayload: ByteBuffer(string: #"51-["file",{"_placeholder":true,"num":0}]"#),
            attachments: [ByteBuffer(string: "bin")]
        )
        let messages = self.split(message.webSocketFrames)
        #expect(messages.count == 2)
        #expect(messages.first?.0 == .text)
        #expect(messages.first?.1 == #"451-["file",{"_placeholder":true,"num":0}]"#)
        #expect(messages.last?.0 == .binary)
        #expect(messages.last?.1 == "bin")
    }

    @Test func everyLengthEncodingSplits() {
        // 7-bit, 16-bit and 64-bit payload lengths (RFC 6455 §5.2), including their boundaries.
        for length in [0, 1, 124, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = String(repeating: "z", count: length)
            let message = EngineIOOutboundMessage(textPayloadCapacity: length) { $0.writeString(text) }
            let messages = self.split(message.webSocketFrames)
            #expect(messages.count == 1, "length \(length)")
            #expect(messages.first?.0 == .text)
            #expect(messages.first?.1 == "4" + text, "length \(length)")
        }
    }

    @Test func engineIOControlPacketsSplitToo() {
        var frames = WebSocketFrameBytes.frame(for: .ping(probe: false))
        var pong = WebSocketFrameBytes.frame(for: .pong(probe: true))
        frames.writeBuffer(&pong)
        let messages = self.split(frames)
        #expect(messages.map(\.1) == ["2", "3probe"])
        #expect(messages.allSatisfy { $0.0 == .text })
    }

    @Test func aTruncatedFrameIsNotDelivered() {
        var frames = WebSocketFrameBytes.frame(for: .message(ByteBuffer(string: "hello")))
        frames.moveWriterIndex(to: frames.writerIndex - 1)
        #expect(self.split(frames).isEmpty)
    }
}
