import SocketGatewayEngineIO

/// Compression of long-polling responses (engine.io's `httpCompression`).
///
/// Set ``SocketServerConfiguration/httpCompression`` to turn it on (off by default here; engine.io turns it on by
/// default). A polling GET whose payload has at least ``threshold`` bytes is then answered with
/// `Content-Encoding: gzip` (or `deflate`) when its `Accept-Encoding` accepts one (browsers, requests and aiohttp
/// send `gzip, deflate`) and compressing makes it smaller; other responses are sent as they are. Only GET payloads
/// are compressed (not handshake errors nor the `ok` of a POST), on our own listener and mounted on Hummingbird
/// alike. Each response is compressed on its own, in one pass, with pooled compressors: nothing is kept per
/// session.
public struct SocketHTTPCompression: Sendable, Hashable {
    /// The smallest payload, in bytes, that is compressed (engine.io's `threshold`; default 1024).
    public var threshold: Int

    /// Creates the setting.
    /// - Parameter threshold: The smallest payload, in bytes, that is compressed (default 1024, at least 0).
    public init(threshold: Int = 1024) {
        self.threshold = threshold
    }

    var engineIO: HTTPCompressionConfiguration {
        HTTPCompressionConfiguration(threshold: self.threshold)
    }
}
