import NIOCore
import SocketGatewayCore
import Testing

/// The emit encoder writes non-binary emits through a pointer into a reserved window (retrying with a larger
/// one, or piece by piece when very large). Its bytes must be those of the general `json.dumps` path.
@Suite struct PubSubEmitFastPathTests {
    /// The general path: the message's JSON object written by `writePythonJSON` (golden-tested against Python).
    private func reference(_ message: PubSubMessage) -> String {
        var buffer = ByteBuffer()
        message.jsonValue.writePythonJSON(to: &buffer)
        return String(buffer: buffer)
    }

    private func emit(
        _ arguments: [JSONValue],
        event: String = "tick",
        namespace: String = "/",
        room: PubSubNames = .none,
        skipSid: PubSubNames = .none,
        callback: PubSubCallback? = nil
    ) -> PubSubMessage {
        .emit(
            PubSubEmit(
                event: event,
                arguments: arguments,
                namespace: namespace,
                room: room,
                skipSid: skipSid,
                callback: callback,
                hostID: "0123456789abcdef0123456789abcdef"
            )
        )
    }

    static let strings: [String] = [
        "", "a", "plain ascii text that is longer than eight bytes", "\"", "\\", "quote\" and back\\slash",
        "\u{7F}", "del\u{7F}in the middle of a long run", "tab\tnew\nline\r\u{08}\u{0C}",
        String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) }), "é", "naïve café", "日本語のテキスト",
        "emoji 😀 and 𝄞", "mixed: abcdefgh\u{01}ijklmnop\"qrstuvwx\\yz", String(repeating: "x", count: 64),
        String(repeating: "é", count: 40), "0123456\u{0}", "01234567\u{1F}89",
    ]

    @Test(arguments: Self.strings)
    func stringsMatchTheGeneralPath(_ text: String) {
        let message = self.emit(
            [.string(text), .object([(text, .string(text))]), .array([.string(text)])],
            event: text,
            namespace: "/" + text,
            room: .one(text),
            skipSid: .list([text, "b"]),
            callback: PubSubCallback(room: .one(text), namespace: text, id: 7)
        )
        #expect(String(buffer: message.encoded()) == self.reference(message))
    }

    @Test func valuesMatchTheGeneralPath() {
        let values: [JSONValue] = [
            .null, .bool(true), .bool(false), .int(0), .int(9), .int(10), .int(-1), .int(Int64.max), .int(Int64.min),
            .double(0), .double(1), .double(-1.5), .double(1e16), .double(1.5e-7), .double(.nan), .double(.infinity),
            .double(-.infinity), .double(123_456.789), .array([]), .object([]),
            .object([("t", .int(1_234_567_890_123)), ("seq", .int(42)), ("pad", .string("xxxx"))]),
            .array([.array([.object([("deep", .array([.null, .bool(true)]))])])]),
        ]
        let message = self.emit(
            values,
            room: .list(["r1", "r2"]),
            callback: PubSubCallback(room: .none, namespace: "/", id: -3)
        )
        #expect(String(buffer: message.encoded()) == self.reference(message))
        #expect(String(buffer: self.emit([]).encoded()) == self.reference(self.emit([])))
    }

    @Test func largeMessagesRetryOrGoPieceByPiece() {
        for size in [600, 5_000, 100_000, 300_000] {
            let text = String(repeating: "ab\"c\u{1}é", count: size / 6)
            let message = self.emit([.string(text), .int(1)])
            #expect(String(buffer: message.encoded()) == self.reference(message), "size \(size)")
        }
    }

    @Test func appendsAfterWhatTheBufferHolds() {
        let message = self.emit([.string(String(repeating: "y", count: 2_000))])
        for capacity in [0, 3, 64, 4_096] {
            var buffer = ByteBufferAllocator().buffer(capacity: capacity)
            buffer.writeString("prefix|")
            message.encode(into: &buffer)
            #expect(String(buffer: buffer) == "prefix|" + self.reference(message), "capacity \(capacity)")
        }
    }

    @Test func binaryArgumentsTakeTheGeneralPath() {
        let bytes = ByteBuffer(bytes: [1, 2, 3])
        for arguments: [JSONValue] in [
            [.binary(bytes)], [.string(String(repeating: "z", count: 3_000)), .object([("file", .binary(bytes))])],
        ] {
            let message = self.emit(arguments)
            #expect(String(buffer: message.encoded()) == self.reference(message))
            #expect(String(buffer: message.encoded()).contains("\"binary\": true"))
        }
    }

    @Test func randomValuesMatchTheGeneralPath() {
        var generator = SeededGenerator(seed: 0x5EED)
        for _ in 0..<300 {
            let message = self.emit((0..<Int(generator.next() % 4)).map { _ in Self.randomValue(&generator, depth: 0) })
            #expect(String(buffer: message.encoded()) == self.reference(message))
        }
    }

    private static func randomValue(_ generator: inout SeededGenerator, depth: Int) -> JSONValue {
        switch generator.next() % (depth > 3 ? 5 : 7) {
        case 0: return .null
        case 1: return .bool(generator.next() % 2 == 0)
        case 2: return .int(Int64(bitPattern: generator.next()) >> Int64(generator.next() % 64))
        case 3: return .double(Double(Int64(bitPattern: generator.next()) % 1_000_000) / 7)
        case 4: return .string(Self.randomString(&generator))
        case 5:
            return .array((0..<Int(generator.next() % 5)).map { _ in Self.randomValue(&generator, depth: depth + 1) })
        default:
            return .object(
                (0..<Int(generator.next() % 5)).map { _ in
                    (Self.randomString(&generator), Self.randomValue(&generator, depth: depth + 1))
                }
            )
        }
    }

    private static func randomString(_ generator: inout SeededGenerator) -> String {
        let pieces: [String] = [
            "a", "bcdefghij", "\"", "\\", "\u{0}", "\u{1F}", "\u{7F}", "é", "€", "😀", " ", "klmnopqrstuv",
        ]
        return (0..<Int(generator.next() % 12)).map { _ in pieces[Int(generator.next() % UInt64(pieces.count))] }
            .joined()
    }
}

