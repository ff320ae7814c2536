import NIOCore
import SocketGatewayCore
import Testing

/// SplitMix64: a small deterministic generator, so every run explores the same inputs.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct JSONFuzzTests {
    /// Bytes that matter to the JSON and Socket.IO grammars, plus a few that never appear in them.
    static let alphabet: [UInt8] =
        Array(#"{}[]",:-+.0123456789eEtrufalsn\/bu"#.utf8) + [
            0x20, 0x0A, 0x09, 0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xED, 0xA0, 0x80, 0xF0, 0x9F, 0x98, 0x80, 0xFF,
            UInt8(ascii: "d"), UInt8(ascii: "8"), UInt8(ascii: "_"), UInt8(ascii: "p"),
        ]

    static let seeds: [String] = [
        #"["message",1,"2",{"3":[true]}]"#,
        #"{"a":[1.5e-7,-0,true,false,null,"\u00e9\ud83d\ude00\n"],"b":{}}"#,
        #"[[[[[]]]],{"k":{"k":{"k":[]}}}]"#,
        #""\"\\\/\b\f\n\r\t""#,
        "-9223372036854775808",
        "123456789012345678901234567890e-5",
    ]

    static func randomBytes(_ generator: inout SeededGenerator) -> [UInt8] {
        let length = Int.random(in: 0...40, using: &generator)
        return (0..<length).map { _ in
            if Int.random(in: 0..<8, using: &generator) == 0 {
                return UInt8.random(in: 0...255, using: &generator)
            }
            return alphabet.randomElement(using: &generator)!
        }
    }

    static func mutate(_ input: [UInt8], _ generator: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &generator) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<4, using: &generator) {
            case 0 where !bytes.isEmpty:
                bytes.remove(at: position)
            case 1:
                bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
            case 2 where !bytes.isEmpty:
                bytes[position] = alphabet.randomElement(using: &generator)!
            default:
                bytes = Array(bytes.prefix(position))  // truncation
            }
        }
        return bytes
    }

    @Test func parserNeverTrapsAndAcceptedInputsReachAFixpoint() {
        var generator = SeededGenerator(seed: 0x5EED_0001)
        var accepted = 0
        for iteration in 0..<20_000 {
            let input: [UInt8]
            if iteration % 2 == 0 {
                input = Self.randomBytes(&generator)
            } else {
                input = Self.mutate(Array(Self.seeds.randomElement(using: &generator)!.utf8), &generator)
            }
            do {
                let value = try JSONValue.parse(input, maxDepth: 8)
                accepted += 1
                // Whatever was accepted is written as JSON that parses back to the same text.
                let text = value.jsonString
                let again = try JSONValue.parse(text)
                #expect(again.jsonString == text, "input \(input)")
            } catch {
                #expect(error.offset >= 0 && error.offset <= input.count, "\(error) for \(input)")
            }
        }
        #expect(accepted > 100, "the fuzzer should reach valid documents too")
    }

    static func randomString(_ generator: inout SeededGenerator) -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...8, using: &generator) {
            let pick = Int.random(in: 0..<10, using: &generator)
            let value: UInt32
            switch pick {
            case 0: value = UInt32.random(in: 0...0x1F, using: &generator)
            case 1: value = [0x22, 0x5C, 0x2F, 0x7F].randomElement(using: &generator)!
            case 2: value = UInt32.random(in: 0x80...0xD7FF, using: &generator)
            case 3: value = UInt32.random(in: 0xE000...0xFFFF, using: &generator)
            case 4: value = UInt32.random(in: 0x10000...0x10FFFF, using: &generator)
            default: value = UInt32.random(in: 0x20...0x7E, using: &generator)
            }
            scalars.append(Unicode.Scalar(value)!)
        }
        return String(scalars)
    }

    static func randomNumber(_ generator: inout SeededGenerator) -> JSONValue {
        if Bool.random(using: &generator) {
            return .int(Int64(bitPattern: generator.next()) >> Int.random(in: 0...63, using: &generator))
        }
        var double = Double(bitPattern: generator.next())
        while !double.isFinite { double = Double(bitPattern: generator.next()) }
        if double.rounded() == double, let integer = Int64(exactly: double) { return .int(integer) }
        return .double(double)
    }

    static func randomValue(_ generator: inout SeededGenerator, depth: Int, binary: Bool) -> JSONValue {
        let kinds = depth >= 4 ? 5 : 7
        switch Int.random(in: 0..<(binary ? kinds + 1 : kinds), using: &generator) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2, 3: return randomNumber(&generator)
        case 4: return .string(randomString(&generator))
        case 5:
            return .array(
                (0..<Int.random(in: 0...4, using: &generator)).map { _ in
                    randomValue(&generator, depth: depth + 1, binary: binary)
                }
            )
        case 6:
            return .object(
                (0..<Int.random(in: 0...4, using: &generator)).map { _ in
                    (key: randomString(&generator), value: randomValue(&generator, depth: depth + 1, binary: binary))
                }
            )
        default:
            let bytes = (0..<Int.random(in: 0...6, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            return .binary(ByteBuffer(bytes: bytes))
        }
    }

    @Test func generatedValuesRoundTripThroughBothWriters() throws {
        var generator = SeededGenerator(seed: 0x5EED_0002)
        for _ in 0..<5_000 {
            let value = Self.randomValue(&generator, depth: 0, binary: false)
            let text = value.jsonString
            #expect(try JSONValue.parse(text) == value, "\(text)")
            // Python's form is also valid JSON (no NaN here) and means the same.
            let python = value.pythonJSONString
            #expect(python.utf8.allSatisfy { $0 < 0x80 }, "ensure_ascii output must be ASCII: \(python)")
            #expect(try JSONValue.parse(python).jsonString == text, "\(python)")
        }
    }

    @Test func generatedPacketsRoundTripThroughTheSocketIOCodec() throws {
        var generator = SeededGenerator(seed: 0x5EED_0003)
        for iteration in 0..<5_000 {
            let arguments = (0..<Int.random(in: 0...3, using: &generator)).map { _ in
                Self.randomValue(&generator, depth: 1, binary: true)
            }
            let namespace = Bool.random(using: &generator) ? "/" : "/n\(iteration % 7)"
            let ackID: UInt64? = Bool.random(using: &generator) ? generator.next() : nil
            var packet: SocketIOPacket
            if let ackID, Bool.random(using: &generator) {
                packet = .ack(ackID: ackID, arguments, namespace: namespace)
            } else {
                packet = .event("e\(iteration % 5)", arguments, namespace: namespace, ackID: ackID)
            }
            let (text, attachments) = packet.encoded()
            var decoder = SocketIOPacketDecoder(maxAttachments: 1_000)
            var decoded = try decoder.decode(text: text)
            for attachment in attachments {
                #expect(decoded == nil)
                decoded = try decoder.decode(binary: attachment)
            }
            if !attachments.isEmpty {
                packet.type = packet.type == .event ? .binaryEvent : .binaryAck
            }
            #expect(decoded == packet, "\(String(buffer: text))")
        }
    }

    @Test func socketIODecoderNeverTraps() {
        var generator = SeededGenerator(seed: 0x5EED_0004)
        let packetSeeds = [
            #"2["message",1,"2",{"3":[true]}]"#,
            #"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            #"62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            #"40/custom,{"token":"abc"}"#.dropFirst().description,
            #"2/admin,13["msg",{}]"#,
            "0/custom",
        ]
        var decoder = SocketIOPacketDecoder()
        var completed = 0
        for iteration in 0..<20_000 {
            do {
                if iteration % 5 == 4 {
                    if try decoder.decode(binary: ByteBuffer(bytes: Self.randomBytes(&generator))) != nil {
                        completed += 1
                    }
                } else {
                    let seed = Array(packetSeeds.randomElement(using: &generator)!.utf8)
                    let input = iteration % 5 == 0 ? Self.randomBytes(&generator) : Self.mutate(seed, &generator)
                    if try decoder.decode(text: ByteBuffer(bytes: input)) != nil {
                        completed += 1
                    }
                }
            } catch {
                #expect(
                    error.excerpt.utf8.count <= 64 * 6 + 3,
                    "64 input bytes, each at most 6 characters escaped, and …"
                )
                #expect(!error.excerpt.contains("\n") && !error.excerpt.contains("\r"), "log-safe: one line")
                #expect(!decoder.isAwaitingAttachments, "an error resets the decoder")
            }
        }
        #expect(completed > 100)
    }
}
