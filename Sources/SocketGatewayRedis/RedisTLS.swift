import NIOCore
import NIOSSL
import NIOTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS settings for Redis connections (`rediss://`): which CAs to trust, the client certificate, the server name.
///
/// Files are PEM and are read when the settings are applied to a URL (``RedisURL/applyingTLS(_:)``, or parsing a
/// `rediss://` URL), so a missing or malformed file is a configuration error at start, not a connect failure later.
/// In a URL the names are redis-py's (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`,
/// `ssl_check_hostname`), plus `ssl_server_name`; in the environment, ``EnvironmentKey``.
public struct RedisTLSConfiguration: Sendable, Hashable {
    /// How much of the server's certificate is checked.
    public enum Verification: Sendable, Hashable {
        /// The chain up to a trusted CA, and the server name (the default).
        case full
        /// The chain, but not the name (redis-py's `ssl_check_hostname=false`). Logged as a warning.
        case noHostname
        /// Nothing: any certificate is accepted (redis-py's `ssl_cert_reqs=none`). Encrypts but does not
        /// authenticate the server; logged as a warning.
        case none
    }

    /// The environment variables ``init(environment:)`` reads.
    public enum EnvironmentKey {
        /// A PEM file of the CA certificates to trust instead of the system's (a private CA).
        public static let caFile = "SOCKET_REDIS_TLS_CA"
        /// A PEM file of the client certificate (chain), for servers started with `tls-auth-clients yes`.
        public static let certificateFile = "SOCKET_REDIS_TLS_CERT"
        /// A PEM file of the client certificate's private key (not encrypted).
        public static let keyFile = "SOCKET_REDIS_TLS_KEY"
        /// The name sent as SNI and checked against the certificate, instead of the URL's host.
        public static let serverName = "SOCKET_REDIS_TLS_SERVER_NAME"
    }

    /// A PEM file of the CA certificates to trust; `nil` trusts the system's store.
    public var caFile: String?
    /// A PEM file of the client certificate (chain); needs `keyFile`.
    public var certificateFile: String?
    /// A PEM file of the client certificate's private key; needs `certificateFile`.
    public var keyFile: String?
    /// The name sent as SNI and checked against the server's certificate; `nil` uses the URL's host (an IP
    /// address host is checked against the certificate's IP addresses and sends no SNI).
    public var serverName: String?
    /// How much of the server's certificate is checked (default `.full`).
    public var verification: Verification

    /// Creates TLS settings; the defaults trust the system's CAs and check the URL's host name.
    public init(
        caFile: String? = nil,
        certificateFile: String? = nil,
        keyFile: String? = nil,
        serverName: String? = nil,
        verification: Verification = .full
    ) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.verification = verification
    }

    /// Reads ``EnvironmentKey``'s variables (empty ones count as unset). Verification is relaxed only in code or
    /// in the URL (`ssl_cert_reqs=none`, `ssl_check_hostname=false`), never by the environment.
    /// - Parameter environment: The variables; `nil` reads the process environment.
    /// - Returns: `nil` when none is set.
    public init?(environment: [String: String]?) {
        func read(_ name: String) -> String? {
            let value = environment.map { $0[name] } ?? getenv(name).map { String(cString: $0) }
            guard let value, !value.allSatisfy(\.isWhitespace) else { return nil }
            return value
        }
        let keys = [
            EnvironmentKey.caFile, EnvironmentKey.certificateFile, EnvironmentKey.keyFile, EnvironmentKey.serverName,
        ]
        guard keys.contains(where: { read($0) != nil }) else { return nil }
        self.init(
            caFile: read(EnvironmentKey.caFile),
            certificateFile: read(EnvironmentKey.certificateFile),
            keyFile: read(EnvironmentKey.keyFile),
            serverName: read(EnvironmentKey.serverName)
        )
    }

    /// These settings, with what they leave unset taken from `defaults` (a URL's own parameters win over the
    /// environment's). The verification is the weaker of the two only when this one is `.full`.
    public func filling(from defaults: RedisTLSConfiguration) -> RedisTLSConfiguration {
        RedisTLSConfiguration(
            caFile: self.caFile ?? defaults.caFile,
            certificateFile: self.certificateFile ?? defaults.certificateFile,
            keyFile: self.keyFile ?? defaults.keyFile,
            serverName: self.serverName ?? defaults.serverName,
            verification: self.verification == .full ? defaults.verification : self.verification
        )
    }
}

