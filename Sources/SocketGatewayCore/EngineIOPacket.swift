package import NIOCore

/// One Engine.IO v4 packet.
///
/// On a WebSocket each packet is one frame: a text frame `<type digit><data>` or, for `binaryMessage`, a binary
/// frame carrying the bytes as they are. In a long-polling payload packets are records separated by `0x1e`, and a
/// binary message is written `b<base64>` (see ``EngineIOPollingPayload``).
package enum EngineIOPacket: Sendable, Hashable {
    /// `0{json}`: the handshake; the payload is the JSON object text.
    case open(ByteBuffer)
    /// `1`: the transport (and the session) is being closed.
    case close
    /// `2` or `2probe`: heartbeat ping, or the upgrade probe when `probe` is true.
    case ping(probe: Bool)
    /// `3` or `3probe`: heartbeat pong, or the answer to the upgrade probe when `probe` is true.
    case pong(probe: Bool)
    /// `4<text>`: a text message; the payload is the text after the `4`.
    case message(ByteBuffer)
    /// A binary message (binary WebSocket frame, or `b<base64>` in a polling payload).
    case binaryMessage(ByteBuffer)
    /// `5`: completes the upgrade to WebSocket.
    case upgrade
    /// `6`: no operation (ends a pending long-polling GET during an upgrade).
    case noop

    /// The packet type digit (`binaryMessage` has none: it is reported as `4`).
    package var typeCharacter: UInt8 {
        switch self {
        case .open: UInt8(ascii: "0")
        case .close: UInt8(ascii: "1")
        case .ping: UInt8(ascii: "2")
        case .pong: UInt8(ascii: "3")
        case .message, .binaryMessage: UInt8(ascii: "4")
        case .upgrade: UInt8(ascii: "5")
        case .noop: UInt8(ascii: "6")
        }
    }

    /// Whether this packet travels as a binary WebSocket frame.
    package var isBinary: Bool {
        if case .binaryMessage = self { return true }
        return false
    }

    private static let probe: StaticString = "probe"

    /// Decodes a text WebSocket frame (or a text polling record): `<type digit>[data]`.
    /// - Parameter text: the frame's bytes.
    /// - Throws: ``EngineIOCodecError`` when the frame is empty or its type is unknown.
    package static func decode(text: ByteBuffer) throws(EngineIOCodecError) -> EngineIOPacket {
        guard let type = text.getInteger(at: text.readerIndex, as: UInt8.self) else {
            throw EngineIOCodecError(code: .emptyPacket, context: "text packet of 0 bytes")
        }
        let data = text.getSlice(at: text.readerIndex + 1, length: text.readableBytes - 1) ?? ByteBuffer()
        func isProbe() -> Bool { data.readableBytesView.elementsEqual("probe".utf8) }
        switch type {
        case UInt8(ascii: "0"):
            return .open(data)
        case UInt8(ascii: "1"):
            return .close
        case UInt8(ascii: "2"):
            return .ping(probe: isProbe())
        case UInt8(ascii: "3"):
            return .pong(probe: isProbe())
        case UInt8(ascii: "4"):
            return .message(data)
        case UInt8(ascii: "5"):
            return .upgrade
        case UInt8(ascii: "6"):
            return .noop
        default:
            throw EngineIOCodecError(
                code: .unknownPacketType,
                context: "first byte 0x\(String(type, radix: 16)) of a \(text.readableBytes)-byte text packet"
            )
        }
    }

    /// Decodes a WebSocket frame.
    /// - Parameters:
    ///   - frame: the frame payload (unmasked).
    ///   - isBinary: true for a binary frame (always a binary message), false for a text frame.
    /// - Throws: ``EngineIOCodecError`` for an empty or unknown text packet.
    package static func decode(
        webSocketFrame frame: ByteBuffer,
        isBinary: Bool
    ) throws(EngineIOCodecError) -> EngineIOPacket {
        if isBinary { return .binaryMessage(frame) }
        return try Self.decode(text: frame)
    }

    /// Appends the text form `<type digit>[data]` (used by text WebSocket frames and polling records).
    /// `binaryMessage` is appended as raw bytes (a binary WebSocket frame's payload).
    package func encodeWebSocketPayload(into buffer: inout ByteBuffer) {
        switch self {
        case .binaryMessage(let bytes):
            var bytes = bytes
            buffer.writeBuffer(&bytes)
            return
        default:
            buffer.writeInteger(self.typeCharacter)
        }
        switch self {
        case .open(let data), .message(let data):
            var data = data
            buffer.writeBuffer(&data)
        case .ping(let probe), .pong(let probe):
            if probe { buffer.writeStaticString(Self.probe) }
        case .close, .upgrade, .noop, .binaryMessage:
            break
        }
    }

    /// The payload of the WebSocket frame carrying this packet (text for all but `binaryMessage`).
    package func webSocketPayload(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: self.encodedTextLength)
        self.encodeWebSocketPayload(into: &buffer)
        return buffer
    }

    /// Bytes of the text form (the raw length for `binaryMessage`).
    var encodedTextLength: Int {
        switch self {
        case .open(let data), .message(let data): 1 + data.readableBytes
        case .binaryMessage(let data): data.readableBytes
        case .ping(let probe), .pong(let probe): probe ? 6 : 1
        case .close, .upgrade, .noop: 1
        }
    }
}
