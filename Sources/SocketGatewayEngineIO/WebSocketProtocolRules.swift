import NIOCore
import NIOHTTP1
import NIOWebSocket
import SocketGatewayCore

/// A WebSocket close frame the server sends: a status code and a short reason.
struct WebSocketClose: Equatable, Sendable {
    /// The status code (RFC 6455 §7.4).
    var code: UInt16
    /// A short reason text (UTF-8, cut to fit the 125-byte control frame).
    var reason: String

    init(code: UInt16, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    static let normal = Self(code: 1000)

    /// The frame as the server writes it (unmasked, FIN set).
    var frameBytes: ByteBuffer {
        // A control frame carries at most 125 bytes: the code and up to 123 bytes of reason, cut on a scalar.
        var reasonBytes: [UInt8] = []
        for scalar in self.reason.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            guard reasonBytes.count + encoded.count <= 123 else { break }
            reasonBytes.append(contentsOf: encoded)
        }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(4 + reasonBytes.count)
        buffer.writeInteger(UInt8(0x88))
        buffer.writeInteger(UInt8(2 + reasonBytes.count))
        buffer.writeInteger(self.code)
        buffer.writeBytes(reasonBytes)
        return buffer
    }
}

/// What a server must do about a frame that breaks RFC 6455: fail the connection with this close.
struct WebSocketProtocolViolation: Error, Equatable, Sendable {
    /// The close frame that fails the connection (1002 protocol error, 1007 invalid payload data).
    var close: WebSocketClose
    /// What was wrong, for the log (no peer bytes in it; callers add a `LogSafe` excerpt).
    var detail: String
}

/// RFC 6455 rules for what a server receives, without I/O, for the checks NIO's decoder does not make.
///
/// NIO's `WebSocketFrameDecoder` already refuses frames over the size limit, fragmented control frames and control
/// frames over 125 bytes. These rules cover the rest: reserved bits and opcodes, masking, UTF-8 of text messages
/// and close frames, close status codes (and ``WebSocketMessageAssembler`` the fragment sequence).
enum WebSocketProtocolRules {
    /// Checks one frame as it came off the wire (before fragments are joined): no RSV bit, except RSV1 on the
    /// first frame of a text or binary message when permessage-deflate was agreed (RFC 7692 §6.1), masked (every
    /// client frame must be, §5.1), and a defined opcode (§5.2).
    /// - Parameter requireMask: false where a framework's WebSocket support has already unmasked the frame.
    static func check(
        _ frame: WebSocketFrame,
        requireMask: Bool = true,
        compressionAgreed: Bool = false
    ) -> WebSocketProtocolViolation? {
        let rsv1Allowed = compressionAgreed && (frame.opcode == .text || frame.opcode == .binary)
        if (frame.rsv1 && !rsv1Allowed) || frame.rsv2 || frame.rsv3 {
            return .init(
                close: .init(code: 1002, reason: "reserved bit set"),
                detail: "RSV bit set without an extension"
            )
        }
        if requireMask, frame.maskKey == nil {
            return .init(close: .init(code: 1002, reason: "unmasked frame"), detail: "client frame not masked")
        }
        switch frame.opcode {
        case .continuation, .text, .binary, .connectionClose, .ping, .pong:
            return nil
        default:
            return .init(
                close: .init(code: 1002, reason: "reserved opcode"),
                detail: "reserved opcode \(UInt8(webSocketOpcode: frame.opcode))"
            )
        }
    }

    /// Checks a complete text message (after its fragments were joined): it must be valid UTF-8 (§8.1).
    static func checkText(_ payload: ByteBuffer) -> WebSocketProtocolViolation? {
        Self.isValidUTF8(payload.readableBytesView)
            ? nil : .init(close: .init(code: 1007, reason: "invalid UTF-8"), detail: "text message is not valid UTF-8")
    }

    /// The answer to the peer's close frame (`payload` unmasked): the echo of a valid status code (§5.5.1: "the
    /// endpoint typically echos the status code it received"), 1000 for a close without a code, or the failure of
    /// the connection for a malformed one (1002 for a 1-byte payload or a code that may not be sent, 1007 for a
    /// reason that is not UTF-8).
    static func reply(toClosePayload payload: ByteBuffer) -> Result<WebSocketClose, WebSocketProtocolViolation> {
        var payload = payload
        guard payload.readableBytes > 0 else { return .success(.normal) }
        guard let code = payload.readInteger(as: UInt16.self) else {
            return .failure(
                .init(close: .init(code: 1002, reason: "invalid close frame"), detail: "1-byte close payload")
            )
        }
        guard Self.isValidReceivedCloseCode(code) else {
            return .failure(.init(close: .init(code: 1002, reason: "invalid close code"), detail: "close code \(code)"))
        }
        guard Self.isValidUTF8(payload.readableBytesView) else {
            return .failure(
                .init(close: .init(code: 1007, reason: "invalid UTF-8"), detail: "close reason is not valid UTF-8")
            )
        }
        return .success(.init(code: code))
    }

    /// Whether a peer may send this status code (§7.4.1, §7.4.2): the codes defined for the protocol (1000–1003,
    /// 1007–1011) and those IANA registered since (1012–1014), and the ranges for libraries and applications
    /// (3000–4999). 1005, 1006 and 1015 must never be sent; the rest of 0–2999 is unassigned.
    static func isValidReceivedCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    /// Checks the WebSocket headers of an upgrade request (RFC 6455 §4.2.1): exactly one `Sec-WebSocket-Key`, the
    /// base64 of 16 bytes (400 otherwise), and `Sec-WebSocket-Version: 13` (400 when missing, 426 for another).
    static func checkUpgrade(_ headers: HTTPHeaders) -> EngineIOHTTPError? {
        let versions = headers[canonicalForm: "sec-websocket-version"]
        guard versions.count == 1 else { return .badRequest }
        guard versions[0] == "13" else { return .unsupportedWebSocketVersion }
        let keys = headers["sec-websocket-key"]
        guard keys.count == 1, Self.isValidKey(keys[0]) else { return .badRequest }
        return nil
    }

