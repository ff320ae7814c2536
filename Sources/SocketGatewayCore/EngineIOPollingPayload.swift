package import NIOCore

/// The HTTP long-polling payload codec: packets as records separated by the record separator `0x1e`, binary
/// messages as `b<base64>`.
///
/// `"4hello\u{1e}bAQIDBA=="` is a text message `hello` followed by the binary message `01 02 03 04`.
package enum EngineIOPollingPayload {
    /// The record separator between packets.
    package static let recordSeparator: UInt8 = 0x1E

    /// Decodes the body of a polling POST.
    /// - Parameters:
    ///   - body: the whole request body.
    ///   - maxPayload: the largest body accepted, in bytes.
    /// - Returns: the packets in order.
    /// - Throws: ``EngineIOCodecError`` (`payloadTooLarge`, `emptyPacket`, `unknownPacketType`, `invalidBase64`).
    package static func decode(_ body: ByteBuffer, maxPayload: Int) throws(EngineIOCodecError) -> [EngineIOPacket] {
        guard body.readableBytes <= maxPayload else {
            throw EngineIOCodecError(
                code: .payloadTooLarge,
                context: "polling body of \(body.readableBytes) bytes, maxPayload \(maxPayload)"
            )
        }
        var packets: [EngineIOPacket] = []
        var start = body.readerIndex
        let end = body.writerIndex
        var recordNumber = 0
        while true {
            recordNumber += 1
            let view = body.readableBytesView
            let separator = view[(start - body.readerIndex + view.startIndex)...].firstIndex(of: Self.recordSeparator)
            let recordEnd = separator.map { $0 - view.startIndex + body.readerIndex } ?? end
            let record = body.getSlice(at: start, length: recordEnd - start)!
            packets.append(try Self.decodeRecord(record, number: recordNumber))
            guard separator != nil else { break }
            start = recordEnd + 1
        }
        return packets
    }

    private static func decodeRecord(_ record: ByteBuffer, number: Int) throws(EngineIOCodecError) -> EngineIOPacket {
        guard let first = record.getInteger(at: record.readerIndex, as: UInt8.self) else {
            throw EngineIOCodecError(code: .emptyPacket, context: "record \(number) of a polling payload is empty")
        }
        if first == UInt8(ascii: "b") {
            let text = record.readableBytesView.dropFirst()
            guard let bytes = Base64.decode(text) else {
                throw EngineIOCodecError(code: .invalidBase64, context: "record \(number) of a polling payload")
            }
            return .binaryMessage(bytes)
        }
        do {
            return try EngineIOPacket.decode(text: record)
        } catch {
            throw EngineIOCodecError(
                code: error.code,
                context: "record \(number) of a polling payload: \(error.context)"
            )
        }
    }

    /// Appends one packet as a polling record (without separator).
    package static func encodeRecord(_ packet: EngineIOPacket, into buffer: inout ByteBuffer) {
        if case .binaryMessage(let bytes) = packet {
            buffer.writeInteger(UInt8(ascii: "b"))
            Base64.encode(bytes.readableBytesView, into: &buffer)
        } else {
            packet.encodeWebSocketPayload(into: &buffer)
        }
    }

    /// Encodes a batch of packets as the body of a polling GET response.
    /// - Parameter packets: the packets, in order (at least one).
    /// - Returns: the records joined by `0x1e`.
    package static func encode<Packets: Sequence<EngineIOPacket>>(
        _ packets: Packets,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: packets.underestimatedCount * 16)
        var first = true
        for packet in packets {
            if !first { buffer.writeInteger(Self.recordSeparator) }
            first = false
            Self.encodeRecord(packet, into: &buffer)
        }
        return buffer
    }

    /// An upper bound of the bytes `encodeRecord` writes for `packet` (for buffer accounting).
    package static func encodedRecordLength(_ packet: EngineIOPacket) -> Int {
        if case .binaryMessage(let bytes) = packet {
            return 1 + Base64.encodedLength(bytes.readableBytes)
        }
        return packet.encodedTextLength
    }
}
