package import NIOCore

/// The one base64 (RFC 4648) of the package, without Foundation: standard alphabet with padding for Engine.IO
/// polling binary records and pub/sub attachments, URL-safe alphabet without padding for session ids and JWTs.
package enum Base64 {
    private static let standard: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8
    )
    private static let urlSafe: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Number of bytes `encode` writes for `count` input bytes.
    package static func encodedLength(_ count: Int, padded: Bool = true) -> Int {
        padded ? ((count + 2) / 3) * 4 : (count * 4 + 2) / 3
    }

    /// Appends the base64 text of `bytes` to `buffer`.
    package static func encode<Bytes: Collection<UInt8>>(
        _ bytes: Bytes,
        into buffer: inout ByteBuffer,
        urlSafe: Bool = false
    ) {
        let alphabet = urlSafe ? Self.urlSafe : Self.standard
        let padded = !urlSafe
        buffer.reserveCapacity(minimumWritableBytes: Self.encodedLength(bytes.count, padded: padded))
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = b1 == nil ? nil : iterator.next()
            buffer.writeInteger(alphabet[Int(b0 >> 2)])
            buffer.writeInteger(alphabet[Int(((b0 & 0x03) << 4) | ((b1 ?? 0) >> 4))])
            if let b1 {
                buffer.writeInteger(alphabet[Int(((b1 & 0x0F) << 2) | ((b2 ?? 0) >> 6))])
            } else if padded {
                buffer.writeInteger(UInt8(ascii: "="))
            }
            if let b2 {
                buffer.writeInteger(alphabet[Int(b2 & 0x3F)])
            } else if padded {
                buffer.writeInteger(UInt8(ascii: "="))
            }
        }
    }

    /// The base64 text of `bytes` as a String.
    package static func encodeToString<Bytes: Collection<UInt8>>(_ bytes: Bytes, urlSafe: Bool = false) -> String {
        var buffer = ByteBuffer()
        Self.encode(bytes, into: &buffer, urlSafe: urlSafe)
        return String(buffer: buffer)
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"), UInt8(ascii: "-"): 62
        case UInt8(ascii: "/"), UInt8(ascii: "_"): 63
        default: nil
        }
    }

    /// Decodes base64url text without padding (RFC 7515 §2, as JWTs use it); nil for any character outside the
    /// URL-safe alphabet (`+`, `/` and `=` included) or an impossible length.
    package static func decode(urlSafe text: Substring) -> [UInt8]? {
        let isURLSafe = text.utf8.allSatisfy { c in
            c != UInt8(ascii: "+") && c != UInt8(ascii: "/") && c != UInt8(ascii: "=")
        }
        guard isURLSafe, let bytes = Self.decode(ByteBuffer(substring: text).readableBytesView) else { return nil }
        return Array(bytes.readableBytesView)
    }

    /// Decodes base64 text (either alphabet, padding optional); nil when it is not base64.
    package static func decode(_ text: ByteBufferView) -> ByteBuffer? {
        var end = text.endIndex
        var padding = 0
        while end > text.startIndex, text[end - 1] == UInt8(ascii: "="), padding < 2 {
            end -= 1
            padding += 1
        }
        let count = end - text.startIndex
        if count % 4 == 1 || (padding > 0 && (count + padding) % 4 != 0) { return nil }
        var out = ByteBuffer()
        out.reserveCapacity(count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var index = text.startIndex
        while index < end {
            guard let v = Self.value(text[index]) else { return nil }
            accumulator = (accumulator << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.writeInteger(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
            index += 1
        }
        return out
    }
}

/// Random session ids, the one generator for Engine.IO session ids and Socket.IO namespace connection ids: 16
/// bytes from the system's cryptographic generator as base64url without padding (22 characters, 128 bits).
package enum SessionID {
    /// A new random id.
    package static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in bytes.indices { bytes[index] = generator.next() }
        return Base64.encodeToString(bytes, urlSafe: true)
    }
}
