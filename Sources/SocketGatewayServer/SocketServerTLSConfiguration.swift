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
    }

    /// The PEM file of the server's certificate followed by any intermediate CA certificates (a `fullchain.pem`).
    public var certificateChainFile: String
    /// The PEM file of the certificate's private key (not encrypted).
    public var privateKeyFile: String

    /// Creates TLS settings from the two files.
    /// - Parameters:
    ///   - certificateChainFile: The server's certificate, then its intermediates, as PEM.
    ///   - privateKeyFile: The certificate's private key, as PEM.
    public init(certificateChainFile: String, privateKeyFile: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }
}
