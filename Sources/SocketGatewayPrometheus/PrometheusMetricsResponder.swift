public import NIOCore
public import NIOHTTP1
public import Prometheus
import SocketGatewayEngineIO
public import SocketGatewayServer

/// Answers `GET <path>` (default `/metrics`) with everything `registry` holds, in the Prometheus text format; hands
/// every other request to `next` (nil: 404).
///
/// Pass it as a `SocketServer`'s `httpFallback` to serve metrics on the Socket.IO listener, after bootstrapping
/// swift-metrics with the same registry:
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
/// let server = SocketServer(
///     configuration: configuration,
///     logger: logger,
///     httpFallback: PrometheusMetricsResponder(registry: registry)
/// )
/// ```
public struct PrometheusMetricsResponder: HTTPFallbackResponder {
    /// The content type of the Prometheus text exposition format, version 0.0.4.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The path answered, e.g. `/metrics`.
    public let path: String
    private let registry: PrometheusCollectorRegistry
    private let next: (any HTTPFallbackResponder)?

    /// Creates a responder.
    /// - Parameters:
    ///   - registry: The registry whose metrics are served (the one the `PrometheusMetricsFactory` writes to).
    ///   - path: The path answered; a query string is ignored.
    ///   - next: Answers every other request; nil answers 404.
    public init(
        registry: PrometheusCollectorRegistry,
        path: String = "/metrics",
        next: (any HTTPFallbackResponder)? = nil
    ) {
        self.registry = registry
        self.path = path
        self.next = next
    }

    /// Answers the metrics path, or hands the request to `next`.
    public func respond(to head: HTTPRequestHead, body: ByteBuffer) async -> HTTPFallbackResponse {
        if let answer = await HTTPReadOnlyRoute.otherwise(path: self.path, head: head, body: body, next: self.next) {
            return answer
        }
        return HTTPFallbackResponse(
            status: .ok,
            headers: ["Content-Type": Self.contentType, "Cache-Control": "no-store"],
            body: ByteBuffer(bytes: self.registry.emitToBuffer())
        )
    }
}
