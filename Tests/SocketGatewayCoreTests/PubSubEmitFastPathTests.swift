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
