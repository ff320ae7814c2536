import FuzzSupport
import NIOCore
import SocketGatewayCoreForFuzzing

/// One input is one WebSocket frame: the first byte's low bit chooses a binary (1) or a text (0) frame, the rest
/// is the frame's payload. Properties: decoding never traps; whatever decodes encodes to a frame that decodes to
/// the same packet, and a text frame that decodes is re-encoded byte for byte unless the decoder dropped data
/// that the packet type does not carry (close, upgrade, noop, a ping/pong that is not `probe`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEngineIOPacket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let selector = input.first else { return 0 }
    let isBinary = selector & 1 == 1
    let frame = ByteBuffer(bytes: input.dropFirst())
    let packet: EngineIOPacket
    do {
        packet = try EngineIOPacket.decode(webSocketFrame: frame, isBinary: isBinary)
    } catch {
        if isBinary { fuzzFailure("a binary frame was refused: \(error)") }
        return 0
    }
    let payload = packet.webSocketPayload()
    let again: EngineIOPacket
    do {
        again = try EngineIOPacket.decode(webSocketFrame: payload, isBinary: packet.isBinary)
    } catch {
        fuzzFailure("the encoding of \(packet) does not decode: \(error)")
    }
    guard again == packet else { fuzzFailure("\(packet) decodes back as \(again)") }
    switch packet {
    case .open, .message, .binaryMessage, .ping(probe: true), .pong(probe: true):
        guard payload == frame else { fuzzFailure("\(packet) is not re-encoded byte for byte") }
    case .close, .upgrade, .noop, .ping(probe: false), .pong(probe: false):
        guard payload.readableBytes == 1,
            payload.getInteger(at: payload.readerIndex, as: UInt8.self)
                == frame.getInteger(at: frame.readerIndex, as: UInt8.self)
        else {
            fuzzFailure("\(packet) is not encoded as its type digit alone")
        }
    }
    return 0
}
