import NIOCore
import Testing

@testable import SocketGatewayCore

/// `JSONParser.checkObject` checks a top-level object without building anything: it must accept exactly the
/// objects `parse` reads (non-finite numbers allowed), and report each member where `parse` found it.
@Suite struct JSONCheckObjectTests {
    /// `checkObject` agrees with `parse`: it accepts `text` exactly when `parse` reads an object, and its members
    /// are that object's pairs, in order: each key's characters decode to the key, each value's bytes parse to the
    /// value, and the non-finite flag says whether the value holds NaN or ±Infinity.
    static func expectAgreement(_ text: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        text.withUnsafeBytes { bytes in
            let maxDepth = 8
            var members: [(key: Range<Int>, value: Range<Int>, nonFinite: Bool)] = []
            let checked = JSONParser.checkObject(bytes, maxDepth: maxDepth) { members.append(($0, $1, $2)) }
            let parsed = JSONParser.parse(bytes, maxDepth: maxDepth, allowsNonFiniteNumbers: true)
            func label() -> String { String(decoding: text, as: UTF8.self) }
            guard case .success(.object(let pairs)) = parsed else {
                if checked {
                    Issue.record("checkObject accepted what parse refuses: \(label())", sourceLocation: sourceLocation)
                }
                return
            }
            guard checked else {
                Issue.record("checkObject refused an object parse reads: \(label())", sourceLocation: sourceLocation)
                return
            }
            guard members.count == pairs.count else {
                Issue.record(
                    "\(members.count) members, \(pairs.count) pairs: \(label())",
                    sourceLocation: sourceLocation
                )
                return
            }
            for (member, pair) in zip(members, pairs) {
                let quoted = UnsafeRawBufferPointer(
                    rebasing: bytes[(member.key.lowerBound - 1)..<(member.key.upperBound + 1)]
                )
                let key = JSONParser.parse(quoted, maxDepth: 1, allowsNonFiniteNumbers: true)
                let value = JSONParser.parse(
                    UnsafeRawBufferPointer(rebasing: bytes[member.value]),
                    maxDepth: maxDepth - 1,
                    allowsNonFiniteNumbers: true
                )
                guard case .success(.string(pair.key)) = key, case .success(pair.value) = value,
                    member.nonFinite == Self.holdsNonFinite(pair.value)
                else {
                    Issue.record("member \(pair.key) reported elsewhere: \(label())", sourceLocation: sourceLocation)
                    return
                }
            }
        }
    }

    static func holdsNonFinite(_ value: JSONValue) -> Bool {
        switch value {
        case .double(let number): return !number.isFinite
        case .array(let items): return items.contains { Self.holdsNonFinite($0) }
        case .object(let pairs): return pairs.contains { Self.holdsNonFinite($0.value) }
        default: return false
        }
    }

    @Test func objectsAndWhatIsNotOne() {
        for text in [
            "{}", " { } ", #"{"a": 1}"#, #"{"a":1,"b":[1,{"c":null}],"a":"x"}"#, "{\"k\\u00e9y\": \"v\\n\"}",
            #"{"": true, "n": [NaN, -Infinity, {"i": Infinity}], "f": 1.5e-3}"#, #"{"deep": [[[[[[1]]]]]]}"#,
            #"{"deeper": [[[[[[[1]]]]]]]}"#, "", "[]", "1", #""s""#, "{", "{\"a\"}", #"{"a": }"#, #"{"a": 1,}"#,
            #"{"a": 1} x"#, #"{"a": 01}"#, #"{"a": "\x"}"#, "{\"a\": \"\u{1}\"}", #"{a: 1}"#, #"{"a" 1}"#,
            #"{"a": tru}"#, #"{"a": [1,]}"#, #"{"a": "\ud800"}"#,
        ] {
            Self.expectAgreement(Array(text.utf8))
        }
        for invalid: [UInt8] in [[0xC3], [0xED, 0xA0, 0x80], [0xFF], [0xC0, 0xAF]] {
            Self.expectAgreement(Array(#"{"k"#.utf8) + invalid + Array(#"": 1}"#.utf8))
            Self.expectAgreement(Array(#"{"k": "v"#.utf8) + invalid + Array(#""}"#.utf8))
        }
    }

    /// Strings are checked eight bytes at a time while the bytes are printable ASCII: a byte that is not (an escape,
    /// a quote, a control character, DEL, non-ASCII UTF-8 or bytes that are not UTF-8) at every offset of keys and
    /// values up to three words long, and strings ending at every offset of a word, read as `parse` reads them.
    @Test func stringsOfEveryLengthWithASpecialByteAtEveryOffset() {
        let specials: [[UInt8]] = [
            Array(#"""#.utf8), Array(#"\"#.utf8), Array(#"é"#.utf8), Array(#"\q"#.utf8), [0x01], [0x1F], [0x20],
            [0x7F], Array("é".utf8), Array("😀".utf8), [0xFF], [0xC3], [0x22],
        ]
        for length in 0..<24 {
            for specialAt in -1..<length {
                for special in specialAt < 0 ? [[]] : specials {
                    var characters = [UInt8](repeating: UInt8(ascii: "x"), count: length)
                    if specialAt >= 0 { characters.replaceSubrange(specialAt..<(specialAt + 1), with: special) }
                    let string = [UInt8(ascii: "\"")] + characters + [UInt8(ascii: "\"")]
                    Self.expectAgreement(Array("{".utf8) + string + Array(": ".utf8) + string + Array("}".utf8))
                }
            }
        }
    }

    /// Every prefix of the pub/sub fixtures, and every byte of them replaced by bytes that matter to JSON.
    @Test func fixturesTruncatedAndGarbled() async throws {
        let replacements: [UInt8] = [0x00, 0x20, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x2C, 0x3A, 0x30, 0x4E, 0xC3]
        for name in PubSubFixtures.names {
            let seed = Array(try PubSubFixtures.bytes(name).readableBytesView)
            Self.expectAgreement(seed)
            for length in 0..<seed.count { Self.expectAgreement(Array(seed[0..<length])) }
            for position in seed.indices {
                await Task.yield()
                for replacement in replacements where replacement != seed[position] {
                    var damaged = seed
                    damaged[position] = replacement
                    Self.expectAgreement(damaged)
                }
            }
        }
    }
}
