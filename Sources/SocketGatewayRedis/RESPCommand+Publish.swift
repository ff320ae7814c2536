import NIOCore
import SocketGatewayCore

extension RESPCommand {
    /// Appends `*3\r\n$7\r\nPUBLISH\r\n$<n>\r\n<channel>\r\n$`: a `PUBLISH` up to its payload's length digits.
    static func writePublishPrefix(channel: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*3\r\n$7\r\nPUBLISH\r\n$")
        Self.writeDecimal(channel.utf8.count, into: &buffer)
        buffer.writeStaticString("\r\n")
        buffer.writeString(channel)
        buffer.writeStaticString("\r\n$")
    }

    /// Appends a `PUBLISH` whose framing up to the payload's length is `prefix` (see `writePublishPrefix`), in
    /// one copy per piece.
    /// - Returns: The writer index at which the payload starts.
    static func writePublish(
        prefix: UnsafeRawBufferPointer,
        payload: UnsafeRawBufferPointer,
        into buffer: inout ByteBuffer
    ) -> Int {
        DecimalText.withDigits(of: Int64(payload.count)) { length in
            let total = prefix.count + length.count + 2 + payload.count + 2
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { free in
                var at = 0
                func put(_ bytes: UnsafeRawBufferPointer) {
                    guard let source = bytes.baseAddress, bytes.count > 0 else { return }
                    (free.baseAddress! + at).copyMemory(from: source, byteCount: bytes.count)
                    at += bytes.count
                }
                let crlf: StaticString = "\r\n"
                let crlfBytes = UnsafeRawBufferPointer(start: crlf.utf8Start, count: 2)
                put(prefix)
                put(length)
                put(crlfBytes)
                put(payload)
                put(crlfBytes)
                return at
            }
        }
        return buffer.writerIndex - payload.count - 2
    }
}
