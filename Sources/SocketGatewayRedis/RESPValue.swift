public import NIOCore
import SocketGatewayCore

/// One RESP2 reply from Redis, as decoded by hiredis's reply reader.
public enum RESPValue: Sendable, Hashable {
    /// A status reply such as `+OK`.
    case simpleString(String)
    /// An error reply such as `-NOAUTH Authentication required.`.
    case error(String)
    /// An integer reply such as the subscriber count of PUBLISH.
    case integer(Int64)
    /// A bulk string; its bytes are kept as they came.
    case bulkString(ByteBuffer)
    /// A multi-bulk reply.
    case array([RESPValue])
    /// The null bulk string or null array.
    case null

    /// The value as text when it is a simple or bulk string (bulk strings decoded as UTF-8).
    public var string: String? {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes): return String(buffer: bytes)
        default: return nil
        }
    }

    /// The value when it is an integer reply.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }
}

extension RESPValue: CustomStringConvertible {
    /// A one-line rendering for logs.
    public var description: String {
        switch self {
        case .simpleString(let text): return "+\(text)"
        case .error(let text): return "-\(text)"
        case .integer(let value): return ":\(value)"
        case .bulkString(let bytes):
            let text = String(decoding: bytes.readableBytesView.prefix(200), as: UTF8.self)
            return bytes.readableBytes > 200 ? "$\"\(text)…\" (\(bytes.readableBytes) bytes)" : "$\"\(text)\""
        case .array(let values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .null: return "(nil)"
        }
    }
}

/// Writes Redis commands as RESP arrays of bulk strings straight into a `ByteBuffer`.
package enum RESPCommand {
    /// Appends one command (`*N\r\n` then `$len\r\ndata\r\n` per argument) to `buffer`.
    package static func write(_ arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        Self.writeDecimal(arguments.count, into: &buffer)
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            Self.writeBulk(argument, into: &buffer)
        }
    }

    /// Appends `PUBLISH channel payload` without copying the payload more than once.
    package static func writePublish(channel: String, payload: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*3\r\n$7\r\nPUBLISH\r\n")
        Self.writeBulk(channel, into: &buffer)
        buffer.writeStaticString("$")
        Self.writeDecimal(payload.readableBytes, into: &buffer)
        buffer.writeStaticString("\r\n")
        var payload = payload
        buffer.writeBuffer(&payload)
        buffer.writeStaticString("\r\n")
    }

    /// The number of bytes `writePublish` appends.
    package static func publishSize(channel: String, payloadBytes: Int) -> Int {
        17 + Self.bulkSize(channel.utf8.count) + Self.bulkSize(payloadBytes)
    }

    private static func bulkSize(_ count: Int) -> Int { 1 + Self.decimalDigits(count) + 2 + count + 2 }

    private static func writeBulk(_ text: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("$")
        Self.writeDecimal(text.utf8.count, into: &buffer)
        buffer.writeStaticString("\r\n")
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    private static func decimalDigits(_ value: Int) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        return digits
    }

    /// Appends the decimal digits of `value` (not negative).
    static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        precondition(value >= 0)
        DecimalText.withDigits(of: Int64(value)) { buffer.writeBytes($0) }
    }
}