    /// Whether `key` is the base64 of 16 bytes: 22 base64 characters and `==`.
    static func isValidKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard bytes.count == 24, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        return bytes[..<22].allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                true
            default:
                false
            }
        }
    }

    /// The close the server sends when it ends a session for `reason`.
    static func close(for reason: EngineIOCloseReason) -> WebSocketClose {
        switch reason {
        case .parseError: .init(code: 1002, reason: "parse error")
        case .transportError: .init(code: 1002, reason: "transport error")
        case .payloadTooLarge: .init(code: 1009, reason: "payload too large")
        case .slowClient: .init(code: 1008, reason: "slow client")
        case .pingTimeout: .init(code: 1008, reason: "ping timeout")
        case .forcedServerShutdown: .init(code: 1001, reason: "server shutting down")
        default: .normal
        }
    }

    /// Whether `bytes` are well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
    static func isValidUTF8(_ bytes: some Collection<UInt8>) -> Bool {
        // Most messages are ASCII JSON: skip the decoder for them.
        guard bytes.contains(where: { $0 >= 0x80 }) else { return true }
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}

/// Joins a client's fragments into messages and checks every frame on the way, as a value (the handler owns one).
///
/// It takes the place of `NIOWebSocketFrameAggregator`, which drops the reserved bits and masks of the fragments it
/// joins (so they could not be checked after it) and costs one more handler and context per connection. Same
/// limits and same failures: a continuation without a message or a new message inside one is a protocol error
/// (1002), a message past `maxMessageSize` is too large (1009).
struct WebSocketMessageAssembler {
    /// What a frame gives the handler.
    enum Output: Equatable {
        /// Nothing yet (a fragment was kept).
        case none
        /// A whole text or binary message, unmasked; `compressed` when its first frame had RSV1 (permessage-deflate:
        /// still to be inflated).
        case message(WebSocketOpcode, ByteBuffer, compressed: Bool)
        /// A control frame (close, ping, pong) as received; NIO's decoder has checked it is whole and short.
        case control(WebSocketFrame)
    }

    let maxMessageSize: Int
    let maxFragments: Int
    /// Whether every frame must be masked: false behind a framework's WebSocket support, which unmasks them.
    let requiresMask: Bool
    /// permessage-deflate was agreed: RSV1 may mark a message as compressed (its size is then checked as received
    /// here, and as inflated by the handler).
    let compressionAgreed: Bool
    /// The message being joined: its opcode, its bytes so far, how many fragments they came in, and whether the
    /// first had RSV1.
    private var partial: (opcode: WebSocketOpcode, bytes: ByteBuffer, fragments: Int, compressed: Bool)?

    init(maxMessageSize: Int, maxFragments: Int = 1 << 16, requiresMask: Bool = true, compressionAgreed: Bool = false) {
        self.maxMessageSize = maxMessageSize
        self.maxFragments = maxFragments
        self.requiresMask = requiresMask
        self.compressionAgreed = compressionAgreed
    }

    /// Takes one frame as it came off the wire.
    mutating func receive(_ frame: WebSocketFrame) -> Result<Output, WebSocketProtocolViolation> {
        if let violation = WebSocketProtocolRules.check(
            frame,
            requireMask: self.requiresMask,
            compressionAgreed: self.compressionAgreed
        ) {
            return .failure(violation)
        }
        switch frame.opcode {
        case .text, .binary:
            guard self.partial == nil else {
                self.partial = nil
                return .failure(Self.protocolError("a new message started before the previous one ended"))
            }
            let bytes = frame.unmaskedData
            guard bytes.readableBytes <= self.maxMessageSize else {
                return .failure(self.tooLarge(bytes.readableBytes))
            }
            if frame.fin { return .success(.message(frame.opcode, bytes, compressed: frame.rsv1)) }
            self.partial = (frame.opcode, bytes, 1, frame.rsv1)
            return .success(.none)
        case .continuation:
            guard var partial = self.partial else {
                return .failure(Self.protocolError("a continuation frame without a message"))
            }
            self.partial = nil  // no copy-on-write of the bytes while appending
            var bytes = frame.unmaskedData
            guard partial.bytes.readableBytes + bytes.readableBytes <= self.maxMessageSize else {
                return .failure(self.tooLarge(partial.bytes.readableBytes + bytes.readableBytes))
            }
            partial.fragments += 1
            guard frame.fin || partial.fragments < self.maxFragments else {
                return .failure(Self.protocolError("more than \(self.maxFragments) fragments"))
            }
            partial.bytes.writeBuffer(&bytes)
            if frame.fin { return .success(.message(partial.opcode, partial.bytes, compressed: partial.compressed)) }
            self.partial = partial
            return .success(.none)
        default:
            return .success(.control(frame))
        }
    }

    private static func protocolError(_ detail: String) -> WebSocketProtocolViolation {
        .init(close: .init(code: 1002, reason: "protocol error"), detail: detail)
    }

    private func tooLarge(_ size: Int) -> WebSocketProtocolViolation {
        .init(
            close: .init(code: 1009, reason: "message too large"),
            detail: "message of \(size) bytes, limit \(self.maxMessageSize)"
        )
    }
}
