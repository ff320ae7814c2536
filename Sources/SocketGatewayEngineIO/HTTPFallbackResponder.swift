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

/// The routing a read-only endpoint of its own (`/healthz`, `/metrics`) does in front of the next responder.
package enum HTTPReadOnlyRoute {
    /// What a request for something other than a `GET`/`HEAD` of `path` gets: `next`'s answer for another path (404
    /// without one), 405 for another method on `path`; nil when the caller answers it.
    /// - Parameters:
    ///   - path: The endpoint's path; the request's query is ignored.
    ///   - head: The request.
    ///   - body: The request body, handed to `next`.
    ///   - next: The responder for other paths.
    package static func otherwise(
        path: String,
        head: HTTPRequestHead,
        body: ByteBuffer,
        next: (any HTTPFallbackResponder)?
    ) async -> HTTPFallbackResponse? {
        let requested =
            head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard requested == path else {
            if let next { return await next.respond(to: head, body: body) }
            return HTTPFallbackResponse(
                status: .notFound,
                headers: ["Content-Type": "text/plain; charset=utf-8"],
                body: ByteBuffer(string: "Not Found\n")
            )
        }
        guard head.method == .GET || head.method == .HEAD else {
            return HTTPFallbackResponse(
                status: .methodNotAllowed,
                headers: ["Allow": "GET, HEAD", "Content-Type": "text/plain; charset=utf-8"],
                body: ByteBuffer(string: "Method Not Allowed\n")
            )
        }
        return nil
    }
}
