import SocketGatewayEngineIO

/// WebSocket per-message compression (permessage-deflate, RFC 7692), socket.io's `perMessageDeflate`.
///
/// Set ``SocketServerConfiguration/webSocketCompression`` to turn it on (it is off by default, as in socket.io 4).
/// Clients that offer the extension (browsers, python-socketio's websocket stacks) then get messages of at least
/// ``threshold`` bytes compressed; smaller ones, and ones that would not shrink, are sent as they are. The server
/// compresses each message on its own (`server_no_context_takeover`), so a broadcast is compressed once, not once
/// per client, and asks clients to do the same (`client_no_context_takeover`), so an idle connection keeps no
/// compression memory. A compressed message from a client is inflated up to ``SocketServerConfiguration/maxPayload``
/// bytes; past that its connection is closed (1009).
public struct SocketWebSocketCompression: Sendable, Hashable {
    /// The smallest message payload, in bytes, that is compressed (socket.io's `threshold`; default 1024).
    public var threshold: Int

    /// Creates the setting.
    /// - Parameter threshold: The smallest payload, in bytes, that is compressed (default 1024, at least 0).
    public init(threshold: Int = 1024) {
        self.threshold = threshold
    }

    var engineIO: WebSocketCompressionConfiguration {
        WebSocketCompressionConfiguration(threshold: self.threshold)
    }
}
