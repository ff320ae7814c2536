import NIOConcurrencyHelpers
public import NIOCore
import SocketGatewayCore

/// A text message (and binary attachments) encoded once, from which each transport takes what it needs.
///
/// WebSocket recipients get `webSocketFrames`: the complete unmasked server frames (`4<text>` as a text frame,
/// then one binary frame per attachment) in one buffer, written as-is to every recipient's socket. Polling
/// recipients buffer the packets and encode them into their next GET response.
package struct EngineIOOutboundMessage: Sendable {
    /// The text payload (after the `4`).
    package let textPayload: ByteBuffer
    /// Binary attachments sent right after the text message, each as its own binary message.
    package let attachments: [ByteBuffer]
    /// All frames, ready for the wire.
    package let webSocketFrames: ByteBuffer
    /// The frames as clients that agreed to permessage-deflate get them, built by the first such recipient (on
    /// its loop) and then shared: the server never keeps a compression context, so they are the same for all.
    private let deflated = NIOLockedValueBox<(threshold: Int, frames: ByteBuffer)?>(nil)

    /// Encodes the message once.
    /// - Parameters:
    ///   - textPayload: the message text after the `4` (e.g. a Socket.IO packet).
    ///   - attachments: binary messages that follow it.
    package init(textPayload: ByteBuffer, attachments: [ByteBuffer] = []) {
        self.textPayload = textPayload
        self.attachments = attachments
        var size =
            WebSocketFrameBytes.headerLength(payloadLength: textPayload.readableBytes + 1) + textPayload.readableBytes
            + 1
        for attachment in attachments {
            size += WebSocketFrameBytes.headerLength(payloadLength: attachment.readableBytes) + attachment.readableBytes
        }
        var frames = ByteBuffer()
        frames.reserveCapacity(size)
        WebSocketFrameBytes.writeHeader(opcode: .text, payloadLength: textPayload.readableBytes + 1, into: &frames)
        frames.writeInteger(UInt8(ascii: "4"))
        var text = textPayload
        frames.writeBuffer(&text)
        for attachment in attachments {
            WebSocketFrameBytes.writeHeader(opcode: .binary, payloadLength: attachment.readableBytes, into: &frames)
            var attachment = attachment
            frames.writeBuffer(&attachment)
        }
        self.webSocketFrames = frames
    }

    /// Encodes a text message (no attachments) into one buffer: `writeTextPayload` appends the text after the
    /// `4`, then the frame header is put in the room left before it. `textPayload` is a view of the same bytes, so
    /// the message costs one allocation and no copy of its text.
    /// - Parameters:
    ///   - capacity: The text's expected length in bytes (a hint; the buffer grows if it is longer).
    ///   - writeTextPayload: Appends the message text after the `4` (e.g. a Socket.IO packet).
    package init(textPayloadCapacity capacity: Int, writingTextPayload writeTextPayload: (inout ByteBuffer) -> Void) {
        let headerRoom = WebSocketFrameBytes.maximumHeaderLength
        var frames = ByteBuffer()
        frames.reserveCapacity(headerRoom + 1 + capacity)
        frames.moveWriterIndex(forwardBy: headerRoom)
        frames.writeInteger(UInt8(ascii: "4"))
        writeTextPayload(&frames)
        let payloadLength = frames.writerIndex - headerRoom
        let headerStart = headerRoom - WebSocketFrameBytes.headerLength(payloadLength: payloadLength)
        WebSocketFrameBytes.setHeader(opcode: .text, payloadLength: payloadLength, at: headerStart, in: &frames)
        frames.moveReaderIndex(to: headerStart)
        self.textPayload = frames.getSlice(at: headerRoom + 1, length: payloadLength - 1)!
        self.attachments = []
        self.webSocketFrames = frames
    }

    /// The frames for `connection`: compressed (once per message, whoever asks first) when it agreed to
    /// permessage-deflate, else ``webSocketFrames``.
    func webSocketFrames(for connection: (any EngineIOWebSocketConnection)?) -> ByteBuffer {
        guard let deflate = connection?.deflate else { return self.webSocketFrames }
        return self.deflated.withLockedValue { cached in
            if let cached, cached.threshold == deflate.threshold { return cached.frames }
            let frames = WebSocketDeflateFrames.compress(self.webSocketFrames, threshold: deflate.threshold)
            cached = (deflate.threshold, frames)
            return frames
        }
    }

    /// The message as Engine.IO packets (for the polling buffer).
    var packets: [EngineIOPacket] {
        var packets: [EngineIOPacket] = [.message(self.textPayload)]
        for attachment in self.attachments { packets.append(.binaryMessage(attachment)) }
        return packets
    }
}

