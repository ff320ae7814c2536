import Crypto
import Foundation
package import NIOCore
package import SocketGatewayCore

/// The shared secret that signs and checks every message on the pub/sub channel (HMAC-SHA256), so that a process
/// that can publish on Redis but does not hold the secret cannot inject emits, room changes, disconnects or acks.
///
/// Off unless configured: python-socketio neither signs nor checks. A signed message is python-socketio's JSON
/// with one more field at its end, `"sig": "v1.<unix ms>.<hex>"`, so python-socketio servers on the channel still
/// read it (they ignore the field); python publishers' unsigned messages are refused by a server that has a key.
///
/// What it does not protect: a replay of a message seen on the channel within ``maximumAge`` (the timestamp is
/// signed; older and future-dated messages are refused), reading the channel (messages are not encrypted: use
/// Redis ACLs and TLS), or a holder of the secret.
package struct PubSubSigningKey: Sendable, Hashable {
    /// The fewest bytes a secret may have: HMAC-SHA256's block of guessing, as RFC 7518 asks for HS256.
    package static let minimumSecretBytes = 32

    let secret: [UInt8]
    /// How far a message's timestamp may be from the receiver's clock (replays older than this are refused).
    package var maximumAge: Duration

    /// Creates a key.
    /// - Parameters:
    ///   - secret: The shared secret, at least ``minimumSecretBytes`` bytes of UTF-8.
    ///   - maximumAge: How old (or future-dated) a message may be; default 60 s.
    /// - Throws: ``PubSubSigningError`` when the secret is too short.
    package init(secret: String, maximumAge: Duration = .seconds(60)) throws(PubSubSigningError) {
        guard secret.utf8.count >= Self.minimumSecretBytes else {
            throw PubSubSigningError(
                message: "the pub/sub signing secret has \(secret.utf8.count) bytes; it needs at least "
                    + "\(Self.minimumSecretBytes) (e.g. openssl rand -hex 32)"
            )
        }
        self.secret = Array(secret.utf8)
        self.maximumAge = maximumAge
    }
}

/// A signing secret that cannot be used.
package struct PubSubSigningError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    package var message: String

    /// A one-line description.
    package var description: String { self.message }
}

/// What checking one received message found.
package enum PubSubSignatureCheck: Sendable, Hashable {
    /// Signed with the key, within the allowed age.
    case valid
    /// No signature field at the end of the message.
    case unsigned
    /// A signature field that is malformed or does not match (another key, or the message was changed).
    case invalid
    /// Signed with the key, but its timestamp is further from now than the allowed age (by this many ms).
    case outOfWindow(ageMilliseconds: Int64)

    /// A short reason for counters and logs.
    package var reason: String {
        switch self {
        case .valid: return "valid"
        case .unsigned: return "unsigned"
        case .invalid: return "bad signature"
        case .outOfWindow: return "outside the time window"
        }
    }
}