/// The receiving side of the fast path: `PubSubMessage.read` decodes an emit's target and small fields, checks
/// its `data` without building it, and copies the arguments into the Socket.IO packet as published.
extension PubSubEmitFastPathTests {
    private static func read(_ text: String) throws -> PubSubReceivedEmit {
        let received = try PubSubMessage.read(ByteBuffer(string: text))
        guard case .emit(let emit) = received else {
            throw PubSubMessageError(code: .wrongType, message: "not an emit: \(received)", excerpt: "")
        }
        return emit
    }

    private static func packet(_ emit: PubSubReceivedEmit) -> String {
        var buffer = ByteBuffer()
        emit.writeEventPacket(into: &buffer)
        return String(buffer: buffer)
    }

    private static func message(data: String, event: String = #""tick""#, namespace: String = "/") -> String {
        #"{"method": "emit", "event": \#(event), "data": \#(data), "binary": false, "namespace": "\#(namespace)", "#
            + #""room": "r1", "skip_sid": null, "callback": null, "host_id": "0123456789abcdef0123456789abcdef"}"#
    }

    @Test func argumentsAreCopiedAsPublished() throws {
        let cases: [(data: String, packet: String)] = [
            ("[]", #"2["tick"]"#),
            (
                "[1.0, 1e+16, 1.5e-07, -0.0, -2.25, 9007199254740993, 0]",
                #"2["tick",1.0,1e+16,1.5e-07,-0.0,-2.25,9007199254740993,0]"#
            ),
            (
                #"["caf\u00e9", "\ud83d\ude00", "\ud800", "a\"b\\c\n\t\u0001\/"]"#,
                #"2["tick","caf\u00e9","\ud83d\ude00","\ud800","a\"b\\c\n\t\u0001\/"]"#
            ),
            (#"["raw UTF-8: café 日本 😀"]"#, #"2["tick","raw UTF-8: café 日本 😀"]"#),
            (
                #"[{"a b": " spaced , : [ ] ", "n": [1, [2, {}]]}, null, true, false]"#,
                #"2["tick",{"a b":" spaced , : [ ] ","n":[1,[2,{}]]},null,true,false]"#
            ),
            ("[\n  {\n\t\"k\" :\r\n 1 } ,\n 2\n]", #"2["tick",{"k":1},2]"#),
            (#"[{"_placeholder": true, "num": 0}]"#, #"2["tick",{"_placeholder":true,"num":0}]"#),
        ]
        for (data, expected) in cases {
            let emit = try Self.read(Self.message(data: data))
            #expect(emit.copiesArguments, "\(data)")
            #expect(Self.packet(emit) == expected, "\(data)")
            // What a client reads from the packet is what decoding the message gives.
            let decoded = try PubSubMessage.decode(ByteBuffer(string: Self.message(data: data)))
            guard case .emit(let reference) = decoded else {
                throw PubSubMessageError(code: .wrongType, message: "", excerpt: "")
            }
            #expect(try emit.decoded() == reference)
            let parsed = try JSONValue.parse(String(Self.packet(emit).dropFirst()))
            #expect(parsed == .array([.string("tick")] + reference.arguments), "\(data)")
        }
    }

    @Test func eventNameAndNamespaceInThePacket() throws {
        let emit = try Self.read(Self.message(data: "[1]", event: #""caf\u00e9 \"q\"""#, namespace: "/admin"))
        #expect(emit.event == "café \"q\"")
        #expect(emit.namespace == "/admin")
        #expect(Self.packet(emit) == #"2/admin,["caf\u00e9 \"q\"",1]"#)
        var buffer = ByteBuffer(string: "prefix|")
        emit.writeEventPacket(into: &buffer)
        #expect(String(buffer: buffer) == #"prefix|2/admin,["caf\u00e9 \"q\"",1]"#)
    }

    @Test func nonFiniteNumbersAndBinaryAreDecodedInstead() throws {
        let nan = try Self.read(Self.message(data: #"[{"x": [NaN]}, -Infinity]"#))
        #expect(!nan.copiesArguments)
        #expect(try nan.decodedArguments().count == 2)
        let binary = try PubSubMessage.read(PubSubFixtures.bytes("13-emit-binary.json"))
        guard case .emit(let emit) = binary else {
            Issue.record("not an emit")
            return
        }
        #expect(!emit.copiesArguments)
        #expect(try binary.decoded() == PubSubMessage.decode(PubSubFixtures.bytes("13-emit-binary.json")))
    }

    /// python-socketio's own bytes: read gives what decode gives; the packet carries the same JSON.
    @Test(arguments: PubSubFixtures.names)
    func fixturesReadAsTheyDecode(_ name: String) throws {
        let bytes = try PubSubFixtures.bytes(name)
        let received = try PubSubMessage.read(bytes)
        let reference = try PubSubMessage.decode(bytes)
        #expect(try received.decoded() == reference)
        #expect(received.hostID == reference.hostID)
        guard case .emit(let emit) = received, case .emit(let decoded) = reference else {
            if case .emit = received { Issue.record("\(name): read an emit that decode does not") }
            return
        }
        #expect(emit.room == decoded.room && emit.skipSid == decoded.skipSid && emit.callback == decoded.callback)
        guard emit.copiesArguments else {
            #expect(decoded.isBinary, "\(name): only binary emits are decoded here")
            return
        }
        let text = Self.packet(emit)
        let prefix = decoded.namespace == "/" ? "2" : "2\(decoded.namespace),"
        #expect(text.hasPrefix(prefix))
        #expect(
            try JSONValue.parse(String(text.dropFirst(prefix.count)))
                == .array([.string(decoded.event)] + decoded.arguments)
        )
    }

    @Test func duplicateKeysLastOneWins() throws {
        let text =
            #"{"method": "emit", "event": "a", "data": [1], "room": "r1", "event": "b", "data": [2, 3], "room": "r2", "#
            + #""host_id": "h"}"#
        let emit = try Self.read(text)
        #expect(emit.event == "b" && emit.room == .one("r2"))
        #expect(Self.packet(emit) == #"2["b",2,3]"#)
        #expect(
            try emit.decoded()
                == {
                    if case .emit(let e) = try PubSubMessage.decode(ByteBuffer(string: text)) {
                        return e
                    } else {
                        fatalError()
                    }
                }()
        )
    }

    /// The host id is compared in the published bytes when its string holds no escape, and decoded when it does;
    /// either way it reads as `decode` reads it, and a message is relevant to every host but its sender.
    @Test func hostIDIsReadAsDecodeReadsIt() throws {
        let head = #"{"method": "emit", "event": "e", "data": [1], "room": "r""#
        for (field, expected) in [
            (#", "host_id": "abc"}"#, "abc"), (#", "host_id": "a\u0062c"}"#, "abc"), (#", "host_id": "a\"b"}"#, "a\"b"),
            (#", "host_id": "h\u00e9"}"#, "h\u{e9}"), (#", "host_id": "h\#u{e9}"}"#, "h\u{e9}"),
            (#", "host_id": ""}"#, ""),
            (#", "host_id": null}"#, ""), ("}", ""),
        ] {
            let bytes = ByteBuffer(string: head + field)
            let received = try PubSubMessage.read(bytes)
            #expect(received.hostID == expected, "\(field)")
            #expect(try PubSubMessage.decode(bytes).hostID == expected, "\(field)")
            #expect(!received.isRelevant(toHost: expected), "\(field)")
            #expect(received.isRelevant(toHost: expected + "x"), "\(field)")
            #expect(received.isRelevant(toHost: String(expected.dropLast())) == !expected.isEmpty, "\(field)")
        }
        for field in [#", "host_id": 5}"#, #", "host_id": ["h"]}"#, #", "host_id": true}"#] {
            let bytes = ByteBuffer(string: head + field)
            #expect(throws: PubSubMessageError.self, "\(field)") { try PubSubMessage.read(bytes) }
        }
    }

    /// Every prefix of valid messages, and random byte changes to them: read accepts exactly what decode accepts,
    /// with the same fields, and refuses the rest with decode's error.
    @Test func readAgreesWithDecodeOnDamagedMessages() throws {
        var seeds = try PubSubFixtures.names.map { String(buffer: try PubSubFixtures.bytes($0)) }
        seeds.append(Self.message(data: "[\"x\\u00e9\", 1.0, {\"k\": [true, null]}, \"\u{E9}\u{65E5}\"]"))
        seeds.append(Self.message(data: String(repeating: "[", count: 129) + String(repeating: "]", count: 129)))
        seeds.append(Self.message(data: String(repeating: "[", count: 130) + String(repeating: "]", count: 130)))
        var generator = SeededGenerator(seed: 0xDA7A)
        var inputs: [[UInt8]] = []
        for seed in seeds {
            let bytes = Array(seed.utf8)
            for length in 0...bytes.count { inputs.append(Array(bytes[0..<length])) }
            for _ in 0..<200 {
                var damaged = bytes
                let position = Int(generator.next() % UInt64(damaged.count))
                let replacements: [UInt8] = [
                    0x00, 0x0A, 0x22, 0x5C, 0x7B, 0x5D, 0x2C, 0x3A, 0x80, 0xC3, 0xED, 0xFF, 0x4E, 0x75,
                ]
                damaged[position] = replacements[Int(generator.next() % UInt64(replacements.count))]
                inputs.append(damaged)
            }
        }
        // Invalid UTF-8 and escapes inside data only.
        for data in [
            "[\"\u{1}\"]", "[\"\\x\"]", "[\"\\u12G4\"]", "[01]", "[1.]", "[1e]", "[-]", "[tru]", "[1,]", "[,1]", "{}",
            "\"s\"", "[1] x",
        ] {
            inputs.append(Array(Self.message(data: data).utf8))
        }
        for invalid: [UInt8] in [
            [0xC3], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF], [0xE0, 0x80, 0x80], [0x80],
            [0xF0, 0x9F, 0x98],
        ] {
            let text = Array(Self.message(data: "[\"aXb\"]").utf8)
            let x = text.firstIndex(of: UInt8(ascii: "X"))!
            inputs.append(Array(text[..<x]) + invalid + Array(text[(x + 1)...]))
        }
        var accepted = 0
        for input in inputs {
            let buffer = ByteBuffer(bytes: input)
            let decoded = Result { () throws(PubSubMessageError) in try PubSubMessage.decode(buffer) }
            let read = Result { () throws(PubSubMessageError) in try PubSubMessage.read(buffer).decoded() }
            if let target = PubSubEmitTarget.scan(buffer) {
                PubSubEmitTargetTests.expectReadAgreement(
                    buffer,
                    scanned: target,
                    label: { String(decoding: input, as: UTF8.self) }
                )
            }
            switch (decoded, read) {
            case (.success(let a), .success(let b)):
                #expect(a == b, "\(String(decoding: input, as: UTF8.self))")
                accepted += 1
            case (.failure(let a), .failure(let b)):
                #expect(a == b, "\(String(decoding: input, as: UTF8.self))")
            default:
                Issue.record(
                    "read and decode disagree on \(String(decoding: input, as: UTF8.self)): \(decoded) / \(read)"
                )
            }
        }
        #expect(accepted > seeds.count)
    }
}
