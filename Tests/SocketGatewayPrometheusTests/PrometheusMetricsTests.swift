import CoreMetrics
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SocketGatewayPrometheus
import SocketGatewayServer
import Testing

/// The `/metrics` responder and listener: the exposition text a scraper reads, and what every other request gets.
@Suite struct PrometheusMetricsResponderTests {
    /// A registry with one counter, one labelled meter (how the server counts connections) and one timer, written
    /// through swift-metrics as the server writes them.
    private static func filledRegistry() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        Counter(label: "socketgateway_emits_total", factory: factory).increment(by: 3)
        let connections = Meter(
            label: "socketgateway_socket_connections",
            dimensions: [("namespace", "/")],
            factory: factory
        )
        connections.increment()
        connections.increment()
        connections.increment()
        connections.decrement()
        Timer(label: "socketgateway_ack_round_trip_seconds", factory: factory).recordMilliseconds(7)
        return registry
    }

    private static func request(_ method: HTTPMethod, _ uri: String) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri)
    }

    @Test func getAnswersTheRegistryInTheTextFormat() async {
        let responder = PrometheusMetricsResponder(registry: Self.filledRegistry())
        let response = await responder.respond(to: Self.request(.GET, "/metrics"), body: ByteBuffer())
        #expect(response.status == .ok)
        #expect(response.headers["Content-Type"] == ["text/plain; version=0.0.4; charset=utf-8"])
        let text = String(buffer: response.body)
        #expect(text.contains("# TYPE socketgateway_emits_total counter\nsocketgateway_emits_total 3\n"))
        #expect(
            text.contains(
                "# TYPE socketgateway_socket_connections gauge\nsocketgateway_socket_connections{namespace=\"/\"} 2.0\n"
            )
        )
        // A timer is a histogram in seconds: 7 ms lands in the 10 ms bucket and every one above it.
        #expect(text.contains("# TYPE socketgateway_ack_round_trip_seconds histogram\n"))
        #expect(text.contains("socketgateway_ack_round_trip_seconds_bucket{le=\"0.005\"} 0\n"))
        #expect(text.contains("socketgateway_ack_round_trip_seconds_bucket{le=\"0.01\"} 1\n"))
        #expect(text.contains("socketgateway_ack_round_trip_seconds_count 1\n"))
    }

    @Test func aQueryStringIsIgnoredAndHeadIsAnswered() async {
        let responder = PrometheusMetricsResponder(registry: Self.filledRegistry(), path: "/internal/metrics")
        let get = await responder.respond(to: Self.request(.GET, "/internal/metrics?x=1"), body: ByteBuffer())
        #expect(get.status == .ok)
        #expect(String(buffer: get.body).contains("socketgateway_emits_total 3"))
        let head = await responder.respond(to: Self.request(.HEAD, "/internal/metrics"), body: ByteBuffer())
        #expect(head.status == .ok)
        #expect(head.headers["Content-Type"] == [PrometheusMetricsResponder.contentType])
    }

    @Test func otherMethodsGet405() async {
        let responder = PrometheusMetricsResponder(registry: Self.filledRegistry())
        let response = await responder.respond(to: Self.request(.POST, "/metrics"), body: ByteBuffer())
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == ["GET, HEAD"])
    }

    /// Answers every request with 418, to tell it apart from the metrics responder's own 404.
    private struct Teapot: HTTPFallbackResponder {
        func respond(to head: HTTPRequestHead, body: ByteBuffer) async -> HTTPFallbackResponse {
            HTTPFallbackResponse(status: .imATeapot, body: ByteBuffer(string: head.uri))
        }
    }

    @Test func otherPathsGoToNextOr404() async {
        let alone = PrometheusMetricsResponder(registry: Self.filledRegistry())
        #expect(await alone.respond(to: Self.request(.GET, "/metricsx"), body: ByteBuffer()).status == .notFound)
        #expect(await alone.respond(to: Self.request(.GET, "/"), body: ByteBuffer()).status == .notFound)
        let chained = PrometheusMetricsResponder(registry: Self.filledRegistry(), next: Teapot())
        let passed = await chained.respond(to: Self.request(.GET, "/app"), body: ByteBuffer())
        #expect(passed.status == .imATeapot)
        #expect(String(buffer: passed.body) == "/app")
        #expect(await chained.respond(to: Self.request(.GET, "/metrics"), body: ByteBuffer()).status == .ok)
    }
}

/// `SOCKET_METRICS*` as `serve` reads them: each accepted form, and each refusal naming the variable and the value.
@Suite struct PrometheusMetricsConfigurationTests {
    private static let server = SocketServerConfiguration(host: "10.0.0.5", port: 3000)

    private static func read(
        _ environment: [String: String]
    ) throws(SocketServerConfigurationError)
        -> PrometheusMetricsConfiguration.Exposure
    {
        try PrometheusMetricsConfiguration(environment: environment, server: Self.server).exposure
    }

    private static func refusal(_ environment: [String: String]) -> SocketServerConfigurationError? {
        do {
            _ = try Self.read(environment)
            return nil
        } catch {
            return error
        }
    }

