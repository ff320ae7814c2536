public import NIOCore
public import NIOHTTP1

/// An HTTP response produced by an ``HTTPFallbackResponder``.
public struct HTTPFallbackResponse: Sendable {
    /// The status.
    public var status: HTTPResponseStatus
    /// Headers (Content-Length is set by the server).
    public var headers: HTTPHeaders
    /// The body.
    public var body: ByteBuffer

    /// Creates a response.
    public init(status: HTTPResponseStatus, headers: HTTPHeaders = HTTPHeaders(), body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Answers HTTP requests whose path is not a mounted Engine.IO endpoint (e.g. static files at `/`).
public protocol HTTPFallbackResponder: Sendable {
    /// Produces the response to one request.
    /// - Parameters:
    ///   - head: the request line and headers.
    ///   - body: the request body (at most 1 MiB; larger requests get 413 without calling this).
    func respond(to head: HTTPRequestHead, body: ByteBuffer) async -> HTTPFallbackResponse
}
