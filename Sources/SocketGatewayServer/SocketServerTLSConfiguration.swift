import SocketGatewayCore

/// TLS for the server's listener: https:// long-polling and wss:// on the one port.
///
/// Both files are PEM and are read when the server is created (a missing or unusable file is a configuration
/// error that ``SocketServer/start()`` throws, naming the file) and again by ``SocketServer/reloadTLS()`` (SIGHUP
/// in `socket-gateway serve`): connections accepted after a reload get the new certificate, open ones keep theirs,
/// and a reload that finds a bad file keeps the previous certificate.
public struct SocketServerTLSConfiguration: Sendable, Hashable {
    /// The environment variables `SocketServerConfiguration(environment:)` reads (both or neither).
    public enum EnvironmentKey {
        /// The PEM file of the server's certificate followed by its intermediate CA certificates.
        public static let certificateChainFile = "SOCKET_TLS_CERT"
        /// The PEM file of the certificate's private key (not encrypted).
        public static let privateKeyFile = "SOCKET_TLS_KEY"
        /// Seconds a TLS handshake may take (``handshakeTimeout``), 0.001...3600; default 10.
        public static let handshakeTimeout = "SOCKET_TLS_HANDSHAKE_TIMEOUT"
    }

    /// The PEM file of the server's certificate followed by any intermediate CA certificates (a `fullchain.pem`).
    public var certificateChainFile: String
    /// The PEM file of the certificate's private key (not encrypted).
    public var privateKeyFile: String
    /// How long a connection's TLS handshake may take from accept to its end; default 10 s. A peer that opens TCP
    /// and trickles or never finishes its ClientHello is closed then (counted in
    /// `socketgateway_http_timeouts_total{kind="tls_handshake"}`, a warning logged, rate-limited); other clients
    /// are not held up meanwhile. `validate()` refuses a value that is not positive.
    public var handshakeTimeout: Duration

    /// Creates TLS settings from the two files.
    /// - Parameters:
    ///   - certificateChainFile: The server's certificate, then its intermediates, as PEM.
    ///   - privateKeyFile: The certificate's private key, as PEM.
    ///   - handshakeTimeout: How long a TLS handshake may take before the connection is closed (default 10 s).
    public init(certificateChainFile: String, privateKeyFile: String, handshakeTimeout: Duration = .seconds(10)) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.handshakeTimeout = handshakeTimeout
    }

    /// Reads a value of ``EnvironmentKey/handshakeTimeout``: seconds, 0.001...3600.
    /// - Throws: ``SocketServerConfigurationError`` naming the variable and what it got.
    package static func handshakeTimeout(parsing text: String) throws(SocketServerConfigurationError) -> Duration {
        guard let seconds = Double(text), seconds >= 0.001, seconds <= 3600 else {
            throw SocketServerConfigurationError(
                variable: EnvironmentKey.handshakeTimeout,
                message: "must be a number of seconds, 0.001...3600, got '\(LogSafe.text(text))'"
            )
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }
}