/// TLS settings with their files loaded: the `NIOSSLContext` every connection to one URL shares (built once, when
/// the settings are applied, not per connect).
package struct RedisTLSContext: Sendable, Hashable {
    /// The settings it was built from.
    package let configuration: RedisTLSConfiguration
    let sslContext: NIOSSLContext

    /// Loads the PEM files and builds the context.
    /// - Throws: `RedisError` (`.invalidTLSConfiguration`) naming the setting and the file: missing, unreadable,
    ///   not PEM, a key without a certificate (or the reverse), a key that does not match the certificate.
    package init(_ configuration: RedisTLSConfiguration) throws(RedisError) {
        self.configuration = configuration
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        switch configuration.verification {
        case .full: tls.certificateVerification = .fullVerification
        case .noHostname: tls.certificateVerification = .noHostnameVerification
        case .none: tls.certificateVerification = .none
        }
        if let caFile = configuration.caFile {
            let certificates = try Self.loadCertificates(caFile, setting: "CA file (ssl_ca_certs, SOCKET_REDIS_TLS_CA)")
            tls.trustRoots = .certificates(certificates)
        }
        switch (configuration.certificateFile, configuration.keyFile) {
        case (nil, nil):
            break
        case (let certificateFile?, let keyFile?):
            let chain = try Self.loadCertificates(
                certificateFile,
                setting: "client certificate (ssl_certfile, SOCKET_REDIS_TLS_CERT)"
            )
            let keySetting = "client key (ssl_keyfile, SOCKET_REDIS_TLS_KEY)"
            try Self.checkReadable(keyFile, setting: keySetting)
            let key: NIOSSLPrivateKey
            do {
                key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            } catch {
                throw Self.error(
                    "\(keySetting) '\(keyFile)' is not a PEM private key (or is encrypted, which is not supported)"
                )
            }
            guard Self.key(key, matches: chain[0]) else {
                throw Self.error(
                    "\(keySetting) '\(keyFile)' does not match the client certificate '\(certificateFile)'"
                )
            }
            tls.certificateChain = chain.map { .certificate($0) }
            tls.privateKey = .privateKey(key)
        case (_?, nil):
            throw Self.error("a client certificate needs its key: set ssl_keyfile (SOCKET_REDIS_TLS_KEY) too")
        case (nil, _?):
            throw Self.error("a client key needs its certificate: set ssl_certfile (SOCKET_REDIS_TLS_CERT) too")
        }
        if let name = configuration.serverName {
            guard !name.isEmpty, !Self.isIPAddress(name) else {
                throw Self.error(
                    "server name '\(name)' must be a DNS name (an IP address host needs no server name: the "
                        + "certificate's IP addresses are checked)"
                )
            }
        }
        do {
            self.sslContext = try NIOSSLContext(configuration: tls)
        } catch {
            throw Self.error("cannot build the TLS context from these files: \(error)")
        }
    }

    package static func == (lhs: RedisTLSContext, rhs: RedisTLSContext) -> Bool {
        lhs.configuration == rhs.configuration
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(self.configuration)
    }

    /// The name to send as SNI and to check the certificate against for a connection to `host`: the configured
    /// server name, else `host` unless it is an IP address (then NIOSSL checks the peer's address instead).
    func serverName(forHost host: String) -> String? {
        if let name = self.configuration.serverName { return name }
        return Self.isIPAddress(host) ? nil : host
    }

    /// A TLS failure on a connection to `host`, in words a person can act on; never file contents.
    static func describe(_ error: any Error, host: String, configuration: RedisTLSConfiguration) -> String {
        let name = configuration.serverName ?? host
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "certificate verify failed: the server's certificate is not valid for '\(name)' (hostname "
                + "mismatch); connect by a name the certificate holds, or set ssl_server_name "
                + "(SOCKET_REDIS_TLS_SERVER_NAME)"
        }
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            let trusted =
                configuration.caFile.map { "the CA file '\($0)'" } ?? "the system's CA store (set ssl_ca_certs / "
                + "SOCKET_REDIS_TLS_CA for a private CA)"
            return "certificate verify failed: the server's certificate is not signed by a CA in \(trusted)"
        }
        if text.contains("CERTIFICATE_REQUIRED") || text.contains("HANDSHAKE_FAILURE_ON_CLIENT_HELLO") {
            return "the server requires a client certificate: set ssl_certfile and ssl_keyfile "
                + "(SOCKET_REDIS_TLS_CERT, SOCKET_REDIS_TLS_KEY) (\(text))"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") {
            return "TLS handshake failed: the server does not speak TLS on this port (use redis:// for a plain "
                + "port) (\(text))"
        }
        return "TLS handshake failed: \(text)"
    }

    static func error(_ message: String) -> RedisError {
        RedisError(code: .invalidTLSConfiguration, message: "invalid Redis TLS setting: \(message)")
    }

    private static func checkReadable(_ path: String, setting: String) throws(RedisError) {
        guard access(path, F_OK) == 0 else { throw Self.error("\(setting) '\(path)' does not exist") }
        guard access(path, R_OK) == 0 else { throw Self.error("\(setting) '\(path)' is not readable") }
    }

    private static func loadCertificates(_ path: String, setting: String) throws(RedisError) -> [NIOSSLCertificate] {
        try Self.checkReadable(path, setting: setting)
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw Self.error("\(setting) '\(path)' is not a PEM certificate file")
        }
        guard !certificates.isEmpty else {
            throw Self.error("\(setting) '\(path)' holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        return certificates
    }

    /// Whether `key` is the private key of `certificate`: a server context built from the two is refused by
    /// BoringSSL when they do not match.
    private static func key(_ key: NIOSSLPrivateKey, matches certificate: NIOSSLCertificate) -> Bool {
        let probe = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(certificate)],
            privateKey: .privateKey(key)
        )
        return (try? NIOSSLContext(configuration: probe)) != nil
    }

    private static func isIPAddress(_ text: String) -> Bool {
        (try? SocketAddress(ipAddress: text, port: 0)) != nil
    }
}

