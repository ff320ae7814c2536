import Foundation
import NIOCore
import SocketGatewayCore
import Testing

@Suite struct JSONCodableTests {
    enum Role: String, Codable, Equatable {
        case admin, member
    }

    enum Shape: Codable, Equatable {
        case circle(radius: Double)
        case square(side: Int)
    }

    struct Address: Codable, Equatable {
        var city: String
        var zip: String?
    }

    struct User: Codable, Equatable {
        var id: UUID
        var name: String
        var age: Int
        var score: Double
        var role: Role
        var joined: Date
        var tags: [String]
        var address: Address?
        var nickname: String?
        var shapes: [Shape]
        var avatar: Data
        var counts: [String: Int]
    }

    static let sample = User(
        id: UUID(uuidString: "E621E1F8-C36C-495A-93FC-0C247A3E6E5F")!,
        name: "Ada",
        age: 36,
        score: 0.5,
        role: .admin,
        joined: Date(timeIntervalSince1970: 1_795_979_583.120),
        tags: ["a", "b"],
        address: Address(city: "Paris", zip: nil),
        nickname: nil,
        shapes: [.circle(radius: 1.5), .square(side: 2)],
        avatar: Data([1, 2, 3]),
        counts: ["x": 1]
    )

    @Test func encodesInDeclarationOrderWithSpecialTypes() throws {
        let value = try JSONValueEncoder().encode(Self.sample)
        #expect(
            value.objectValue?.map(\.key) == [
                "id", "name", "age", "score", "role", "joined", "tags", "address", "shapes", "avatar", "counts",
            ]
        )
        #expect(value["id"] == "e621e1f8-c36c-495a-93fc-0c247a3e6e5f")
        #expect(value["joined"] == "2026-11-29T19:13:03.120Z")
        #expect(value["role"] == "admin")
        #expect(value["address"] == ["city": "Paris"])
        #expect(value["avatar"] == .binary(ByteBuffer(bytes: [1, 2, 3])))
        #expect(value["shapes"] == [["circle": ["radius": 1.5]], ["square": ["side": 2]]])
        #expect(value["age"] == .int(36))
        #expect(value["score"] == .double(0.5))
        let decoded = try JSONValueDecoder().decode(User.self, from: value)
        #expect(decoded == Self.sample)
    }

    @Test func decodesFromParsedText() throws {
        let text = #"""
            {"id":"E621E1F8-C36C-495A-93FC-0C247A3E6E5F","name":"Ada","age":36.0,"score":1,"role":"member",
             "joined":"2026-11-29T20:13:03+01:00","tags":[],"address":{"city":"Oslo","zip":"0150"},"nickname":null,
             "shapes":[],"avatar":"AQID","counts":{}}
            """#
        let user = try JSONValueDecoder().decode(User.self, from: JSONValue.parse(text))
        #expect(user.age == 36)
        #expect(user.score == 1)
        #expect(user.role == .member)
        #expect(user.joined == Date(timeIntervalSince1970: 1_795_979_583))
        #expect(user.address == Address(city: "Oslo", zip: "0150"))
        #expect(user.nickname == nil)
        #expect(user.avatar == Data([1, 2, 3]))
    }

    @Test func datesFollowJavaScriptToISOString() throws {
        let encoder = JSONValueEncoder()
        let decoder = JSONValueDecoder()
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
            #expect(try encoder.encode(date) == .string(text))
            let decoded = try decoder.decode(Date.self, from: .string(text))
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
            let decoded = try decoder.decode(Date.self, from: .string(text))
            #expect(abs(decoded.timeIntervalSince1970 - seconds) < 0.000001, "\(text)")
        }
        for text in [
            "2026-11-29", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T19:13:03",
            "2026-11-29T19:13:03.Z", "yesterday", "2026-11-29T19:13:03Zjunk",
        ] {
            #expect(throws: DecodingError.self, "\(text)") { try decoder.decode(Date.self, from: .string(text)) }
        }
        #expect(throws: DecodingError.self) { try decoder.decode(Date.self, from: .int(0)) }
    }

    @Test func decodingErrorsNameTheCodingPath() {
        struct Item: Codable { var name: String }
        struct Order: Codable { var items: [Item] }
        let value: JSONValue = ["items": [["name": "a"], ["name": 5]]]
        do {
            _ = try JSONValueDecoder().decode(Order.self, from: value)
            Issue.record("expected an error")
        } catch let DecodingError.typeMismatch(_, context) {
            #expect(context.codingPath.map(\.stringValue) == ["items", "Index 1", "name"])
            #expect(context.debugDescription == "At items[1].name: expected a string, found the number 5.")
        } catch {
            Issue.record("unexpected \(error)")
        }
        do {
            _ = try JSONValueDecoder().decode(Order.self, from: ["items": [[:]]])
            Issue.record("expected an error")
        } catch let DecodingError.keyNotFound(key, context) {
            #expect(key.stringValue == "name")
            #expect(context.debugDescription.contains("items[0]"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func integerRangesAreChecked() throws {
        let decoder = JSONValueDecoder()
        #expect(try decoder.decode(UInt8.self, from: 255) == 255)
        #expect(throws: DecodingError.self) { try decoder.decode(UInt8.self, from: 256) }
        #expect(throws: DecodingError.self) { try decoder.decode(UInt.self, from: -1) }
        #expect(throws: DecodingError.self) { try decoder.decode(Int.self, from: 1.5) }
        #expect(throws: DecodingError.self) { try decoder.decode(Int.self, from: "1") }
        #expect(try decoder.decode(Int.self, from: 2.0) == 2)
        #expect(try decoder.decode(UInt64.self, from: .double(1.8446744073709550e19)) == 18_446_744_073_709_549_568)
        #expect(try decoder.decode(Float.self, from: 0.1) == Float(0.1))
        #expect(throws: DecodingError.self) { try decoder.decode(Float.self, from: 1e300) }
        #expect(try JSONValueEncoder().encode(Float(0.1)) == .double(0.1))
        #expect(try JSONValueEncoder().encode(UInt64.max) == .double(1.8446744073709552e19))
    }

    @Test func jsonValueThroughItsOwnCoders() throws {
        let value: JSONValue = ["z": 1, "a": [nil, true, 2.5, "s", .binary(ByteBuffer(bytes: [9]))]]
        #expect(try JSONValueEncoder().encode(value) == value)
        #expect(try JSONValueDecoder().decode(JSONValue.self, from: value) == value)
        struct Envelope: Codable, Equatable {
            var kind: String
            var payload: JSONValue
            var extra: [JSONValue]?
        }
        let envelope = Envelope(kind: "k", payload: value, extra: [1, "x"])
        let encoded = try JSONValueEncoder().encode(envelope)
        #expect(encoded == ["kind": "k", "payload": value, "extra": [1, "x"]])
        #expect(try JSONValueDecoder().decode(Envelope.self, from: encoded) == envelope)
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

    @Test func nilOptionalsAreOmittedAndExplicitNullsKept() throws {
        struct Wrapper: Codable {
            var a: Int?
            var b: JSONValue
        }
        #expect(try JSONValueEncoder().encode(Wrapper(a: nil, b: nil)) == ["b": nil])
        #expect(try JSONValueDecoder().decode(Wrapper.self, from: ["b": nil]).a == nil)
        #expect(try JSONValueDecoder().decode(Wrapper.self, from: ["a": nil, "b": 1]).a == nil)
    }

    @Test func topLevelScalarsAndCollections() throws {
        let encoder = JSONValueEncoder()
        #expect(try encoder.encode("x") == "x")
        #expect(try encoder.encode([1, 2]) == [1, 2])
        #expect(try encoder.encode([Int?.none, 3]) == [nil, 3])
        #expect(try encoder.encode(true) == true)
        #expect(try encoder.encode(URL(string: "https://example.com/a?b=c")!) == "https://example.com/a?b=c")
        #expect(try encoder.encode(Decimal(string: "12.5")!) == 12.5)
        #expect(try JSONValueDecoder().decode([String: [Int]].self, from: ["a": [1], "b": []]) == ["a": [1], "b": []])
        #expect(try JSONValueDecoder().decode(Decimal.self, from: 12.5) == Decimal(string: "12.5"))
        #expect(
            try JSONValueDecoder().decode(UUID.self, from: "e621e1f8-c36c-495a-93fc-0c247a3e6e5f") == Self.sample.id
        )
    }

    @Test func classHierarchiesUseSuperEncoder() throws {
        class Base: Codable {
            var base: Int
            init(base: Int) { self.base = base }
        }
        final class Derived: Base, @unchecked Sendable {
            var extra: String
            enum CodingKeys: String, CodingKey { case extra }
            init(base: Int, extra: String) {
                self.extra = extra
                super.init(base: base)
            }
            required init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                self.extra = try container.decode(String.self, forKey: .extra)
                try super.init(from: container.superDecoder())
            }
            override func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(self.extra, forKey: .extra)
                try super.encode(to: container.superEncoder())
            }
        }
        let value = try JSONValueEncoder().encode(Derived(base: 1, extra: "e"))
        #expect(value == ["extra": "e", "super": ["base": 1]])
        let decoded = try JSONValueDecoder().decode(Derived.self, from: value)
        #expect(decoded.base == 1 && decoded.extra == "e")
    }
}