    @Test func nothingSetServesMetricsOnTheSocketListener() throws {
        #expect(try Self.read([:]) == .socketListener(path: "/metrics"))
        #expect(try Self.read(["SOCKET_METRICS": " on "]) == .socketListener(path: "/metrics"))
        #expect(
            try Self.read(["SOCKET_METRICS_PATH": "/internal/metrics"]) == .socketListener(path: "/internal/metrics")
        )
    }

    @Test func offTurnsThemOff() throws {
        for value in ["off", "OFF", "false", "0", "no"] {
            #expect(try Self.read(["SOCKET_METRICS": value]) == .off)
        }
    }

    @Test func aPortOfTheirOwnUsesTheServersHostUnlessGiven() throws {
        #expect(
            try Self.read(["SOCKET_METRICS_PORT": "9464"])
                == .ownListener(host: "10.0.0.5", port: 9464, path: "/metrics")
        )
        #expect(
            try Self.read(["SOCKET_METRICS_PORT": "0", "SOCKET_METRICS_HOST": "127.0.0.1", "SOCKET_METRICS_PATH": "/m"])
                == .ownListener(host: "127.0.0.1", port: 0, path: "/m")
        )
    }

    @Test func badValuesAreRefusedNamingTheVariable() {
        let cases: [([String: String], String, String)] = [
            (["SOCKET_METRICS": "maybe"], "SOCKET_METRICS", "must be on or off, got 'maybe'"),
            (["SOCKET_METRICS": "off", "SOCKET_METRICS_PORT": "9464"], "SOCKET_METRICS_PORT", "SOCKET_METRICS=off"),
            (["SOCKET_METRICS_PATH": "metrics"], "SOCKET_METRICS_PATH", "must start with '/', got 'metrics'"),
            (["SOCKET_METRICS_PATH": "/"], "SOCKET_METRICS_PATH", "must not be '/' alone"),
            (["SOCKET_METRICS_PATH": "/me trics"], "SOCKET_METRICS_PATH", "without spaces"),
            (["SOCKET_METRICS_PATH": "/m?x=1"], "SOCKET_METRICS_PATH", "'?'"),
            (["SOCKET_METRICS_PATH": "/healthz"], "SOCKET_METRICS_PATH", "is taken on the Socket.IO listener"),
            (["SOCKET_METRICS_PATH": "/socket.io"], "SOCKET_METRICS_PATH", "is taken on the Socket.IO listener"),
            (["SOCKET_METRICS_PATH": "/socket.io/metrics"], "SOCKET_METRICS_PATH", "is taken"),
            (["SOCKET_METRICS_PORT": "http"], "SOCKET_METRICS_PORT", "must be 0...65535 (0 picks a free port), got"),
            (["SOCKET_METRICS_PORT": "70000"], "SOCKET_METRICS_PORT", "got '70000'"),
            (["SOCKET_METRICS_PORT": "3000"], "SOCKET_METRICS_PORT", "the Socket.IO port too"),
            (["SOCKET_METRICS_HOST": "0.0.0.0"], "SOCKET_METRICS_HOST", "needs SOCKET_METRICS_PORT"),
        ]
        for (environment, variable, message) in cases {
            let error = Self.refusal(environment)
            #expect(error?.variable == variable, "\(environment)")
            #expect(error?.message.contains(message) == true, "\(environment): \(String(describing: error))")
        }
    }

    @Test func onItsOwnPortTheSocketPathsAreFree() throws {
        #expect(
            try Self.read(["SOCKET_METRICS_PORT": "9464", "SOCKET_METRICS_PATH": "/healthz"])
                == .ownListener(host: "10.0.0.5", port: 9464, path: "/healthz")
        )
    }
}

/// ``PrometheusMetricsServer`` on a real loopback socket.
@Suite struct PrometheusMetricsServerTests {
    /// One HTTP/1.1 request on a fresh connection (`Connection: close`); the whole response as text.
    private static func fetch(port: Int, path: String) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(
                ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            )
            var response = ""
            for try await chunk in inbound {
                response += String(buffer: chunk)
                guard response.utf8.count < 1 << 20 else { break }
            }
            return response
        }
    }

    @Test func servesTheRegistryAndNothingElse() async throws {
        let registry = PrometheusCollectorRegistry()
        Counter(label: "socketgateway_emits_total", factory: PrometheusMetricsFactory(registry: registry)).increment()
        let server = PrometheusMetricsServer(
            host: "127.0.0.1",
            port: 0,
            registry: registry,
            logger: Logger(label: "test.metrics", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        try await withThrowingTaskGroup { group in
            group.addTask { try await server.run() }
            let port = try #require(await server.waitUntilListening())
            let metrics = try await Self.fetch(port: port, path: "/metrics")
            #expect(metrics.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(metrics.contains("text/plain; version=0.0.4"))
            let exposition = "# TYPE socketgateway_emits_total counter\nsocketgateway_emits_total 1\n"
            #expect(metrics.hasSuffix("\r\n\r\n" + exposition))
            let other = try await Self.fetch(port: port, path: "/socket.io/?EIO=4&transport=polling")
            #expect(other.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
            group.cancelAll()
        }
        #expect(server.localPort == nil)
    }

    @Test func aPortInUseIsReportedWithTheAddress() async throws {
        let registry = PrometheusCollectorRegistry()
        let logger = Logger(label: "test.metrics", factory: { _ in SwiftLogNoOpLogHandler() })
        let first = PrometheusMetricsServer(host: "127.0.0.1", port: 0, registry: registry, logger: logger)
        try await withThrowingTaskGroup { group in
            group.addTask { try await first.run() }
            let port = try #require(await first.waitUntilListening())
            let second = PrometheusMetricsServer(host: "127.0.0.1", port: port, registry: registry, logger: logger)
            let error = await #expect(throws: PrometheusMetricsListenError.self) { try await second.run() }
            #expect(error?.port == port)
            #expect(error?.host == "127.0.0.1")
            #expect(await second.waitUntilListening() == nil)
            group.cancelAll()
        }
    }
}
