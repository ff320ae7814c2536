import Foundation
import NIOCore
@_spi(Generated) import SocketGatewayCore
import Testing

/// JSONValue's `Codable` conformance through Foundation's coders, and the timestamps generated payload types write
/// and read (JavaScript's `toISOString`).
@Suite struct JSONCodableTests {
    @Test func datesFollowJavaScriptToISOString() throws {
        let cases: [(Double, String)] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (-0.001, "1969-12-31T23:59:59.999Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (1_795_979_583.12, "2026-11-29T19:13:03.120Z"),
            (253_402_300_799.999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800, "+010000-01-01T00:00:00.000Z"),
            (-62_198_755_200, "-000001-01-01T00:00:00.000Z"),
        ]
        for (seconds, text) in cases {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(GeneratedEventEncoding.iso8601(date) == text)
            let decoded = try GeneratedEventDecoding.date(.string(text))
            #expect(abs(decoded.timeIntervalSince1970 - seconds) < 0.0005, "\(text)")
        }
        let accepted: [(String, Double)] = [
            ("2026-11-29T19:13:03Z", 1_795_979_583),
            ("2026-11-29T19:13:03.1Z", 1_795_979_583.1),
            ("2026-11-29T19:13:03.123456Z", 1_795_979_583.123456),
            ("2026-11-29T21:13:03+02:00", 1_795_979_583),
            ("2026-11-29T14:43:03-0430", 1_795_979_583),
            ("2026-11-29t19:13:03z", 1_795_979_583),
        ]
        for (text, seconds) in accepted {
            let decoded = try GeneratedEventDecoding.date(.string(text))
            #expect(abs(decoded.timeIntervalSince1970 - seconds) < 0.000001, "\(text)")
        }
        for text in [
            "2026-11-29", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T19:13:03",
            "2026-11-29T19:13:03.Z", "yesterday", "2026-11-29T19:13:03Zjunk",
        ] {
            #expect(throws: SocketEventDecodingError.self, "\(text)") { try GeneratedEventDecoding.date(.string(text)) }
        }
        #expect(throws: SocketEventDecodingError.self) { try GeneratedEventDecoding.date(.int(0)) }
    }

    @Test func jsonValueThroughFoundationCoders() throws {
        let value: JSONValue = ["z": 1, "a": [nil, true, 2.5, "s", -7], "o": ["k": "v"]]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys  // Foundation does not keep the order keys are encoded in
        let data = try encoder.encode(value)
        #expect(String(decoding: data, as: UTF8.self) == #"{"a":[null,true,2.5,"s",-7],"o":{"k":"v"},"z":1}"#)
        let decoded = try JSONDecoder().decode(JSONValue.self, from: data)
        // Foundation does not keep key order, so compare per key.
        #expect(decoded["z"] == .int(1))
        #expect(decoded["a"] == [nil, true, 2.5, "s", -7])
        #expect(decoded["o"] == ["k": "v"])
        #expect(decoded.objectValue?.count == 3)
        let binary = try encoder.encode(JSONValue.binary(ByteBuffer(bytes: [1, 2, 3])))
        #expect(String(decoding: binary, as: UTF8.self) == #""AQID""#)
    }
}
