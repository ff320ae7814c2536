import FuzzSupport
import NIOCore
import SocketGatewayCoreForFuzzing

/// One input is the sequence of Engine.IO messages of one connection, fed to one decoder: each step is a control
/// byte (low bit: 0 text, 1 binary; bit 1 set: reset the decoder first), a length byte, then that many bytes (or
/// what is left). Properties: the state machine never traps, allocates in proportion to its input, is idle after
/// any error, and every packet it completes encodes to messages that a fresh decoder turns into the same packet
/// (up to number kind, since the encoder writes JavaScript's form, and the binary type, which the encoder derives
/// from whether there are attachments).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSocketIOPacket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = fuzzInput(data, size)[...]
    var decoder = SocketIOPacketDecoder(maxAttachments: 10, maxDepth: 32)
    while let control = input.popFirst() {
        let length = Int(input.popFirst() ?? 0)
        let message = ByteBuffer(bytes: input.prefix(length))
        input = input.dropFirst(length)
        if control & 2 != 0 { decoder.reset() }
        let packet: SocketIOPacket?
        do {
            packet = control & 1 == 0 ? try decoder.decode(text: message) : try decoder.decode(binary: message)
        } catch {
            guard !decoder.isAwaitingAttachments else { fuzzFailure("the decoder still waits after \(error)") }
            continue
        }
        if let packet {
            guard !decoder.isAwaitingAttachments else { fuzzFailure("the decoder waits after completing \(packet)") }
            checkRoundTrip(packet)
        }
    }
    return 0
}

private func checkRoundTrip(_ packet: SocketIOPacket) {
    let (text, attachments) = packet.encoded()
    var fresh = SocketIOPacketDecoder(maxAttachments: 10, maxDepth: 32)
    var decoded: SocketIOPacket?
    do {
        decoded = try fresh.decode(text: text)
        for attachment in attachments {
            guard decoded == nil else { fuzzFailure("\(packet) completed before its last attachment") }
            decoded = try fresh.decode(binary: attachment)
        }
    } catch {
        fuzzFailure("the encoding \(String(buffer: text)) of \(packet) does not decode: \(error)")
    }
    guard let decoded else { fuzzFailure("the encoding \(String(buffer: text)) of \(packet) is incomplete") }
    guard packet.namespace == decoded.namespace, packet.ackID == decoded.ackID,
        unbinaryType(packet.type) == unbinaryType(decoded.type),
        packet.data.map({ d in decoded.data.map { javaScriptEquivalent(d, $0) } ?? false }) ?? (decoded.data == nil)
    else {
        fuzzFailure("\(packet) encoded as \(String(buffer: text)) decodes as \(decoded)")
    }
}

private func unbinaryType(_ type: SocketIOPacketType) -> SocketIOPacketType {
    switch type {
    case .binaryEvent: .event
    case .binaryAck: .ack
    default: type
    }
}