/// The TLS client side of one Redis connection, after `NIOSSLClientHandler`: completes `handshakeDone` when the
/// handshake is over (or fails it with a `RedisError` that says why, or when it takes longer than `timeout`), and
/// turns later TLS errors into `RedisError`s for the reply forwarder.
final class RedisTLSHandshakeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let handshakeDone: EventLoopPromise<Void>
    private let host: String
    private let configuration: RedisTLSConfiguration
    private let redactedURL: String
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var completed = false

    init(
        handshakeDone: EventLoopPromise<Void>,
        host: String,
        configuration: RedisTLSConfiguration,
        redactedURL: String,
        timeout: TimeAmount
    ) {
        self.handshakeDone = handshakeDone
        self.host = host
        self.configuration = configuration
        self.redactedURL = redactedURL
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let timeout = self.timeout
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.fail(
                RedisError(
                    code: .timeout,
                    message: "TLS handshake with \(self.host) did not finish within \(timeout): does this "
                        + "port speak TLS? (a plain Redis port needs redis://)",
                    redactedURL: self.redactedURL
                ),
                context: context
            )
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.fail(RedisError(code: .connectionClosed, message: "TLS handler removed"), context: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, !self.completed {
            self.completed = true
            self.timer?.cancel()
            self.handshakeDone.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // After the handshake only a TLS alert from the server (with TLS 1.3, a refused or missing client
        // certificate arrives that late) is put in words here; a reset or an unclean close passes as it is.
        if self.completed, error is RedisError || !"\(error)".contains("ALERT") {
            context.fireErrorCaught(error)
            return
        }
        let redisError =
            (error as? RedisError)
            ?? RedisError(
                code: .connectionFailed,
                message: RedisTLSContext.describe(error, host: self.host, configuration: self.configuration),
                redactedURL: self.redactedURL,
                underlying: error
            )
        if self.completed {
            context.fireErrorCaught(redisError)
        } else {
            self.fail(redisError, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(
            RedisError(
                code: .connectionFailed,
                message: "the server closed the connection during the TLS handshake",
                redactedURL: self.redactedURL
            ),
            context: nil
        )
        context.fireChannelInactive()
    }

    private func fail(_ error: RedisError, context: ChannelHandlerContext?) {
        guard !self.completed else { return }
        self.completed = true
        self.timer?.cancel()
        self.handshakeDone.fail(error)
        context?.close(promise: nil)
    }
}
