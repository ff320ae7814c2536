import FuzzSupport
import NIOCore
import SocketGatewayCoreForFuzzing

/// One input is one polling POST body. Properties: decoding never traps and never allocates beyond the body's
/// size class; whatever decodes is encoded (as a polling GET body is) to bytes that decode to the same packets.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPollingPayload(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = ByteBuffer(bytes: fuzzInput(data, size))
    let packets: [EngineIOPacket]
    do {
        packets = try EngineIOPollingPayload.decode(body, maxPayload: 1_000_000)
    } catch {
        return 0
    }
    guard !packets.isEmpty else { fuzzFailure("a body decoded to no packets") }
    let encoded = EngineIOPollingPayload.encode(packets)
    let bound = packets.reduce(packets.count - 1) { $0 + EngineIOPollingPayload.encodedRecordLength($1) }
    guard encoded.readableBytes <= bound else {
        fuzzFailure("encodedRecordLength is not an upper bound: \(encoded.readableBytes) > \(bound)")
    }
    let again: [EngineIOPacket]
    do {
        again = try EngineIOPollingPayload.decode(encoded, maxPayload: Int.max)
    } catch {
        fuzzFailure("the encoding of \(packets) does not decode: \(error)")
    }
    guard again == packets else { fuzzFailure("\(packets) decode back as \(again)") }
    return 0
}
