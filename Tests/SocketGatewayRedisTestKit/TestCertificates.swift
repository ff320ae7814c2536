import Foundation

/// Certificates for TLS tests, made with the `openssl` CLI in a private temporary directory (P-256 keys, valid
/// for two days):
/// - a CA, and a server certificate it signed for `127.0.0.1`, `::1` and `localhost`;
/// - a server certificate for the DNS name `redis.test` only (no IP address: a client connecting to 127.0.0.1
///   must be told the name);
/// - a client certificate it signed (for `tls-auth-clients yes`);
/// - a second CA that signed none of them (a client trusting it must refuse the server).
public final class TestCertificates: Sendable {
    /// The folder holding every file; removed when the value is released.
    public let directory: String

    /// The CA that signed the server and client certificates (PEM).
    public var caFile: String { self.path("ca.pem") }
    /// A CA that signed nothing here (PEM).
    public var otherCAFile: String { self.path("other-ca.pem") }
    /// The server certificate for 127.0.0.1, ::1 and localhost.
    public var serverCertificate: String { self.path("server.pem") }
    /// Its key.
    public var serverKey: String { self.path("server.key") }
    /// The server certificate for `redis.test` only.
    public var namedServerCertificate: String { self.path("named.pem") }
    /// Its key.
    public var namedServerKey: String { self.path("named.key") }
    /// The client certificate.
    public var clientCertificate: String { self.path("client.pem") }
    /// Its key.
    public var clientKey: String { self.path("client.key") }

    private init(directory: String) {
        self.directory = directory
    }

    deinit {
        try? FileManager.default.removeItem(atPath: self.directory)
    }

    /// A file in ``directory``.
    public func path(_ name: String) -> String { self.directory + "/" + name }

    /// Makes the CAs, keys and certificates.
    /// - Throws: `RedisServerProcess.FixtureError` when openssl is missing or fails (its output in the message).
    public static func make() async throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "socketgateway-tls-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        try await certificates.makeCA("ca", subject: "/CN=SocketGateway Test CA")
        try await certificates.makeCA("other-ca", subject: "/CN=SocketGateway Other CA")
        try await certificates.makeLeaf(
            "server",
            subject: "/CN=localhost",
            extensions: "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth"
        )
        try await certificates.makeLeaf(
            "named",
            subject: "/CN=redis.test",
            extensions: "subjectAltName=DNS:redis.test\nextendedKeyUsage=serverAuth"
        )
        try await certificates.makeLeaf(
            "client",
            subject: "/CN=socketgateway-client",
            extensions: "extendedKeyUsage=clientAuth"
        )
        return certificates
    }

    private func makeCA(_ name: String, subject: String) async throws {
        try await Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", self.path("\(name).key"), "-out", self.path("\(name).pem"), "-days", "2", "-subj", subject,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        ])
    }

    private func makeLeaf(_ name: String, subject: String, extensions: String) async throws {
        let extensionsFile = self.path("\(name).ext")
        let text =
            extensions
            + "\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\n"
            + "authorityKeyIdentifier=keyid,issuer\n"
        try text.write(toFile: extensionsFile, atomically: true, encoding: .utf8)
        try await Self.openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", self.path("\(name).key"), "-out", self.path("\(name).csr"), "-subj", subject,
        ])
        try await Self.openssl([
            "x509", "-req", "-in", self.path("\(name).csr"), "-CA", self.caFile, "-CAkey", self.path("ca.key"),
            "-set_serial", String(UInt32.random(in: 1...UInt32.max)), "-days", "2", "-out", self.path("\(name).pem"),
            "-extfile", extensionsFile,
        ])
    }

    private static func openssl(_ arguments: [String]) async throws {
        let result = try await ChildProcess.run("openssl", arguments)
        guard result.status == 0 else {
            throw RedisServerProcess.FixtureError(
                description:
                    "openssl \(arguments.prefix(2).joined(separator: " ")) failed (exit \(result.status); "
                    + "install openssl): \(result.output.suffix(1000))"
            )
        }
    }
}
