package import NIOCore

extension JSONValue {
    /// Whether a `.binary` appears anywhere in this value (socket.io-parser's `hasBinary`).
    public var containsBinary: Bool {
        switch self {
        case .binary:
            return true
        case .array(let elements):
            return elements.contains { $0.containsBinary }
        case .object(let pairs):
            return pairs.contains { $0.value.containsBinary }
        default:
            return false
        }
    }

    /// This value with every `.binary` replaced by `{"_placeholder":true,"num":N}` (N counting depth-first), and
    /// the bytes in that order — what Socket.IO and python-socketio's `Packet.deconstruct_binary` do.
    /// - Returns: The value without binary, and the attachments.
    package func deconstructingBinary() -> (value: JSONValue, attachments: [ByteBuffer]) {
        var attachments: [ByteBuffer] = []
        let value = Self.deconstruct(self, into: &attachments)
        return (value, attachments)
    }

    private static func deconstruct(_ value: JSONValue, into attachments: inout [ByteBuffer]) -> JSONValue {
        switch value {
        case .binary(let bytes):
            attachments.append(bytes)
            return .object([
                (key: "_placeholder", value: .bool(true)), (key: "num", value: .int(Int64(attachments.count - 1))),
            ])
        case .array(var elements):
            for index in elements.indices {
                elements[index] = Self.deconstruct(elements[index], into: &attachments)
            }
            return .array(elements)
        case .object(var pairs):
            for index in pairs.indices {
                pairs[index].value = Self.deconstruct(pairs[index].value, into: &attachments)
            }
            return .object(pairs)
        default:
            return value
        }
    }

    /// This value with every `{"_placeholder":true,"num":N}` replaced by `.binary(attachments[N])`.
    /// - Parameter attachments: The attachments, in order.
    /// - Returns: The value with binary restored.
    /// - Throws: `SocketIOProtocolError` with code `invalidPlaceholder` when a `num` is not an integer in range or
    ///   is used twice.
    package func reconstructingBinary(_ attachments: [ByteBuffer]) throws(SocketIOProtocolError) -> JSONValue {
        var used = [Bool](repeating: false, count: attachments.count)
        return try Self.reconstruct(self, attachments: attachments, used: &used)
    }

    static func reconstruct(
        _ value: JSONValue,
        attachments: [ByteBuffer],
        used: inout [Bool]
    ) throws(SocketIOProtocolError) -> JSONValue {
        switch value {
        case .array(var elements):
            for index in elements.indices {
                elements[index] = try Self.reconstruct(elements[index], attachments: attachments, used: &used)
            }
            return .array(elements)
        case .object(var pairs):
            if value["_placeholder"] == .bool(true) {
                guard let number = value["num"]?.intValue, number >= 0, number < attachments.count else {
                    throw SocketIOProtocolError(
                        code: .invalidPlaceholder,
                        message:
                            "a placeholder's num must be an integer below the \(attachments.count) attachment(s) announced, found \(value["num"]?.jsonString ?? "none")"
                    )
                }
                let slot = Int(number)
                if used[slot] {
                    throw SocketIOProtocolError(
                        code: .invalidPlaceholder,
                        message: "attachment \(slot) is referenced by two placeholders"
                    )
                }
                used[slot] = true
                return .binary(attachments[slot])
            }
            for index in pairs.indices {
                pairs[index].value = try Self.reconstruct(pairs[index].value, attachments: attachments, used: &used)
            }
            return .object(pairs)
        default:
            return value
        }
    }
}
