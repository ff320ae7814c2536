import NIOCore
import SocketGatewayCore
import Testing

@Suite struct JSONParserTests {
    @Test func parsesScalars() throws {
        #expect(try JSONValue.parse("null") == .null)
        #expect(try JSONValue.parse("true") == .bool(true))
        #expect(try JSONValue.parse("false") == .bool(false))
        #expect(try JSONValue.parse("0") == .int(0))
        #expect(try JSONValue.parse("-0") == .int(0))
        #expect(try JSONValue.parse("42") == .int(42))
        #expect(try JSONValue.parse("-17") == .int(-17))
        #expect(try JSONValue.parse("1.5") == .double(1.5))
        #expect(try JSONValue.parse("1e3") == .double(1000))
        #expect(try JSONValue.parse("1E+3") == .double(1000))
        #expect(try JSONValue.parse("25e-1") == .double(2.5))
        #expect(try JSONValue.parse("-0.0") == .double(-0.0))
        #expect(try JSONValue.parse("\"abc\"") == .string("abc"))
        #expect(try JSONValue.parse("  \t\r\n 7 \n") == .int(7))
    }

    @Test func integersThatFitInt64StayIntegers() throws {
        #expect(try JSONValue.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONValue.parse("-9223372036854775808") == .int(Int64.min))
        #expect(try JSONValue.parse("9223372036854775808") == .double(0x1p63))
        #expect(try JSONValue.parse("-9223372036854775809") == .double(-0x1p63))
        #expect(try JSONValue.parse("123456789012345678901234567890") == .double(1.2345678901234568e29))
        #expect(try JSONValue.parse("1e400") == .double(.infinity))
        #expect(try JSONValue.parse("-1e400") == .double(-.infinity))
        #expect(try JSONValue.parse("1e-400") == .double(0))
    }

