import FuzzSupport
import NIOCore
import SocketGatewayCoreForFuzzing

/// One input is one message as published on python-socketio's Redis channel. Properties: decoding never traps;
/// whatever decodes is encoded (as python-socketio's `json.dumps` writes it) to bytes that decode to the same
/// message, and encoding that again gives the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPubSub(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let message: PubSubMessage
    do {
        message = try PubSubMessage.decode(ByteBuffer(bytes: fuzzInput(data, size)))
    } catch {
        return 0
    }
    _ = message.isRelevant(toHost: "fuzz")
    // Python's form writes non-finite numbers as NaN/Infinity, which strict JSON (and this decoder) refuses.
    if containsNonFinite(message.jsonValue) { return 0 }
    let encoded = message.encoded()
    let again: PubSubMessage
    do {
        again = try PubSubMessage.decode(encoded)
    } catch {
        fuzzFailure("the encoding \(String(buffer: encoded)) of \(message) does not decode: \(error)")
    }
    guard again == message else { fuzzFailure("\(message) encoded as \(String(buffer: encoded)) decodes as \(again)") }
    guard again.encoded() == encoded else { fuzzFailure("the encoding of \(message) is not a fixpoint") }
    return 0
}
