public import NIOCore

/// The Socket.IO v5 packet types (the first character of a Socket.IO packet).
package enum SocketIOPacketType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Connect to a namespace (client) / connection accepted (server, payload `{"sid":…}`).
    case connect = 0
    /// Leave a namespace.
    case disconnect = 1
    /// An event: payload `[name, args…]`.
    case event = 2
    /// The answer to an event sent with an ack id: payload `[args…]`.
    case ack = 3
    /// Connection to a namespace refused: payload `{"message":…}` (or a string from old servers).
    case connectError = 4
    /// An event with binary attachments.
    case binaryEvent = 5
    /// An ack with binary attachments.
    case binaryAck = 6

    /// The protocol's name for the type, e.g. `BINARY_EVENT`.
    package var description: String {
        switch self {
        case .connect: return "CONNECT"
        case .disconnect: return "DISCONNECT"
        case .event: return "EVENT"
        case .ack: return "ACK"
        case .connectError: return "CONNECT_ERROR"
        case .binaryEvent: return "BINARY_EVENT"
        case .binaryAck: return "BINARY_ACK"
        }
    }
}

/// One Socket.IO v5 packet.
///
/// Binary attachments appear inside `data` as `.binary(ByteBuffer)`, where the sender put them: the encoder
/// replaces them by `{"_placeholder":true,"num":N}` and returns the bytes separately; the decoder puts them back.
package struct SocketIOPacket: Sendable, Hashable {
    /// The packet type. The encoder picks `binaryEvent`/`binaryAck` over `event`/`ack` by itself when `data`
    /// holds binary, and `event`/`ack` when it holds none.
    package var type: SocketIOPacketType
    /// The namespace, `/` by default.
    package var namespace: String
    /// The acknowledgement id of an event that wants an answer, or of the ack answering it.
    package var ackID: UInt64?
    /// The payload; `nil` when the packet has none.
    package var data: JSONValue?

    /// Creates a packet.
    /// - Parameters:
    ///   - type: The packet type.
    ///   - namespace: The namespace, `/` by default.
    ///   - ackID: The acknowledgement id, if any.
    ///   - data: The payload, if any.
    package init(type: SocketIOPacketType, namespace: String = "/", ackID: UInt64? = nil, data: JSONValue? = nil) {
        self.type = type
        self.namespace = namespace
        self.ackID = ackID
        self.data = data
    }

    /// A CONNECT packet: from a client, `payload` is its `auth`; from the server, `{"sid":…}`.
    /// - Parameters:
    ///   - namespace: The namespace, `/` by default.
    ///   - payload: An object, or `nil`.
    package static func connect(namespace: String = "/", payload: JSONValue? = nil) -> SocketIOPacket {
        SocketIOPacket(type: .connect, namespace: namespace, data: payload)
    }

    /// An EVENT packet with payload `[name, args…]` (BINARY_EVENT on the wire when `args` hold binary).
    /// - Parameters:
    ///   - name: The event name.
    ///   - args: The event's arguments.
    ///   - namespace: The namespace, `/` by default.
    ///   - ackID: Set when the sender wants an acknowledgement.
    package static func event(
        _ name: String,
        _ args: [JSONValue],
        namespace: String = "/",
        ackID: UInt64? = nil
    ) -> SocketIOPacket {
        var payload: [JSONValue] = []
        payload.reserveCapacity(args.count + 1)
        payload.append(.string(name))
        payload.append(contentsOf: args)
        return SocketIOPacket(type: .event, namespace: namespace, ackID: ackID, data: .array(payload))
    }

    /// An ACK packet answering the event with id `ackID` (BINARY_ACK on the wire when `args` hold binary).
    /// - Parameters:
    ///   - ackID: The id of the event being answered.
    ///   - args: The answer's arguments.
    ///   - namespace: The namespace, `/` by default.
    package static func ack(ackID: UInt64, _ args: [JSONValue], namespace: String = "/") -> SocketIOPacket {
        SocketIOPacket(type: .ack, namespace: namespace, ackID: ackID, data: .array(args))
    }

    /// A CONNECT_ERROR packet with payload `{"message": message}`, or `{"message": message, "data": data}`.
    /// - Parameters:
    ///   - namespace: The namespace that refused the connection.
    ///   - message: Why, e.g. `Invalid namespace` or `Unauthorized`.
    ///   - data: What the client's `connect_error` handler gets besides the message (socket.io's `err.data`).
    package static func connectError(namespace: String = "/", message: String, data: JSONValue? = nil) -> SocketIOPacket
    {
        var payload: [(key: String, value: JSONValue)] = [(key: "message", value: .string(message))]
        if let data { payload.append((key: "data", value: data)) }
        return SocketIOPacket(type: .connectError, namespace: namespace, data: .object(payload))
    }

    /// A DISCONNECT packet (no payload).
    /// - Parameter namespace: The namespace to leave, `/` by default.
    package static func disconnect(namespace: String = "/") -> SocketIOPacket {
        SocketIOPacket(type: .disconnect, namespace: namespace)
    }

    /// The event name of an EVENT/BINARY_EVENT packet (the first payload element), else `nil`.
    package var eventName: String? {
        guard self.type == .event || self.type == .binaryEvent, case .array(let payload) = self.data else { return nil }
        return payload.first?.stringValue
    }

    /// The arguments: for an event the payload after the name, for an ack the whole payload, otherwise empty.
    package var arguments: [JSONValue] {
        guard case .array(let payload) = self.data else { return [] }
        switch self.type {
        case .event, .binaryEvent: return Array(payload.dropFirst())
        case .ack, .binaryAck: return payload
        default: return []
        }
    }
}