    @Test func parsesContainersKeepingKeyOrderAndDuplicates() throws {
        let value = try JSONValue.parse(#"{"z":1,"a":[true,null,{"k":"v"}],"m":{},"e":[],"z":2}"#)
        guard case .object(let pairs) = value else {
            Issue.record("expected an object, got \(value)")
            return
        }
        #expect(pairs.map(\.key) == ["z", "a", "m", "e", "z"])
        #expect(value["z"] == .int(2), "the last of duplicate keys wins, as in JSON.parse and json.loads")
        #expect(value["a"]?[2]?["k"] == .string("v"))
        #expect(value["m"] == .object([]))
        #expect(value["e"] == .array([]))
        #expect(value["missing"] == nil)
        #expect(value[0] == nil)
    }

    @Test func parsesStringEscapes() throws {
        #expect(try JSONValue.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{C}\n\r\t"))
        #expect(try JSONValue.parse(#""\u0041\u00e9\u00E9\u20AC\u0000""#) == .string("Aéé€\u{0}"))
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONValue.parse(#""a\uD834\uDD1Eb""#) == .string("a𝄞b"))
        #expect(try JSONValue.parse("\"héllo 😀 世界\"") == .string("héllo 😀 世界"))
        #expect(try JSONValue.parse(#""x\u00e9 raw é""#) == .string("xé raw é"))
    }

    @Test func loneSurrogatesBecomeReplacementCharacters() throws {
        #expect(try JSONValue.parse(#""\ud800""#) == .string("\u{FFFD}"))
        #expect(try JSONValue.parse(#""\udc00x""#) == .string("\u{FFFD}x"))
        #expect(try JSONValue.parse(#""\ud800\u0041""#) == .string("\u{FFFD}A"))
        #expect(try JSONValue.parse(#""\ud800\ud800\udc00""#) == .string("\u{FFFD}\u{10000}"))
        #expect(try JSONValue.parse(#""\ud800\n""#) == .string("\u{FFFD}\n"))
    }

    @Test func parsesFromEveryInputKind() throws {
        let text = #"[1,"two",{"3":[true]}]"#
        let expected: JSONValue = [1, "two", ["3": [true]]]
        #expect(try JSONValue.parse(text) == expected)
        #expect(try JSONValue.parse(ByteBuffer(string: text)) == expected)
        #expect(try JSONValue.parse(Array(text.utf8)) == expected)
        #expect(try JSONValue.parse(text.utf8) == expected)
        // A buffer whose reader index is not at zero.
        var buffer = ByteBuffer(string: "xx" + text)
        buffer.moveReaderIndex(forwardBy: 2)
        #expect(try JSONValue.parse(buffer) == expected)
        #expect(buffer.readerIndex == 2)
    }

    struct Malformed: CustomTestStringConvertible, Sendable {
        var input: String
        var code: JSONParseError.Code
        var offset: Int
        var testDescription: String { input.debugDescription }
    }

    static let malformed: [Malformed] = [
        Malformed(input: "", code: .unexpectedEndOfInput, offset: 0),
        Malformed(input: "   ", code: .unexpectedEndOfInput, offset: 3),
        Malformed(input: "[", code: .unexpectedEndOfInput, offset: 1),
        Malformed(input: "[1", code: .unexpectedEndOfInput, offset: 2),
        Malformed(input: "[1,", code: .unexpectedEndOfInput, offset: 3),
        Malformed(input: "{", code: .unexpectedEndOfInput, offset: 1),
        Malformed(input: #"{"a""#, code: .unexpectedEndOfInput, offset: 4),
        Malformed(input: #"{"a":"#, code: .unexpectedEndOfInput, offset: 5),
        Malformed(input: #"{"a":1"#, code: .unexpectedEndOfInput, offset: 6),
        Malformed(input: #""abc"#, code: .unexpectedEndOfInput, offset: 4),
        Malformed(input: #""ab\"#, code: .unexpectedEndOfInput, offset: 4),
        Malformed(input: #""\u12"#, code: .unexpectedEndOfInput, offset: 5),
        Malformed(input: "tru", code: .unexpectedEndOfInput, offset: 3),
        Malformed(input: "nul", code: .unexpectedEndOfInput, offset: 3),
        Malformed(input: "-", code: .unexpectedEndOfInput, offset: 1),
        Malformed(input: "1.", code: .unexpectedEndOfInput, offset: 2),
        Malformed(input: "1e", code: .unexpectedEndOfInput, offset: 2),
        Malformed(input: "1e+", code: .unexpectedEndOfInput, offset: 3),
        Malformed(input: "[1,]", code: .unexpectedCharacter, offset: 3),
        Malformed(input: #"{"a":1,}"#, code: .unexpectedCharacter, offset: 7),
        Malformed(input: "[,1]", code: .unexpectedCharacter, offset: 1),
        Malformed(input: "[1 2]", code: .unexpectedCharacter, offset: 3),
        Malformed(input: #"{"a" 1}"#, code: .unexpectedCharacter, offset: 5),
        Malformed(input: "{a:1}", code: .unexpectedCharacter, offset: 1),
        Malformed(input: "{'a':1}", code: .unexpectedCharacter, offset: 1),
        Malformed(input: "'a'", code: .unexpectedCharacter, offset: 0),
        Malformed(input: "True", code: .unexpectedCharacter, offset: 0),
        Malformed(input: "nulL", code: .unexpectedCharacter, offset: 3),
        Malformed(input: "NaN", code: .unexpectedCharacter, offset: 0),
        Malformed(input: "Infinity", code: .unexpectedCharacter, offset: 0),
        Malformed(input: "+1", code: .unexpectedCharacter, offset: 0),
        Malformed(input: ".5", code: .unexpectedCharacter, offset: 0),
        Malformed(input: "01", code: .invalidNumber, offset: 0),
        Malformed(input: "-01", code: .invalidNumber, offset: 1),
        Malformed(input: "00", code: .invalidNumber, offset: 0),
        Malformed(input: "-a", code: .invalidNumber, offset: 1),
        Malformed(input: "1.e5", code: .invalidNumber, offset: 2),
        Malformed(input: "1ex", code: .invalidNumber, offset: 2),
        Malformed(input: "0x10", code: .trailingData, offset: 1),
        Malformed(input: "1 2", code: .trailingData, offset: 2),
        Malformed(input: "{}{}", code: .trailingData, offset: 2),
        Malformed(input: "[]]", code: .trailingData, offset: 2),
        Malformed(input: #""a" x"#, code: .trailingData, offset: 4),
        Malformed(input: #""\x""#, code: .invalidEscape, offset: 2),
        Malformed(input: #""\'""#, code: .invalidEscape, offset: 2),
        Malformed(input: #""\U0041""#, code: .invalidEscape, offset: 2),
        Malformed(input: #""\u00g0""#, code: .invalidUnicodeEscape, offset: 5),
        Malformed(input: #""\ud800\u12""#, code: .invalidUnicodeEscape, offset: 11),
        Malformed(input: "\"a\u{1}b\"", code: .controlCharacterInString, offset: 2),
        Malformed(input: "\"line\nbreak\"", code: .controlCharacterInString, offset: 5),
        Malformed(input: "\"tab\t\"", code: .controlCharacterInString, offset: 4),
        Malformed(input: "\u{FEFF}1", code: .unexpectedCharacter, offset: 0),
    ]

    @Test(arguments: malformed)
    func rejectsMalformedInput(_ sample: Malformed) {
        #expect {
            _ = try JSONValue.parse(sample.input)
        } throws: { error in
            guard let error = error as? JSONParseError else { return false }
            #expect(error.code == sample.code, "\(error)")
            #expect(error.offset == sample.offset, "\(error)")
            #expect(!error.message.isEmpty)
            return true
        }
    }

    @Test func errorMessagesSayWhatWasExpected() {
        do {
            _ = try JSONValue.parse("[1,]")
            Issue.record("expected an error")
        } catch {
            #expect(
                error.description
                    == "invalid JSON (unexpectedCharacter) at byte 3: expected a value (object, array, string, number, true, false or null), found ']'"
            )
        }
        do {
            _ = try JSONValue.parse(#"{"a":1"#)
            Issue.record("expected an error")
        } catch {
            #expect(error.message == "expected ',' or '}' in an object, found the end of the input")
        }
    }

    @Test func rejectsInvalidUTF8InStrings() {
        let samples: [[UInt8]] = [
            [0x22, 0xFF, 0x22],
            [0x22, 0xC3, 0x22],  // truncated two-byte sequence
            [0x22, 0xED, 0xA0, 0x80, 0x22],  // UTF-8 encoded surrogate
            [0x22, 0xC0, 0xAF, 0x22],  // overlong
            [0x22, 0x5C, 0x6E, 0xFE, 0x22],  // after an escape (slow path)
        ]
        for bytes in samples {
            #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
            do {
                _ = try JSONValue.parse(bytes)
            } catch {
                #expect(error.code == .invalidUTF8)
            }
        }
        // Non-ASCII outside strings is an unexpected character.
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0xC3, 0xA9]) }
    }

    @Test func depthLimitIsEnforcedWithoutCrashing() throws {
        let atLimit = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(throws: Never.self) { try JSONValue.parse(atLimit) }
        let beyond = String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        do {
            _ = try JSONValue.parse(beyond)
            Issue.record("expected the depth limit")
        } catch {
            #expect(error.code == .depthLimitExceeded)
            #expect(error.offset == 128)
        }
        // Far beyond: a hostile document must not exhaust the stack.
        let hostile = String(repeating: "[{\"a\":", count: 200_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(hostile) }
        let custom = String(repeating: "{\"k\":", count: 3) + "1" + String(repeating: "}", count: 3)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(custom, maxDepth: 2) }
        #expect(try JSONValue.parse(custom, maxDepth: 3)["k"]?["k"]?["k"] == .int(1))
    }

    @Test func accessors() {
        let value: JSONValue = ["s": "text", "i": 5, "d": 2.5, "whole": 3.0, "b": true, "n": nil, "a": [1, 2]]
        #expect(value["s"]?.stringValue == "text")
        #expect(value["i"]?.intValue == 5)
        #expect(value["i"]?.doubleValue == 5)
        #expect(value["d"]?.doubleValue == 2.5)
        #expect(value["d"]?.intValue == nil)
        #expect(value["whole"]?.intValue == 3)
        #expect(value["b"]?.boolValue == true)
        #expect(value["n"]?.isNull == true)
        #expect(value["s"]?.isNull == false)
        #expect(value["a"]?.arrayValue == [1, 2])
        #expect(value["a"]?[1] == .int(2))
        #expect(value["a"]?[2] == nil)
        #expect(value["a"]?[-1] == nil)
        #expect(value.objectValue?.map(\.key) == ["s", "i", "d", "whole", "b", "n", "a"])
        #expect(value["s"]?.intValue == nil)
        #expect(JSONValue.binary(ByteBuffer(bytes: [1, 2])).binaryValue == ByteBuffer(bytes: [1, 2]))
    }

    @Test func equalityAndHashing() {
        #expect(JSONValue.int(1) != JSONValue.double(1))
        #expect(JSONValue.double(.nan) == JSONValue.double(.nan))
        #expect(JSONValue.double(0) == JSONValue.double(-0.0))
        #expect(Set<JSONValue>([.double(0), .double(-0.0), .double(.nan), .double(.nan)]).count == 2)
        let ab: JSONValue = ["a": 1, "b": 2]
        let ba: JSONValue = ["b": 2, "a": 1]
        #expect(ab != ba)
        #expect(ab == ["a": 1, "b": 2])
        #expect(Set<JSONValue>([ab, ["a": 1, "b": 2], ba]).count == 2)
        #expect(JSONValue.binary(ByteBuffer(bytes: [1])) == JSONValue.binary(ByteBuffer(bytes: [1])))
        #expect(JSONValue.binary(ByteBuffer(bytes: [1])) != JSONValue.binary(ByteBuffer(bytes: [2])))
    }
}
