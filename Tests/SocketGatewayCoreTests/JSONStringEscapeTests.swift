import NIOCore
import SocketGatewayCore
import Testing

/// Both string forms share one escaping loop that skips 8 bytes at a time; this compares it, at every position
/// relative to the 8-byte words, with the rules written out one scalar at a time.
@Suite struct JSONStringEscapeTests {
    /// JSON.stringify (`asciiOnly: false`) or json.dumps with ensure_ascii (`asciiOnly: true`), per scalar.
    private static func reference(_ text: String, asciiOnly: Bool) -> String {
        func unicodeEscape(_ unit: UInt32) -> String {
            let hex = String(unit, radix: 16)
            return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22: result += "\\\""
            case 0x5C: result += "\\\\"
            case 0x08: result += "\\b"
            case 0x0C: result += "\\f"
            case 0x0A: result += "\\n"
            case 0x0D: result += "\\r"
            case 0x09: result += "\\t"
            case let value where value < 0x20: result += unicodeEscape(value)
            case let value where asciiOnly && value >= 0x7F && value <= 0xFFFF: result += unicodeEscape(value)
            case let value where asciiOnly && value > 0xFFFF:
                let offset = value - 0x10000
                result += unicodeEscape(0xD800 + (offset >> 10)) + unicodeEscape(0xDC00 + (offset & 0x3FF))
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    static let specials: [String] = ["\"", "\\", "\u{0}", "\n", "\u{1F}", "\u{7F}", "é", "日", "😀", "\u{2028}"]

    @Test(arguments: Self.specials)
    func aSpecialAtEveryOffsetOfTheWords(_ special: String) {
        for before in 0..<18 {
            for after in [0, 1, 7, 8, 9] {
                let text = String(repeating: "a", count: before) + special + String(repeating: "b", count: after)
                #expect(JSONValue.string(text).jsonString == Self.reference(text, asciiOnly: false))
                #expect(JSONValue.string(text).pythonJSONString == Self.reference(text, asciiOnly: true))
            }
        }
    }

    @Test func randomStrings() {
        let pieces = ["abc", "defghijk", " ", "~", "\"", "\\", "\t", "\u{1}", "\u{7F}", "ü", "€", "𝄞", "0123456789"]
        var generator = SeededGenerator(seed: 0xE5CA_9E)
        for _ in 0..<500 {
            let text = (0..<Int(generator.next() % 16)).map { _ in
                pieces[Int(generator.next() % UInt64(pieces.count))]
            }.joined()
            #expect(JSONValue.string(text).jsonString == Self.reference(text, asciiOnly: false))
            #expect(JSONValue.string(text).pythonJSONString == Self.reference(text, asciiOnly: true))
        }
    }
}