// MARK: - Encoding

extension SocketIOPacket {
    /// Appends the text form of this packet, `<type>[<attachments>-][<nsp>,][<id>][<json>]`, and returns the
    /// binary attachments, in order, to send after it as binary messages.
    ///
    /// The `/` namespace is omitted. For events and acks, every `.binary` in `data` is written as
    /// `{"_placeholder":true,"num":N}` (N counting depth-first) and the type becomes BINARY_EVENT/BINARY_ACK; for
    /// other packet types, binary has no wire form and is written as `null`. The text is written in one pass
    /// after a measuring walk that reserves the capacity, so encoding once for a broadcast is cheap.
    /// - Parameter buffer: The buffer to append the text form to (without the Engine.IO `4`).
    /// - Returns: The binary attachments, empty for a text-only packet.
    @discardableResult
    package func encode(into buffer: inout ByteBuffer) -> [ByteBuffer] {
        var binaryCount = 0
        var estimatedSize = 24 + self.namespace.utf8.count
        if let data = self.data {
            JSONWriter.measure(data, binaryCount: &binaryCount, estimatedSize: &estimatedSize)
        }
        buffer.reserveCapacity(minimumWritableBytes: estimatedSize)
        var type = self.type
        let carriesAttachments: Bool
        switch type {
        case .event, .binaryEvent:
            type = binaryCount > 0 ? .binaryEvent : .event
            carriesAttachments = binaryCount > 0
        case .ack, .binaryAck:
            type = binaryCount > 0 ? .binaryAck : .ack
            carriesAttachments = binaryCount > 0
        default:
            carriesAttachments = false
        }
        buffer.writeInteger(UInt8(ascii: "0") &+ type.rawValue)
        if carriesAttachments {
            JSONWriter.writeInteger(Int64(binaryCount), to: &buffer)
            buffer.writeInteger(UInt8(ascii: "-"))
        }
        if self.namespace != "/" && !self.namespace.isEmpty {
            buffer.writeString(self.namespace)
            buffer.writeInteger(UInt8(ascii: ","))
        }
        if let ackID = self.ackID {
            if ackID <= UInt64(Int64.max) {
                JSONWriter.writeInteger(Int64(ackID), to: &buffer)
            } else {
                buffer.writeString(String(ackID))
            }
        }
        guard let data = self.data else { return [] }
        var writer = JSONWriter(style: .javaScript, collectingAttachments: carriesAttachments)
        writer.write(data, to: &buffer)
        return writer.attachments ?? []
    }

    /// The text form and the binary attachments of this packet (see ``encode(into:)``).
    /// - Returns: The text (without the Engine.IO `4`) and the attachments in order.
    package func encoded() -> (text: ByteBuffer, attachments: [ByteBuffer]) {
        var buffer = ByteBuffer()
        let attachments = self.encode(into: &buffer)
        return (buffer, attachments)
    }
}

/// What the micro-benchmarks in tools/benchmarks call: they are another package, so the `package` codecs are
/// out of their reach. Each function does exactly the work an emit or a receive does. SPI, not API.
@_spi(Benchmarks)
public enum CoreBenchmarkSupport {
    /// Encodes a Socket.IO EVENT packet once, as an emit does.
    /// - Returns: The text payload and the binary attachments.
    public static func encodeEvent(_ event: String, _ arguments: [JSONValue]) -> (ByteBuffer, [ByteBuffer]) {
        SocketIOPacket.event(event, arguments).encoded()
    }

    /// A Socket.IO packet decoder, as a connection holds one.
    public struct EventDecoder {
        private var decoder = SocketIOPacketDecoder()

        /// Creates a decoder.
        public init() {}

        /// Decodes one text packet; returns whether it decoded to a complete packet.
        /// - Throws: The decoder's protocol error.
        public mutating func decode(text: ByteBuffer) throws -> Bool {
            try self.decoder.decode(text: text) != nil
        }
    }

    /// Encodes a python-socketio `emit` message as the worker and the server publish it.
    public static func encodePubSubEmit(
        _ event: String,
        arguments: [JSONValue],
        to target: EmitTarget,
        hostID: String
    ) -> ByteBuffer {
        PubSubMessage.emit(event, arguments: arguments, to: target, options: EmitOptions(), hostID: hostID).encoded()
    }

    /// Reads a pub/sub message as the subscriber does: its target and small fields, the arguments checked but left
    /// as published. Returns its first room (or its method when it is not an emit).
    /// - Throws: The reader's error.
    public static func readPubSubTarget(_ bytes: ByteBuffer) throws -> String {
        switch try PubSubMessage.read(bytes) {
        case .emit(let emit): return emit.room.names.first ?? emit.namespace
        case .message(let message): return message.method
        }
    }

    /// Decodes a pub/sub message whole, as the subscriber did before it read emits lazily; returns its method name.
    /// - Throws: The decoder's error.
    public static func decodePubSub(_ bytes: ByteBuffer) throws -> String {
        try PubSubMessage.decode(bytes).method
    }
}
