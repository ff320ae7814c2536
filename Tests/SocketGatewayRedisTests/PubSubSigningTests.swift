import Foundation
import NIOCore
import SocketGatewayCore
import Testing

@testable import SocketGatewayRedis

@Suite struct PubSubSigningTests {
    static let secret = String(repeating: "k", count: 32)
    static let now: Int64 = 1_796_000_000_000

    static func signed(
        _ message: PubSubMessage,
        secret: String = Self.secret,
        at time: Int64 = Self.now
    ) throws
        -> ByteBuffer
    {
        let signer = PubSubSigner(try PubSubSigningKey(secret: secret))
        var buffer = ByteBuffer(string: "prefix")
        buffer.moveReaderIndex(forwardBy: 6)
        let start = buffer.writerIndex
        message.encode(into: &buffer)
        signer.sign(&buffer, from: start, now: time)
        return buffer
    }

    static let emit = PubSubMessage.emit(
        "sheet:sync:completed",
        arguments: [["sheet_id": "s1"]],
        to: .user("alice"),
        options: .init(),
        hostID: String(repeating: "a", count: 32)
    )

    @Test func aSignedMessageIsPythonSocketIOsJSONWithOneMoreField() throws {
        let bytes = try Self.signed(Self.emit)
        let text = String(buffer: bytes)
        let unsigned = String(buffer: Self.emit.encoded())
        #expect(text.hasPrefix(String(unsigned.dropLast())))
        #expect(text.contains(#", "sig": "v1.\#(Self.now)."#))
        #expect(text.hasSuffix("\"}"))
        // python-socketio (and our decoder) read it as the same message: the extra field is ignored.
        #expect(try PubSubMessage.decode(bytes) == Self.emit)
    }

    @Test func theKeyHolderAcceptsWhatItSigned() throws {
        let signer = PubSubSigner(try PubSubSigningKey(secret: Self.secret))
        let bytes = try Self.signed(Self.emit)
        #expect(signer.check(bytes, now: Self.now) == .valid)
        #expect(signer.check(bytes, now: Self.now + 59_000) == .valid)
        #expect(signer.check(bytes, now: Self.now - 59_000) == .valid, "a little clock skew")
    }

    @Test func everythingElseIsRefused() throws {
        let signer = PubSubSigner(try PubSubSigningKey(secret: Self.secret))
        #expect(signer.check(Self.emit.encoded(), now: Self.now) == .unsigned)
        #expect(signer.check(ByteBuffer(string: "garbage"), now: Self.now) == .unsigned)
        #expect(signer.check(ByteBuffer(), now: Self.now) == .unsigned)

        let otherKey = try Self.signed(Self.emit, secret: String(repeating: "x", count: 40))
        #expect(signer.check(otherKey, now: Self.now) == .invalid)

        // Any byte changed: the room, the timestamp, the signature itself.
        let text = String(buffer: try Self.signed(Self.emit))
        for (original, forged) in [("user:alice", "user:mallo"), ("v1.\(Self.now)", "v1.\(Self.now + 1)")] {
            let tampered = ByteBuffer(string: text.replacingOccurrences(of: original, with: forged))
            #expect(signer.check(tampered, now: Self.now) == .invalid, "\(forged)")
        }
        var flipped = Array(text.utf8)
        flipped[flipped.count - 3] =
            flipped[flipped.count - 3] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        #expect(signer.check(ByteBuffer(bytes: flipped), now: Self.now) == .invalid)
        let uppercase = ByteBuffer(string: String(text.dropLast(2)).uppercased() + "\"}")
        #expect(signer.check(uppercase, now: Self.now) != .valid)

        // A replay outside the window, and a message from the future.
        let old = try Self.signed(Self.emit, at: Self.now - 61_000)
        #expect(signer.check(old, now: Self.now) == .outOfWindow(ageMilliseconds: 61_000))
        let future = try Self.signed(Self.emit, at: Self.now + 61_000)
        #expect(signer.check(future, now: Self.now) == .outOfWindow(ageMilliseconds: -61_000))
    }

    @Test func shortSecretsAreRefused() {
        #expect(throws: PubSubSigningError.self) { try PubSubSigningKey(secret: "") }
        #expect(throws: PubSubSigningError.self) { try PubSubSigningKey(secret: String(repeating: "k", count: 31)) }
        do {
            _ = try PubSubSigningKey(secret: "abc")
        } catch {
            #expect(error.description.contains("at least 32"))
            #expect(!error.description.contains("abc"), "the secret is never printed")
        }
    }

    @Test func theWriterSignsOnlyWithAKey() throws {
        var plain = ByteBuffer()
        PubSubMessageWriter(signingKey: nil).write(Self.emit, into: &plain)
        #expect(plain == Self.emit.encoded())
        var signed = ByteBuffer()
        PubSubMessageWriter(signingKey: try PubSubSigningKey(secret: Self.secret)).write(Self.emit, into: &signed)
        let signer = PubSubSigner(try PubSubSigningKey(secret: Self.secret))
        #expect(signer.check(signed, now: PubSubSigner.wallClockMilliseconds()) == .valid)
    }
}
