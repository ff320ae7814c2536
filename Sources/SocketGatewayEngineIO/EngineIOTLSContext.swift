import NIOConcurrencyHelpers
package import NIOCore
package import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A TLS certificate chain file or private key file that cannot be used: which file, and why.
package struct EngineIOTLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file at fault.
    package var path: String
    /// What is wrong with it, in words that name the file.
    package var message: String

    /// `message` (it names the file).
    package var description: String { self.message }
}

/// The server side of TLS: a certificate chain and its private key, read from PEM files, that a new connection
/// takes at accept; ``reload()`` reads the files again (SIGHUP in `serve`) without touching open connections.
package final class EngineIOTLSContext: Sendable {
    /// What a load produced: the context new connections get, and the leaf certificate for the log.
    private struct Loaded: Sendable {
        var context: NIOSSLContext
        var leaf: NIOSSLCertificate
    }

    /// The PEM file of the server's certificate, then any intermediate CA certificates.
    package let certificateChainFile: String
    /// The PEM file of the certificate's private key (not encrypted).
    package let privateKeyFile: String
    /// How long a connection's TLS handshake may take from accept to its end (default 10 s); a peer that trickles
    /// or never finishes its ClientHello is then closed, counted in `socketgateway_http_timeouts_total` with
    /// `kind="tls_handshake"` and logged at warning, rate-limited.
    package let handshakeTimeout: TimeAmount
    private let loaded: NIOLockedValueBox<Loaded>

    /// Loads the two files.
    /// - Parameters:
    ///   - certificateChainFile: The server's certificate, then its intermediates, as PEM.
    ///   - privateKeyFile: The certificate's private key, as PEM.
    ///   - handshakeTimeout: How long a TLS handshake may take before the connection is closed.
    /// - Throws: ``EngineIOTLSError`` naming the file: missing, unreadable, not PEM, no certificate, an encrypted
    ///   key, a key that does not belong to the certificate.
    package init(
        certificateChainFile: String,
        privateKeyFile: String,
        handshakeTimeout: TimeAmount = .seconds(10)
    ) throws(EngineIOTLSError) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.handshakeTimeout = handshakeTimeout
        self.loaded = NIOLockedValueBox(try Self.load(certificateChainFile, privateKeyFile))
    }

    /// The context a connection accepted now gets.
    package var sslContext: NIOSSLContext {
        self.loaded.withLockedValue { $0.context }
    }

    /// The serial number (hex) and expiry (seconds since 1970) of the certificate new connections get.
    package var leafSummary: (serial: String, notValidAfter: Int) {
        self.loaded.withLockedValue { loaded in
            (
                loaded.leaf.serialNumber.map { String($0, radix: 16).leftPadded(to: 2) }.joined(),
                Int(loaded.leaf.notValidAfter)
            )
        }
    }

    /// Reads the files again; connections accepted from now on get the new certificate, open ones keep theirs.
    /// - Throws: ``EngineIOTLSError`` when a file cannot be used; the previous certificate then stays in use.
    package func reload() throws(EngineIOTLSError) {
        let fresh = try Self.load(self.certificateChainFile, self.privateKeyFile)
        self.loaded.withLockedValue { $0 = fresh }
    }

    private static func load(_ chainFile: String, _ keyFile: String) throws(EngineIOTLSError) -> Loaded {
        let chainName = "the TLS certificate chain file '\(chainFile)'"
        let keyName = "the TLS private key file '\(keyFile)'"
        try Self.checkReadable(chainFile, name: chainName)
        try Self.checkReadable(keyFile, name: keyName)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(chainFile)
        } catch {
            throw EngineIOTLSError(path: chainFile, message: "\(chainName) is not a PEM certificate file")
        }
        guard let leaf = chain.first else {
            throw EngineIOTLSError(
                path: chainFile,
                message: "\(chainName) holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw EngineIOTLSError(
                path: keyFile,
                message: "\(keyName) is not a PEM private key (or is encrypted, which is not supported)"
            )
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        // HTTP/1.1 only: a client offering h2 is told so during the handshake.
        configuration.applicationProtocols = ["http/1.1"]
        do {
            return Loaded(context: try NIOSSLContext(configuration: configuration), leaf: leaf)
        } catch {
            throw EngineIOTLSError(
                path: keyFile,
                message: "\(keyName) does not belong to the first certificate of \(chainName) (\(error))"
            )
        }
    }

    private static func checkReadable(_ path: String, name: String) throws(EngineIOTLSError) {
        guard access(path, F_OK) == 0 else { throw EngineIOTLSError(path: path, message: "\(name) does not exist") }
        guard access(path, R_OK) == 0 else {
            throw EngineIOTLSError(path: path, message: "\(name) is not readable by this process")
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
    }
}
