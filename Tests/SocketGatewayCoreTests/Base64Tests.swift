import Foundation
import NIOCore
import SocketGatewayCore
import Testing

/// The package's one base64 (standard for polling and pub/sub, URL-safe for ids and JWTs) against Foundation's as
/// an oracle, and the one session id generator.
@Suite struct Base64Tests {
    /// Every length from 0 to 64 bytes, with a fixed pseudo-random fill, so every padding case occurs.
    static let samples: [[UInt8]] = (0...64).map { count in
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ count &* 29 &+ 7) }
    }

    @Test func standardAlphabetMatchesFoundationBothWays() throws {
        for bytes in Self.samples {
            let text = Base64.encodeToString(bytes)
            #expect(text == Data(bytes).base64EncodedString())
            let decoded = try #require(Base64.decode(ByteBuffer(string: text).readableBytesView))
            #expect(Array(decoded.readableBytesView) == bytes)
        }
    }

    @Test func urlSafeIsFoundationsTextWithoutPaddingAndDecodesStrictly() throws {
        for bytes in Self.samples {
            let text = Base64.encodeToString(bytes, urlSafe: true)
            let foundation = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(text == foundation)
            #expect(Base64.decode(urlSafe: Substring(text)) == bytes)
        }
        for invalid in ["ab=", "a+b_", "a/bc", "abcde", "ab$c"] {
            #expect(Base64.decode(urlSafe: Substring(invalid)) == nil, "\(invalid)")
        }
    }

    @Test func sessionIDsAre22URLSafeCharactersOf16RandomBytes() throws {
        let ids = (0..<64).map { _ in SessionID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            #expect(id.count == 22)
            let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            #expect(id.allSatisfy { alphabet.contains($0) }, "\(id)")
            #expect(Base64.decode(urlSafe: Substring(id))?.count == 16)
        }
    }
}