/// Signs and checks pub/sub messages with a ``PubSubSigningKey``. Pure: the time is passed in.
package struct PubSubSigner: Sendable {
    private static let fieldStart = Array(#", "sig": "v1."#.utf8)
    /// The secret's bytes (`SymmetricKey` is not `Sendable` in this swift-crypto; it is made per message).
    private let secret: [UInt8]
    private let maximumAgeMilliseconds: Int64

    /// Creates a signer for `key`.
    package init(_ key: PubSubSigningKey) {
        self.secret = key.secret
        let (seconds, attoseconds) = key.maximumAge.components
        self.maximumAgeMilliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    private func mac(timestamp: Int64, unsigned: UnsafeRawBufferPointer, closingBrace: Bool) -> HMAC<SHA256>.MAC {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: self.secret))
        hmac.update(data: Array("v1.\(timestamp).".utf8))
        hmac.update(data: unsigned)
        if closingBrace { hmac.update(data: [UInt8(ascii: "}")]) }
        return hmac.finalize()
    }

    /// Signs the JSON object that `buffer` holds from `start` to its writer index (its last byte must be `}`):
    /// the closing brace is replaced by the signature field and a new closing brace.
    /// - Parameters:
    ///   - buffer: The message being encoded.
    ///   - start: Where the message starts in `buffer`.
    ///   - now: The current time in milliseconds since 1970 (wall clock: other machines compare it).
    package func sign(_ buffer: inout ByteBuffer, from start: Int, now: Int64) {
        let end = buffer.writerIndex
        precondition(end > start && buffer.getInteger(at: end - 1, as: UInt8.self) == UInt8(ascii: "}"))
        let mac = buffer.withUnsafeReadableBytes { readable in
            let offset = start - buffer.readerIndex
            return self.mac(
                timestamp: now,
                unsigned: UnsafeRawBufferPointer(rebasing: readable[offset..<(end - buffer.readerIndex)]),
                closingBrace: false
            )
        }
        buffer.moveWriterIndex(to: end - 1)
        buffer.writeBytes(Self.fieldStart)
        buffer.writeString(String(now))
        buffer.writeInteger(UInt8(ascii: "."))
        let digits = Array("0123456789abcdef".utf8)
        for byte in mac {
            buffer.writeInteger(digits[Int(byte >> 4)])
            buffer.writeInteger(digits[Int(byte & 0x0F)])
        }
        buffer.writeBytes([UInt8(ascii: "\""), UInt8(ascii: "}")])
    }

    /// Checks the signature at the end of a received message.
    /// - Parameters:
    ///   - message: The bytes as published.
    ///   - now: The current time in milliseconds since 1970.
    package func check(_ message: ByteBuffer, now: Int64) -> PubSubSignatureCheck {
        message.withUnsafeReadableBytes { bytes in
            // …, "sig": "v1.<digits>.<64 hex>"}
            let hexCount = 64
            guard bytes.count > Self.fieldStart.count + hexCount + 4,
                bytes[bytes.count - 1] == UInt8(ascii: "}"), bytes[bytes.count - 2] == UInt8(ascii: "\"")
            else { return .unsigned }
            let hexEnd = bytes.count - 2
            let hexStart = hexEnd - hexCount
            guard bytes[hexStart - 1] == UInt8(ascii: ".") else { return .unsigned }
            var timestampStart = hexStart - 1
            while timestampStart > 0, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[timestampStart - 1]),
                hexStart - 1 - timestampStart < 16
            {
                timestampStart -= 1
            }
            let fieldStart = timestampStart - Self.fieldStart.count
            guard timestampStart < hexStart - 1, fieldStart > 0,
                Self.fieldStart.elementsEqual(bytes[fieldStart..<timestampStart])
            else { return .unsigned }
            var timestamp: Int64 = 0
            for digit in bytes[timestampStart..<(hexStart - 1)] {
                timestamp = timestamp * 10 + Int64(digit - UInt8(ascii: "0"))
            }
            var expected: [UInt8] = []
            expected.reserveCapacity(32)
            var index = hexStart
            while index < hexEnd {
                guard let high = Self.hexValue(bytes[index]), let low = Self.hexValue(bytes[index + 1]) else {
                    return .invalid
                }
                expected.append(high << 4 | low)
                index += 2
            }
            let mac = self.mac(
                timestamp: timestamp,
                unsigned: UnsafeRawBufferPointer(rebasing: bytes[0..<fieldStart]),
                closingBrace: true
            )
            // Constant-time comparison.
            var difference: UInt8 = 0
            for (a, b) in zip(mac, expected) { difference |= a ^ b }
            guard difference == 0 else { return .invalid }
            let age = now - timestamp
            guard abs(age) <= self.maximumAgeMilliseconds else { return .outOfWindow(ageMilliseconds: age) }
            return .valid
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}

extension PubSubSigner {
    /// Milliseconds since 1970 by the wall clock: the time a signature carries and is checked against.
    package static func wallClockMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}

/// Writes pub/sub messages in python-socketio's format, signed when a key is configured.
package struct PubSubMessageWriter: Sendable {
    package let signer: PubSubSigner?

    /// Creates a writer; `nil` writes unsigned messages (python-socketio's format as it is).
    package init(signingKey: PubSubSigningKey?) {
        self.signer = signingKey.map(PubSubSigner.init)
    }

    /// Appends `message` to `buffer`, with its signature when signing.
    package func write(_ message: PubSubMessage, into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        message.encode(into: &buffer)
        if let signer = self.signer {
            signer.sign(&buffer, from: start, now: PubSubSigner.wallClockMilliseconds())
        }
    }
}
