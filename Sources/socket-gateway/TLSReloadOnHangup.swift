import Logging
import ServiceLifecycle
import SocketGatewayServer
import UnixSignals

/// `serve` with TLS: reads the certificate and key files again on each SIGHUP (``SocketServer/reloadTLS()``, which
/// logs the outcome; a bad file keeps the previous certificate). Ends on graceful shutdown.
struct TLSReloadOnHangup: Service {
    let server: SocketServer
    /// Made before the service group runs, so SIGHUP is trapped (not fatal) from the moment `serve` listens.
    let hangups: UnixSignalsSequence
    let logger: Logger

    func run() async throws {
        for await _ in self.hangups.cancelOnGracefulShutdown() {
            self.logger.info("SIGHUP: reloading the TLS certificate and key")
            // reloadTLS() logs why a reload failed; the server keeps serving with the previous certificate.
            try? self.server.reloadTLS()
        }
    }
}
