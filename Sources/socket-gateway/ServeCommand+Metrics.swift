import ArgumentParser
import Logging
import Metrics
import NIOCore
import Prometheus
import SocketGatewayPrometheus
import SocketGatewayServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ServeCommand {
    /// What `serve` runs for `/metrics` (see ``PrometheusMetricsConfiguration``): a responder on the Socket.IO
    /// listener, or a listener of its own.
    struct MetricsSetup {
        /// The `httpFallback` of the server (nil when metrics are off or on their own port).
        var responder: (any HTTPFallbackResponder)?
        /// The listener of its own, a service beside the server.
        var server: PrometheusMetricsServer?
    }

    /// Reads `SOCKET_METRICS*` against the server's final configuration (a wrong value ends `serve` with 78) and,
    /// unless metrics are off, bootstraps swift-metrics with a Prometheus registry. Call before creating the server:
    /// its metrics are made when it is.
    static func setUpMetrics(_ configuration: SocketServerConfiguration, logger: Logger) throws -> MetricsSetup {
        let metrics: PrometheusMetricsConfiguration
        do {
            metrics = try PrometheusMetricsConfiguration(environment: nil, server: configuration)
        } catch {
            throw fail("serve", "\(error.variable) \(error.message)", ExitCodes.notConfigured)
        }
        let registry = PrometheusCollectorRegistry()
        switch metrics.exposure {
        case .off:
            return MetricsSetup()
        case .socketListener(let path):
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            return MetricsSetup(responder: PrometheusMetricsResponder(registry: registry, path: path))
        case .ownListener(let host, let port, let path):
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            // The Socket.IO listener's HTTP limits (timeouts, header size, connections per address) apply here too.
            let server = PrometheusMetricsServer(
                host: host,
                port: port,
                path: path,
                registry: registry,
                httpLimits: configuration,
                logger: logger
            )
            return MetricsSetup(server: server)
        }
    }

    /// Why the metrics listener could not start, for an operator.
    static func metricsListenFailure(_ error: PrometheusMetricsListenError) -> String {
        let why =
            (error.underlying as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error.underlying)"
        let address = error.host.contains(":") ? "[\(error.host)]:\(error.port)" : "\(error.host):\(error.port)"
        let keys = PrometheusMetricsConfiguration.EnvironmentKey.self
        return "cannot serve metrics on \(address): \(why); set another \(keys.port) (or \(keys.host))"
    }
}
