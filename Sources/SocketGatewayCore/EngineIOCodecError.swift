/// An Engine.IO packet or payload that could not be decoded.
///
/// The `code` says what was wrong; `context` says where (which record, which byte), so a log line is enough to
/// find the offending input. The connection that sent it should be closed; nothing else is affected.
package struct EngineIOCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong. New codes may be added without breaking API.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case emptyPacket
            case unknownPacketType
            case invalidBase64
            case payloadTooLarge
            case unexpectedPayload
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A packet (a WebSocket frame or a polling record) had no bytes at all.
        package static let emptyPacket = Code(.emptyPacket)
        /// The first byte is not one of the packet types `0`…`6` (nor `b` for a polling binary record).
        package static let unknownPacketType = Code(.unknownPacketType)
        /// A polling binary record (`b…`) is not valid base64.
        package static let invalidBase64 = Code(.invalidBase64)
        /// The payload exceeds the configured `maxPayload`.
        package static let payloadTooLarge = Code(.payloadTooLarge)
        /// A packet type that carries no data was followed by data (e.g. `1x`).
        package static let unexpectedPayload = Code(.unexpectedPayload)

        package var description: String {
            switch self.base {
            case .emptyPacket: "empty packet"
            case .unknownPacketType: "unknown packet type"
            case .invalidBase64: "invalid base64"
            case .payloadTooLarge: "payload too large"
            case .unexpectedPayload: "unexpected payload"
            }
        }
    }

    /// What went wrong.
    package var code: Code
    /// Where it went wrong, in words (e.g. "record 2 of a polling payload, first byte 0x61").
    package var context: String

    /// Creates an error.
    package init(code: Code, context: String) {
        self.code = code
        self.context = context
    }

    package var description: String {
        "Engine.IO decoding failed: \(self.code) (\(self.context)); the peer sent a malformed packet, close its connection"
    }
}
