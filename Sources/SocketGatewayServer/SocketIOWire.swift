import NIOCore
import SocketGatewayCore
import SocketGatewayEngineIO

/// Socket.IO packets to and from Engine.IO messages: the one place that knows the packet codec.
enum SocketIOWire {
    /// An EVENT (BINARY_EVENT when `arguments` hold binary), encoded once.
    static func event(
        namespace: String,
        event: String,
        arguments: [JSONValue],
        ackID: UInt64?
    ) -> EngineIOOutboundMessage {
        self.message(SocketIOPacket.event(event, arguments, namespace: namespace, ackID: ackID))
    }

    /// The EVENT of another host's emit, its arguments copied as published (see
    /// ``PubSubReceivedEmit/writeEventPacket(into:)``); decoded and encoded where they cannot be copied.
    static func event(
        _ emit: PubSubReceivedEmit,
        decodedArguments: [JSONValue]?
    ) throws(PubSubMessageError)
        -> EngineIOOutboundMessage
    {
        guard emit.copiesArguments else {
            let arguments: [JSONValue]
            if let decodedArguments {
                arguments = decodedArguments
            } else {
                arguments = try emit.decodedArguments()
            }
            return self.event(namespace: emit.namespace, event: emit.event, arguments: arguments, ackID: nil)
        }
        return EngineIOOutboundMessage(textPayloadCapacity: emit.eventPacketCapacity) { text in
            emit.writeEventPacket(into: &text)
        }
    }

    /// An ACK (BINARY_ACK when `arguments` hold binary).
    static func ack(namespace: String, id: UInt64, arguments: [JSONValue]) -> EngineIOOutboundMessage {
        self.message(SocketIOPacket.ack(ackID: id, arguments, namespace: namespace))
    }

    /// The server's CONNECT reply `{"sid": sid}`, with `"pid"` when connection state recovery is on.
    static func connect(namespace: String, sid: String, pid: String? = nil) -> EngineIOOutboundMessage {
        var payload: [(key: String, value: JSONValue)] = [(key: "sid", value: .string(sid))]
        if let pid { payload.append((key: "pid", value: .string(pid))) }
        return self.message(SocketIOPacket.connect(namespace: namespace, payload: .object(payload)))
    }

    /// CONNECT_ERROR `{"message": message}`, with `"data": data` when given.
    static func connectError(namespace: String, message: String, data: JSONValue? = nil) -> EngineIOOutboundMessage {
        self.message(SocketIOPacket.connectError(namespace: namespace, message: message, data: data))
    }

    /// DISCONNECT (the server leaves the namespace).
    static func disconnect(namespace: String) -> EngineIOOutboundMessage {
        self.message(SocketIOPacket.disconnect(namespace: namespace))
    }

    private static func message(_ packet: SocketIOPacket) -> EngineIOOutboundMessage {
        let (text, attachments) = packet.encoded()
        return EngineIOOutboundMessage(textPayload: text, attachments: attachments)
    }

    /// `error`'s description with every part a client wrote escaped for a log line: the message (which may quote
    /// an event name) and the namespace; the input excerpt was escaped by the decoder (`LogSafe.excerpt`).
    static func logSafeDescription(_ error: SocketIOProtocolError) -> String {
        var text = "Socket.IO protocol error (\(error.code)): \(LogSafe.text(error.message))"
        if let packetType = error.packetType { text += "; packet type \(packetType)" }
        if let namespace = error.namespace { text += "; namespace \(LogSafe.text(namespace))" }
        if !error.excerpt.isEmpty { text += "; input \"\(error.excerpt)\"" }
        if let underlying = error.underlying { text += "; \(LogSafe.text(underlying.description))" }
        return text
    }

    /// Turns the Engine.IO messages of one session into the state machine's inputs.
    struct Decoder {
        private var packets = SocketIOPacketDecoder()

        /// Feeds one message; returns the completed packet, or nil while a binary packet waits for attachments.
        mutating func feed(
            _ message: EngineIOMessage
        ) throws(SocketIOSessionError) -> SocketIOSessionStateMachine.Inbound? {
            let packet: SocketIOPacket?
            do {
                switch message {
                case .text(let text): packet = try self.packets.decode(text: text)
                case .binary(let bytes): packet = try self.packets.decode(binary: bytes)
                }
            } catch {
                throw SocketIOSessionError(
                    code: .protocolViolation,
                    detail: SocketIOWire.logSafeDescription(error),
                    underlying: error
                )
            }
            guard let packet else { return nil }
            switch packet.type {
            case .connect:
                return .connect(namespace: packet.namespace, auth: packet.data)
            case .disconnect:
                return .disconnect(namespace: packet.namespace)
            case .event, .binaryEvent:
                guard case .array(let payload)? = packet.data else {
                    throw SocketIOSessionError(code: .protocolViolation, detail: "an EVENT payload must be an array")
                }
                return .event(namespace: packet.namespace, arguments: payload, ackID: packet.ackID)
            case .ack, .binaryAck:
                guard let id = packet.ackID else {
                    throw SocketIOSessionError(
                        code: .protocolViolation,
                        detail: "an ACK packet must carry an id (namespace \(LogSafe.text(packet.namespace)))"
                    )
                }
                return .ack(namespace: packet.namespace, id: id, arguments: packet.arguments)
            case .connectError:
                throw SocketIOSessionError(
                    code: .protocolViolation,
                    detail: "a client must not send CONNECT_ERROR (namespace \(LogSafe.text(packet.namespace)))"
                )
            }
        }
    }
}
