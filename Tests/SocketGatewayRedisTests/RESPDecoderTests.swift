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
