import Foundation
package import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where a JSON Web Key Set is read from, checked when the authenticator is created.
package enum JWKSLocation: Sendable, Hashable {
    /// A file, read again at every refresh (replace it to rotate keys).
    case file(String)
    /// An `https://` URL (or `http://` on a loopback address), fetched with a GET.
    case url(JWKSURL)

    /// The location as configured, for log lines.
    package var description: String {
        switch self {
        case .file(let path): "file \(path)"
        case .url(let url): url.text
        }
    }
}

/// A parsed JWKS URL.
package struct JWKSURL: Sendable, Hashable {
    /// The URL as configured.
    package var text: String
    /// Whether the fetch speaks TLS.
    package var tls: Bool
    /// The host name or address.
    package var host: String
    /// The TCP port.
    package var port: Int
    /// The path and query sent in the request line.
    package var target: String

    /// Parses `text`; plain `http://` is accepted only for a loopback host, since keys fetched in clear can be
    /// replaced by anyone on the path.
    /// - Throws: A message saying what is wrong.
    package init(parsing text: String) throws(JWKSURLError) {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty
        else {
            throw JWKSURLError(message: "is not a URL: '\(text)'")
        }
        let bareHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        switch scheme {
        case "https":
            self.tls = true
        case "http":
            guard ["127.0.0.1", "localhost", "::1"].contains(bareHost.lowercased()) else {
                throw JWKSURLError(
                    message: "must be https:// (plain http:// only on a loopback address), got '\(text)'"
                )
            }
            self.tls = false
        default:
            throw JWKSURLError(message: "must be an https:// URL or a file path, got '\(text)'")
        }
        self.text = text
        self.host = bareHost
        self.port = url.port ?? (self.tls ? 443 : 80)
        let path = url.path.isEmpty ? "/" : url.path
        self.target = url.query.map { "\(path)?\($0)" } ?? path
    }
}

/// Why a JWKS URL cannot be used.
package struct JWKSURLError: Error, Sendable {
    /// What is wrong.
    package var message: String
}

/// Why a JWKS fetch failed (the last good set is kept).
package struct JWKSFetchError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    package var message: String

    /// The text shown when this value is printed or logged.
    package var description: String { self.message }
}

/// Reads a JSON Web Key Set from a file or over HTTP(S): one GET on a new connection, bounded in size and time.
///
/// This is a deliberately small client on the SwiftNIO, NIOHTTP1 and swift-nio-ssl the server already links, not
/// async-http-client: a key set is fetched at most once per minimum interval, so pooling, redirects, proxies and
/// HTTP/2 buy nothing, and the dependency would add minutes to every build. Certificates are verified against the
/// system's trust roots with swift-nio-ssl's default client configuration.
package enum JWKSFetcher {
    /// The largest key set read (1 MiB); a larger response fails the fetch.
    package static let maxBytes = 1 << 20

    /// Reads the set's bytes from `location` within `timeout`.
    package static func fetch(_ location: JWKSLocation, timeout: TimeAmount) async throws(JWKSFetchError) -> [UInt8] {
        switch location {
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw JWKSFetchError(message: "cannot read \(path)")
            }
            guard data.count <= Self.maxBytes else {
                throw JWKSFetchError(message: "\(path) is \(data.count) bytes, more than \(Self.maxBytes)")
            }
            return Array(data)
        case .url(let url):
            do {
                return try await Self.get(url, timeout: timeout)
            } catch let error as JWKSFetchError {
                throw error
            } catch {
                throw JWKSFetchError(message: "GET \(url.text) failed: \(error)")
            }
        }
    }

    /// One GET whose connect, TLS handshake, head and body together take at most `timeout`: a server that accepts
    /// and never answers, or trickles the set, fails the fetch at the one deadline (not a connect timeout plus a
    /// response timeout).
    private static func get(_ url: JWKSURL, timeout: TimeAmount) async throws -> [UInt8] {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let sslContext = url.tls ? try NIOSSLContext(configuration: .makeClientConfiguration()) : nil
        let response = eventLoop.makePromise(of: [UInt8].self)
        let serverName = url.host.isIPAddress ? nil : url.host
        let deadline = NIODeadline.now() + timeout
        let connecting = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: serverName)
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        JWKSResponseHandler(response: response, maxBytes: Self.maxBytes, url: url.text)
                    )
                }
            }
            .connect(host: url.host, port: url.port)
        let channel: any Channel
        do {
            channel = try await connecting.get()
        } catch {
            response.fail(error)
            throw error
        }
        let timer = eventLoop.scheduleTask(deadline: deadline) {
            response.fail(JWKSFetchError(message: "GET \(url.text): no complete response within \(timeout)"))
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: url.port == (url.tls ? 443 : 80) ? url.host : "\(url.host):\(url.port)")
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "Connection", value: "close")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.target, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        return try await response.futureResult.get()
    }
}

/// Collects one HTTP response: a 200 status and a body up to `maxBytes`.
private final class JWKSResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let response: EventLoopPromise<[UInt8]>
    private let maxBytes: Int
    private let url: String
    private var body: [UInt8] = []
    private var done = false

    init(response: EventLoopPromise<[UInt8]>, maxBytes: Int, url: String) {
        self.response = response
        self.maxBytes = maxBytes
        self.url = url
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.done else { return }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if head.status != .ok {
                self.finish(context, .failure(JWKSFetchError(message: "GET \(self.url) answered \(head.status)")))
            }
        case .body(let buffer):
            guard self.body.count + buffer.readableBytes <= self.maxBytes else {
                self.finish(
                    context,
                    .failure(JWKSFetchError(message: "GET \(self.url): more than \(self.maxBytes) bytes"))
                )
                return
            }
            self.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            self.finish(context, .success(self.body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.finish(context, .failure(error))
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish(
            context,
            .failure(JWKSFetchError(message: "GET \(self.url): connection closed before the response ended"))
        )
        context.fireChannelInactive()
    }

    private func finish(_ context: ChannelHandlerContext, _ result: Result<[UInt8], any Error>) {
        guard !self.done else { return }
        self.done = true
        self.response.completeWith(result)
        context.close(promise: nil)
    }
}

extension String {
    /// Whether the text is an IPv4 or IPv6 address (no TLS server name is sent for one).
    fileprivate var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: self, port: 0)) != nil
    }
}