/// Unmasked server-to-client WebSocket frames (RFC 6455 §5.2), built once so they can be written to many sockets.
enum WebSocketFrameBytes {
    enum Opcode: UInt8 {
        case text = 0x1
        case binary = 0x2
    }

    static func headerLength(payloadLength: Int) -> Int {
        payloadLength < 126 ? 2 : (payloadLength <= 0xFFFF ? 4 : 10)
    }

    /// The longest header `writeHeader` writes (a 64-bit length).
    static var maximumHeaderLength: Int { 10 }

    /// Sets the header of a frame carrying `payloadLength` bytes at `index` of `buffer` (which must be written
    /// that far: `headerLength(payloadLength:)` bytes from `index`).
    static func setHeader(opcode: Opcode, payloadLength: Int, at index: Int, in buffer: inout ByteBuffer) {
        buffer.setInteger(0x80 | opcode.rawValue, at: index)
        if payloadLength < 126 {
            buffer.setInteger(UInt8(payloadLength), at: index + 1)
        } else if payloadLength <= 0xFFFF {
            buffer.setInteger(UInt8(126), at: index + 1)
            buffer.setInteger(UInt16(payloadLength), at: index + 2)
        } else {
            buffer.setInteger(UInt8(127), at: index + 1)
            buffer.setInteger(UInt64(payloadLength), at: index + 2)
        }
    }

    static func writeHeader(opcode: Opcode, payloadLength: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(0x80 | opcode.rawValue)
        if payloadLength < 126 {
            buffer.writeInteger(UInt8(payloadLength))
        } else if payloadLength <= 0xFFFF {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(payloadLength))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(payloadLength))
        }
    }

    /// The length of `frame(for: packet)`, without building it.
    static func frameLength(for packet: EngineIOPacket) -> Int {
        let payloadLength: Int
        if case .binaryMessage(let bytes) = packet {
            payloadLength = bytes.readableBytes
        } else {
            payloadLength = EngineIOPollingPayload.encodedRecordLength(packet)
        }
        return Self.headerLength(payloadLength: payloadLength) + payloadLength
    }

    /// One complete frame carrying `packet`.
    static func frame(for packet: EngineIOPacket, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer
    {
        let length = EngineIOPollingPayload.encodedRecordLength(packet)
        var buffer = allocator.buffer(capacity: length + 10)
        if case .binaryMessage(let bytes) = packet {
            Self.writeHeader(opcode: .binary, payloadLength: bytes.readableBytes, into: &buffer)
        } else {
            Self.writeHeader(opcode: .text, payloadLength: length, into: &buffer)
        }
        packet.encodeWebSocketPayload(into: &buffer)
        return buffer
    }
}

/// What the micro-benchmarks in tools/benchmarks call: they are another package, so `package` declarations are
/// out of their reach. SPI, not API.
@_spi(Benchmarks)
public enum EngineIOBenchmarkSupport {
    /// Encodes a message as an emit does (``EngineIOOutboundMessage``) and returns its WebSocket frames.
    /// - Parameters:
    ///   - textPayload: The message text after the `4`.
    ///   - attachments: Binary messages that follow it.
    /// - Returns: The frames, ready for the wire.
    public static func webSocketFrames(textPayload: ByteBuffer, attachments: [ByteBuffer]) -> ByteBuffer {
        EngineIOOutboundMessage(textPayload: textPayload, attachments: attachments).webSocketFrames
    }
}
