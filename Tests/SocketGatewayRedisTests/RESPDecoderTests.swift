import NIOCore
import NIOEmbedded
import Testing

@testable import SocketGatewayRedis

@Suite struct RESPDecoderTests {
    private func decode(_ chunks: [String]) throws -> [RESPValue] {
        let channel = EmbeddedChannel(handler: RESPReplyDecoder())
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(string: chunk))
        }
        var values: [RESPValue] = []
        while let value = try channel.readInbound(as: RESPValue.self) {
            values.append(value)
        }
        _ = try channel.finish()
        return values
    }

    @Test func decodesEveryReplyType() throws {
        let values = try self.decode([
            "+OK\r\n-ERR unknown command\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*3\r\n$7\r\nmessage\r\n$8\r\nsocketio\r\n$2\r\n{}\r\n*0\r\n"
        ])
        #expect(
            values == [
                .simpleString("OK"), .error("ERR unknown command"), .integer(42), .integer(-7),
                .bulkString(ByteBuffer(string: "hello")), .bulkString(ByteBuffer()), .null, .null,
                .array([
                    .bulkString(ByteBuffer(string: "message")), .bulkString(ByteBuffer(string: "socketio")),
                    .bulkString(ByteBuffer(string: "{}")),
                ]),
                .array([]),
            ]
        )
    }

    @Test func decodesBytesDrippedOneAtATime() throws {
        let text = "*2\r\n$4\r\npong\r\n$0\r\n\r\n:3\r\n$6\r\nb\u{00}in\r\n\r\n"
        let values = try self.decode(text.map { String($0) })
        #expect(
            values == [
                .array([.bulkString(ByteBuffer(string: "pong")), .bulkString(ByteBuffer())]), .integer(3),
                .bulkString(ByteBuffer(string: "b\u{00}in\r\n")),
            ]
        )
    }

    @Test func nestedArraysAndBinaryBulk() throws {
        let values = try self.decode(["*2\r\n*1\r\n:1\r\n$2\r\n\u{e9}\r\n"])
        #expect(values == [.array([.array([.integer(1)]), .bulkString(ByteBuffer(string: "\u{e9}"))])])
    }

    @Test func protocolErrorClosesTheChannel() throws {
        let channel = EmbeddedChannel(handler: RESPReplyDecoder())
        #expect(throws: RedisError.self) {
            try channel.writeInbound(ByteBuffer(string: "?garbage\r\n"))
        }
        #expect(!channel.isActive)
    }

    /// Pushes (read by `RESPPushParser`) mixed with what hiredis reads: a subscribe confirmation, a status, an
    /// error, a null, a nested array, an array with a null element, a push of four strings and one with an empty
    /// string.
    private static let mixedStream =
        "*3\r\n$9\r\nsubscribe\r\n$8\r\nsocketio\r\n:1\r\n"
        + "*3\r\n$7\r\nmessage\r\n$8\r\nsocketio\r\n$12\r\n{\"a\":\"\r\n\u{e9}\"}\r\n"
        + "+OK\r\n-ERR wrong\r\n$-1\r\n*2\r\n*1\r\n$1\r\nx\r\n$1\r\ny\r\n*2\r\n$1\r\na\r\n$-1\r\n"
        + "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$3\r\nroo\r\n$2\r\n[]\r\n"
        + "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        + "*3\r\n$8\r\nsmessage\r\n$10\r\nsocketio#/\r\n$2\r\n{}\r\n"

    private static let mixedValues: [RESPValue] = [
        .array([.bulkString(ByteBuffer(string: "subscribe")), .bulkString(ByteBuffer(string: "socketio")), .integer(1)]
        ),
        .array([
            .bulkString(ByteBuffer(string: "message")), .bulkString(ByteBuffer(string: "socketio")),
            .bulkString(ByteBuffer(string: "{\"a\":\"\r\n\u{e9}\"}")),
        ]),
        .simpleString("OK"), .error("ERR wrong"), .null,
        .array([.array([.bulkString(ByteBuffer(string: "x"))]), .bulkString(ByteBuffer(string: "y"))]),
        .array([.bulkString(ByteBuffer(string: "a")), .null]),
        .array([
            .bulkString(ByteBuffer(string: "pmessage")), .bulkString(ByteBuffer(string: "*")),
            .bulkString(ByteBuffer(string: "roo")), .bulkString(ByteBuffer(string: "[]")),
        ]),
        .array([.bulkString(ByteBuffer(string: "pong")), .bulkString(ByteBuffer())]),
        .array([
            .bulkString(ByteBuffer(string: "smessage")), .bulkString(ByteBuffer(string: "socketio#/")),
            .bulkString(ByteBuffer(string: "{}")),
        ]),
    ]

    @Test func mixedRepliesSplitAnywhereDecodeTheSame() throws {
        let bytes = Array(Self.mixedStream.utf8)
        #expect(try self.decode([Self.mixedStream]) == Self.mixedValues)
        for cut in 1..<bytes.count {
            #expect(
                try self.decodeBytes([Array(bytes[..<cut]), Array(bytes[cut...])]) == Self.mixedValues,
                "cut \(cut)"
            )
        }
        #expect(try self.decodeBytes(bytes.map { [$0] }) == Self.mixedValues)
        // Three pieces at every pair of cuts in the first two replies (the push after the confirmation).
        for first in 1..<60 {
            for second in (first + 1)..<70 {
                let pieces = [Array(bytes[..<first]), Array(bytes[first..<second]), Array(bytes[second...])]
                #expect(try self.decodeBytes(pieces) == Self.mixedValues, "cuts at \(first), \(second)")
            }
        }
    }

    private func decodeBytes(_ chunks: [[UInt8]]) throws -> [RESPValue] {
        let channel = EmbeddedChannel(handler: RESPReplyDecoder())
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
        }
        var values: [RESPValue] = []
        while let value = try channel.readInbound(as: RESPValue.self) {
            values.append(value)
        }
        _ = try channel.finish()
        return values
    }

    @Test func protocolErrorAfterPushesClosesTheChannel() throws {
        let channel = EmbeddedChannel(handler: RESPReplyDecoder())
        #expect(throws: RedisError.self) {
            try channel.writeInbound(ByteBuffer(string: "*1\r\n$2\r\nab\r\n?garbage\r\n"))
        }
        #expect(try channel.readInbound(as: RESPValue.self) == .array([.bulkString(ByteBuffer(string: "ab"))]))
        #expect(!channel.isActive)
    }

    @Test func pushParserTakesOnlyArraysOfBulkStrings() {
        func step(_ text: String) -> (RESPPushParser.Step, left: Int) {
            var buffer = ByteBuffer(string: text)
            let step = RESPPushParser.parse(&buffer)
            return (step, buffer.readableBytes)
        }
        let push = "*2\r\n$4\r\npong\r\n$3\r\nabc\r\n"
        #expect(
            step(push + "+OK").0
                == .push([.bulkString(ByteBuffer(string: "pong")), .bulkString(ByteBuffer(string: "abc"))])
        )
        #expect(step(push + "+OK").left == 3)
        for end in 0..<push.utf8.count {
            let prefix = String(push.utf8.prefix(end))!
            #expect(step(prefix) == (.incomplete, end), "prefix of \(end) bytes")
        }
        // Left to hiredis: other reply types, an empty, null or too long array, a null bulk string, a nested array,
        // a leading zero, a sign, an 11-digit length, a missing CRLF after the bytes.
        for text in [
            "+OK\r\n", ":1\r\n", "*0\r\n", "*-1\r\n", "*5\r\n", "*1\r\n$-1\r\n", "*1\r\n*1\r\n", "*01\r\n",
            "*1\r\n$+1\r\n", "*1\r\n$12345678901\r\n", "*1\r\n$1\r\nab\r\n", "*1\r\n$1\r\na\n\r", "*1\n",
            "*1\r\r", "*3\r\n$9\r\nsubscribe\r\n$8\r\nsocketio\r\n:1\r\n",
        ] {
            #expect(step(text) == (.other, text.utf8.count), "\(text.debugDescription)")
        }
    }

    @Test func encodesCommands() {
        var buffer = ByteBuffer()
        RESPCommand.write(["AUTH", "user", "pässword"], into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$9\r\npässword\r\n")
        buffer.clear()
        let payload = ByteBuffer(string: String(repeating: "x", count: 1234))
        RESPCommand.writePublish(channel: "socketio", payload: payload, into: &buffer)
        #expect(
            String(buffer: buffer) == "*3\r\n$7\r\nPUBLISH\r\n$8\r\nsocketio\r\n$1234\r\n"
                + String(repeating: "x", count: 1234) + "\r\n"
        )
        #expect(buffer.readableBytes == RESPCommand.publishSize(channel: "socketio", payloadBytes: 1234))
    }
}
