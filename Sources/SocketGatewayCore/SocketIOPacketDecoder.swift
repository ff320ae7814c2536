package import NIOCore

/// Decodes Socket.IO v5 packets from the Engine.IO messages of one connection, validating them as the official
/// JavaScript server does.
///
/// A state machine: a text packet is returned at once, except a BINARY_EVENT/BINARY_ACK header, which makes the
/// decoder wait: `decode(binary:)` returns `nil` until the last announced attachment arrives, then the packet with
/// every placeholder replaced by its `.binary` bytes. Any error leaves the decoder reset; the connection that sent
/// the bad packet should be closed.
package struct SocketIOPacketDecoder: Sendable {
    /// Event names the official server refuses from clients.
    static let reservedEventNames: Set<String> = [
        "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
    ]

    private struct Pending: Sendable {
        var packet: SocketIOPacket
        var expected: Int
        var attachments: [ByteBuffer]
    }

    /// The largest number of attachments one packet may announce.
    package let maxAttachments: Int
    /// The deepest JSON nesting accepted in a payload.
    package let maxDepth: Int
    private var pending: Pending?

    /// Creates a decoder.
    /// - Parameters:
    ///   - maxAttachments: The largest number of binary attachments one packet may announce (10, as the
    ///     official parser's default).
    ///   - maxDepth: The deepest JSON nesting accepted in a payload.
    package init(maxAttachments: Int = 10, maxDepth: Int = 128) {
        self.maxAttachments = maxAttachments
        self.maxDepth = maxDepth
    }

    /// Whether a binary packet is waiting for attachments.
    package var isAwaitingAttachments: Bool {
        self.pending != nil
    }

    /// Decodes one text message (the Engine.IO MESSAGE payload after the `4`).
    /// - Parameter text: The packet text.
    /// - Returns: The packet, or `nil` for a binary packet header that waits for its attachments.
    /// - Throws: `SocketIOProtocolError` when the packet breaks the protocol.
    package mutating func decode(text: ByteBuffer) throws(SocketIOProtocolError) -> SocketIOPacket? {
        if let pending = self.pending {
            self.pending = nil
            throw SocketIOProtocolError(
                code: .unexpectedText,
                message:
                    "a text packet arrived while \(pending.expected - pending.attachments.count) binary attachment(s) were still expected",
                namespace: pending.packet.namespace,
                packetType: pending.packet.type,
                excerpt: Self.excerpt(text)
            )
        }
        let (packet, attachmentCount) = try Self.parseText(
            text,
            maxAttachments: self.maxAttachments,
            maxDepth: self.maxDepth
        )
        guard let attachmentCount else { return packet }
        if attachmentCount == 0 {
            return try Self.reconstruct(packet, attachments: [], excerpt: text)
        }
        self.pending = Pending(packet: packet, expected: attachmentCount, attachments: [])
        self.pending!.attachments.reserveCapacity(attachmentCount)
        return nil
    }

    /// Decodes one binary message: the next attachment of the pending binary packet.
    /// - Parameter binary: The attachment bytes.
    /// - Returns: The completed packet after its last attachment, otherwise `nil`.
    /// - Throws: `SocketIOProtocolError` when no attachment was expected or a placeholder is invalid.
    package mutating func decode(binary: ByteBuffer) throws(SocketIOProtocolError) -> SocketIOPacket? {
        guard var pending = self.pending else {
            throw SocketIOProtocolError(
                code: .unexpectedBinary,
                message:
                    "a binary message (\(binary.readableBytes) bytes) arrived but no binary packet announced attachments"
            )
        }
        pending.attachments.append(binary)
        if pending.attachments.count < pending.expected {
            self.pending = pending
            return nil
        }
        self.pending = nil
        return try Self.reconstruct(pending.packet, attachments: pending.attachments, excerpt: nil)
    }

    /// Forgets a half-received binary packet (e.g. when the connection leaves).
    package mutating func reset() {
        self.pending = nil
    }

    // MARK: Text parsing

    static func excerpt(_ buffer: ByteBuffer) -> String {
        LogSafe.excerpt(buffer.readableBytesView)
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// Parses the text form; returns the packet and, for a binary type, the announced attachment count.
    static func parseText(
        _ text: ByteBuffer,
        maxAttachments: Int,
        maxDepth: Int
    ) throws(SocketIOProtocolError) -> (SocketIOPacket, Int?) {
        let result: Result<(SocketIOPacket, Int?), SocketIOProtocolError> = text.withUnsafeReadableBytes { bytes in
            do throws(SocketIOProtocolError) {
                return .success(
                    try Self.parseText(bytes, maxAttachments: maxAttachments, maxDepth: maxDepth, original: text)
                )
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static func parseText(
        _ bytes: UnsafeRawBufferPointer,
        maxAttachments: Int,
        maxDepth: Int,
        original: ByteBuffer
    ) throws(SocketIOProtocolError) -> (SocketIOPacket, Int?) {
        func failure(
            _ code: SocketIOProtocolError.Code,
            _ message: String,
            namespace: String? = nil,
            type: SocketIOPacketType? = nil,
            underlying: JSONParseError? = nil
        ) -> SocketIOProtocolError {
            SocketIOProtocolError(
                code: code,
                message: message,
                namespace: namespace,
                packetType: type,
                excerpt: Self.excerpt(original),
                underlying: underlying
            )
        }

        let count = bytes.count
        guard count > 0 else {
            throw failure(.emptyPacket, "expected a packet type digit 0-6, found an empty message")
        }
        guard Self.isDigit(bytes[0]), let type = SocketIOPacketType(rawValue: bytes[0] &- UInt8(ascii: "0")) else {
            throw failure(.unknownPacketType, "expected a packet type digit 0-6 as the first character")
        }
        var index = 1

        // Attachment count.
        var attachmentCount: Int? = nil
        if type == .binaryEvent || type == .binaryAck {
            var number = 0
            let start = index
            while index < count && Self.isDigit(bytes[index]) {
                let (times10, o1) = number.multipliedReportingOverflow(by: 10)
                let (next, o2) = times10.addingReportingOverflow(Int(bytes[index] &- UInt8(ascii: "0")))
                if o1 || o2 || next > maxAttachments {
                    throw failure(
                        .tooManyAttachments,
                        "the packet announces more than the \(maxAttachments) binary attachments allowed",
                        type: type
                    )
                }
                number = next
                index += 1
            }
            guard index > start, index < count, bytes[index] == UInt8(ascii: "-") else {
                throw failure(
                    .invalidAttachmentCount,
                    "expected the number of attachments followed by '-' after the packet type",
                    type: type
                )
            }
            index += 1
            attachmentCount = number
        }

        // Namespace: from a leading '/' to the first ',' (or the end).
        var namespace = "/"
        if index < count && bytes[index] == UInt8(ascii: "/") {
            let start = index
            while index < count && bytes[index] != UInt8(ascii: ",") {
                index += 1
            }
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
            guard let decoded = String(validating: raw, as: UTF8.self) else {
                throw failure(.invalidNamespace, "the namespace is not valid UTF-8", type: type)
            }
            namespace = decoded
            if index < count { index += 1 }  // the ','
        }

        // Acknowledgement id: digits only.
        var ackID: UInt64? = nil
        if index < count && Self.isDigit(bytes[index]) {
            var number: UInt64 = 0
            while index < count && Self.isDigit(bytes[index]) {
                let (times10, o1) = number.multipliedReportingOverflow(by: 10)
                let (next, o2) = times10.addingReportingOverflow(UInt64(bytes[index] &- UInt8(ascii: "0")))
                if o1 || o2 {
                    throw failure(
                        .invalidAckID,
                        "the acknowledgement id does not fit in 64 bits",
                        namespace: namespace,
                        type: type
                    )
                }
                number = next
                index += 1
            }
            ackID = number
        }

        // Payload.
        var data: JSONValue? = nil
        if index < count {
            switch bytes[index] {
            case UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: "\""), UInt8(ascii: "-"), UInt8(ascii: "t"),
                UInt8(ascii: "f"), UInt8(ascii: "n"), 0x20, 0x09, 0x0A, 0x0D:
                break
            default:
                throw failure(
                    .invalidAckID,
                    "expected an acknowledgement id (digits) or a JSON payload after the namespace",
                    namespace: namespace,
                    type: type
                )
            }
            switch JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[index...]), maxDepth: maxDepth) {
            case .success(let value):
                data = value
            case .failure(var error):
                error.offset += index
                throw failure(
                    .invalidJSON,
                    "the payload is not valid JSON",
                    namespace: namespace,
                    type: type,
                    underlying: error
                )
            }
        }

        // Payload validation, as the official parser's isPayloadValid.
        switch type {
        case .connect:
            if let data, data.objectValue == nil {
                throw failure(
                    .invalidPayload,
                    "a CONNECT payload must be an object (the auth data) or absent",
                    namespace: namespace,
                    type: type
                )
            }
        case .disconnect:
            if data != nil {
                throw failure(
                    .invalidPayload,
                    "a DISCONNECT packet must not have a payload",
                    namespace: namespace,
                    type: type
                )
            }
        case .connectError:
            if let data, data.objectValue == nil && data.stringValue == nil {
                throw failure(
                    .invalidPayload,
                    "a CONNECT_ERROR payload must be an object or a string",
                    namespace: namespace,
                    type: type
                )
            }
        case .event, .binaryEvent:
            guard case .array(let payload) = data, let first = payload.first else {
                throw failure(
                    .invalidPayload,
                    "an EVENT payload must be a non-empty array [name, ...args]",
                    namespace: namespace,
                    type: type
                )
            }
            guard case .string(let name) = first else {
                throw failure(
                    .invalidPayload,
                    "an EVENT payload must start with the event name as a string",
                    namespace: namespace,
                    type: type
                )
            }
            if Self.reservedEventNames.contains(name) {
                throw failure(.invalidPayload, "the event name '\(name)' is reserved", namespace: namespace, type: type)
            }
        case .ack, .binaryAck:
            guard case .array = data else {
                throw failure(.invalidPayload, "an ACK payload must be an array", namespace: namespace, type: type)
            }
        }
        return (SocketIOPacket(type: type, namespace: namespace, ackID: ackID, data: data), attachmentCount)
    }

    // MARK: Placeholders

    private static func reconstruct(
        _ packet: SocketIOPacket,
        attachments: [ByteBuffer],
        excerpt: ByteBuffer?
    ) throws(SocketIOProtocolError) -> SocketIOPacket {
        guard let data = packet.data else { return packet }
        var packet = packet
        do throws(SocketIOProtocolError) {
            packet.data = try data.reconstructingBinary(attachments)
        } catch {
            var error = error
            error.namespace = packet.namespace
            error.packetType = packet.type
            if let excerpt { error.excerpt = Self.excerpt(excerpt) }
            throw error
        }
        return packet
    }
}
