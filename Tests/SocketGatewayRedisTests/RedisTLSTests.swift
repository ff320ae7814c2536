import Foundation
import Logging
import NIOCore
import SocketGatewayCore
import SocketGatewayRedis
import SocketGatewayRedisTestKit
import Testing

/// `rediss://` parsing and TLS settings: what is accepted, and what is refused at configuration time with which
/// words (no connection needed).
@Suite struct RedisTLSSettingsTests {
    @Test func redissAndValkeysTurnTLSOn() throws {
        for scheme in ["rediss", "valkeys"] {
            let url = try RedisURL(parsing: "\(scheme)://:pw@example.com:6380/2")
            #expect(url.endpoint == .tcp(host: "example.com", port: 6380))
            #expect(url.tls == RedisTLSConfiguration())
            #expect(url.redacted == "rediss://:***@example.com:6380/2")
        }
        #expect(try RedisURL(parsing: "redis://h:1/0").tls == nil)
        #expect(try RedisURL(parsing: "valkey://h:1/0").tls == nil)
    }

    @Test func redisPyParametersMapToSettings() async throws {
        let certificates = try await TestCertificates.make()
        let ca = certificates.caFile
        let cert = certificates.clientCertificate
        let key = certificates.clientKey
        let url = try RedisURL(
            parsing: "rediss://h:1/0?ssl_ca_certs=\(ca)&ssl_certfile=\(cert)&ssl_keyfile=\(key)"
                + "&ssl_cert_reqs=required&ssl_server_name=redis.test"
        )
        #expect(
            url.tls
                == RedisTLSConfiguration(caFile: ca, certificateFile: cert, keyFile: key, serverName: "redis.test")
        )
        let unverified = try RedisURL(parsing: "rediss://h/0?ssl_cert_reqs=none")
        #expect(unverified.tls?.verification == RedisTLSConfiguration.Verification.none)
        #expect(try RedisURL(parsing: "rediss://h/0?ssl_cert_reqs=optional").tls?.verification == .full)
        #expect(try RedisURL(parsing: "rediss://h/0?ssl_check_hostname=False").tls?.verification == .noHostname)
        #expect(try RedisURL(parsing: "rediss://h/0?ssl_check_hostname=true").tls?.verification == .full)
    }

    static let refusedURLs: [(String, String)] = [
        ("redis://h:1/0?ssl_ca_certs=/x.pem", "'ssl_ca_certs' needs TLS: use rediss://"),
        ("rediss://h:1/0?ssl_cert_reqs=maybe", "ssl_cert_reqs='maybe' is not one of"),
        ("rediss://h:1/0?ssl_ca_path=/etc/ssl", "unknown query parameter 'ssl_ca_path' (TLS parameters supported"),
    ]

    @Test(arguments: Self.refusedURLs)
    func refusesTLSParametersItCannotHonour(_ text: String, _ fragment: String) {
        let error = #expect(throws: RedisError.self) { try RedisURL(parsing: text) }
        #expect(error?.code == .invalidURL)
        #expect(error?.message.contains(fragment) == true, "\(String(describing: error))")
    }

    /// Every file problem is refused when the settings are applied, naming the setting and the file.
    @Test func unusableFilesAreRefusedWithWhatIsWrong() async throws {
        let certificates = try await TestCertificates.make()
        let notPEM = certificates.path("not.pem")
        try "hello".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let base = try RedisURL(parsing: "rediss://127.0.0.1:1/0")
        let cases: [(RedisTLSConfiguration, String)] = [
            (RedisTLSConfiguration(caFile: certificates.path("missing.pem")), "CA file (ssl_ca_certs"),
            (RedisTLSConfiguration(caFile: certificates.path("missing.pem")), "missing.pem' does not exist"),
            (RedisTLSConfiguration(caFile: notPEM), "not.pem' is not a PEM certificate file"),
            (
                RedisTLSConfiguration(certificateFile: certificates.clientCertificate, keyFile: notPEM),
                "is not a PEM private key"
            ),
            (
                RedisTLSConfiguration(certificateFile: certificates.clientCertificate, keyFile: certificates.serverKey),
                "does not match the client certificate"
            ),
            (RedisTLSConfiguration(certificateFile: certificates.clientCertificate), "needs its key"),
            (RedisTLSConfiguration(keyFile: certificates.clientKey), "needs its certificate"),
            (RedisTLSConfiguration(serverName: "10.0.0.1"), "must be a DNS name"),
        ]
        for (settings, fragment) in cases {
            let error = #expect(throws: RedisError.self) { try base.applyingTLS(settings) }
            #expect(error?.code == .invalidTLSConfiguration)
            #expect(error?.message.contains(fragment) == true, "\(String(describing: error))")
            #expect(error?.redactedURL == "rediss://127.0.0.1:1/0")
        }
        // A key file's contents never reach the message.
        do {
            _ = try base.applyingTLS(
                RedisTLSConfiguration(certificateFile: certificates.clientCertificate, keyFile: certificates.serverKey)
            )
        } catch {
            let keyText = try String(contentsOfFile: certificates.serverKey, encoding: .utf8)
            let keyBody = keyText.split(separator: "\n")[1]
            #expect(!error.description.contains(keyBody))
        }
    }

    @Test func environmentSettingsFillWhatTheURLLeavesAndNeedRediss() async throws {
        let certificates = try await TestCertificates.make()
        #expect(RedisTLSConfiguration(environment: ["REDIS_URL": "x"]) == nil)
        let environment = [
            "SOCKET_REDIS_TLS_CA": certificates.otherCAFile, "SOCKET_REDIS_TLS_SERVER_NAME": "redis.test",
            "SOCKET_REDIS_TLS_CERT": "", "SOCKET_REDIS_TLS_KEY": " ",
        ]
        let fromEnvironment = try #require(RedisTLSConfiguration(environment: environment))
        #expect(fromEnvironment == RedisTLSConfiguration(caFile: certificates.otherCAFile, serverName: "redis.test"))
        // The URL's own CA wins; the server name comes from the environment.
        let url = try RedisURL(parsing: "rediss://h:1/0?ssl_ca_certs=\(certificates.caFile)")
            .applyingTLSSettings(fromEnvironment)
        #expect(url.tls == RedisTLSConfiguration(caFile: certificates.caFile, serverName: "redis.test"))
        // TLS settings with a plain URL are a mistake, never a reason to connect in clear.
        let plain = #expect(throws: RedisError.self) {
            try RedisURL(parsing: "redis://h:1/0").applyingTLSSettings(fromEnvironment)
        }
        #expect(plain?.message.contains("the URL is not rediss://") == true)
        let unix = #expect(throws: RedisError.self) {
            try RedisURL(endpoint: .unixSocket(path: "/tmp/x.sock")).applyingTLS(fromEnvironment)
        }
        #expect(unix?.message.contains("not unix sockets") == true)
    }
}

/// Publisher and subscriber against a real redis-server whose port speaks only TLS, with certificates the test
/// makes: a private CA, a certificate for 127.0.0.1 and one for `redis.test`, a client certificate.
@Suite(.serialized) struct RedisTLSIntegrationTests {
    let logger = Logger(label: "test.redis-tls")

    /// Publishes `payload` through `url` and expects the subscriber on the same URL to receive it.
    func expectRoundTrip(_ url: RedisURL, payload: String = #"{"method":"emit"}"#) async throws {
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: url, channels: ["socketio"], logger: self.logger) {
            recorder.record($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        let publisher = RedisPublisher(url: url, logger: self.logger)
        let count = try await publisher.publish(ByteBuffer(string: payload))
        #expect(count == 1)
        #expect(await recorder.wait { $0 == [payload] })
        #expect(publisher.currentStatus.connected)
        let client = RedisCommandClient(url: url, logger: self.logger)
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        await client.shutdown()
        await publisher.shutdown()
        await subscriber.shutdown()
    }

    /// Connects a subscriber and a publisher that must fail: their error names the TLS problem, and they keep
    /// retrying with the backoff (no crash, the next attempt fails the same way).
    /// With TLS 1.3 a server that wants a client certificate says so after the client's handshake is over: then
    /// the publish in flight fails as `.connectionClosed`, with the same words.
    func expectRefusal(
        _ url: RedisURL,
        saying fragment: String,
        code: RedisError.Code = .connectionFailed,
        connectTimeout: Duration = .seconds(2)
    ) async throws {
        let subscriber = RedisSubscriber(
            url: url,
            channels: ["socketio"],
            configuration: RedisSubscriberConfiguration(connectTimeout: connectTimeout),
            logger: self.logger
        ) { _ in }
        subscriber.start()
        #expect(
            await eventually(limit: .seconds(10)) { subscriber.health.lastError?.contains(fragment) == true },
            "\(subscriber.health)"
        )
        let publisher = RedisPublisher(
            url: url,
            configuration: RedisPublisherConfiguration(connectTimeout: connectTimeout),
            logger: self.logger
        )
        for attempt in 0..<2 {
            do {
                _ = try await publisher.publish(ByteBuffer(string: "x"))
                Issue.record("published through \(url)")
            } catch {
                #expect(error.code == code)
                #expect(error.description.contains(fragment), "\(error)")
            }
            if attempt == 0 { try await Task.sleep(for: .milliseconds(300)) }
        }
        #expect(!subscriber.health.connected)
        await subscriber.shutdown()
        await publisher.shutdown()
    }

    @Test func publishAndSubscribeOverTLSWithAPrivateCA() async throws {
        let certificates = try await TestCertificates.make()
        let redis = try await RedisServerProcess.start(tls: .using(certificates))
        let url = try RedisURL(parsing: "\(redis.urlString)?ssl_ca_certs=\(certificates.caFile)")
        try await self.expectRoundTrip(url)
        // localhost is in the certificate too: the host name is checked and sent as SNI.
        try await self.expectRoundTrip(
            try RedisURL(endpoint: .tcp(host: "localhost", port: redis.port))
                .applyingTLS(RedisTLSConfiguration(caFile: certificates.caFile))
        )
        await redis.stop()
    }

    /// A TLS connection closed by Redis (client kill, then a restart) is reopened with a new handshake and the
    /// subscription restored, as over plain TCP.
    @Test func theSubscriberComesBackOverTLSAfterRedisDropsItAndRestarts() async throws {
        let certificates = try await TestCertificates.make()
        let redis = try await RedisServerProcess.start(tls: .using(certificates))
        let url = try redis.url.applyingTLS(RedisTLSConfiguration(caFile: certificates.caFile))
        let recorder = MessageRecorder()
        let subscriber = RedisSubscriber(url: url, channels: ["socketio"], logger: self.logger) {
            recorder.record($0)
        }
        subscriber.start()
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(10)))
        #expect(try await redis.cli(["CLIENT", "KILL", "TYPE", "pubsub"]) == "1")
        #expect(await eventually { subscriber.health.reconnects == 1 && subscriber.health.connected })
        await redis.stop()
        #expect(await eventually { !subscriber.health.connected })
        try await redis.restart()
        #expect(await eventually { subscriber.health.reconnects == 2 && subscriber.health.connected })
        let publisher = RedisPublisher(url: url, logger: self.logger)
        #expect(try await publisher.publish(ByteBuffer(string: "after")) == 1)
        #expect(await recorder.wait { $0 == ["after"] })
        await publisher.shutdown()
        await subscriber.shutdown()
        await redis.stop()
    }

    @Test func aServerSignedByAnotherCAIsRefused() async throws {
        let certificates = try await TestCertificates.make()
        let redis = try await RedisServerProcess.start(tls: .using(certificates))
        let url = try redis.url.applyingTLS(RedisTLSConfiguration(caFile: certificates.otherCAFile))
        try await self.expectRefusal(url, saying: "certificate verify failed: the server's certificate is not signed")
        // The system store does not know the private CA either.
        try await self.expectRefusal(
            try redis.url.applyingTLS(RedisTLSConfiguration()),
            saying: "certificate verify failed"
        )
        // ssl_cert_reqs=none accepts it (encrypted, not authenticated).
        try await self.expectRoundTrip(try RedisURL(parsing: "\(redis.urlString)?ssl_cert_reqs=none"))
        await redis.stop()
    }

    @Test func aCertificateForAnotherNameIsRefusedUnlessThatNameIsGiven() async throws {
        let certificates = try await TestCertificates.make()
        let redis = try await RedisServerProcess.start(tls: .using(certificates, named: true))
        let trusted = RedisTLSConfiguration(caFile: certificates.caFile)
        try await self.expectRefusal(
            try redis.url.applyingTLS(trusted),
            saying: "certificate verify failed: the server's certificate is not valid for '127.0.0.1'"
        )
        var named = trusted
        named.serverName = "redis.test"
        try await self.expectRoundTrip(try redis.url.applyingTLS(named))
        var unchecked = trusted
        unchecked.verification = .noHostname
        try await self.expectRoundTrip(try redis.url.applyingTLS(unchecked))
        await redis.stop()
    }

    @Test func aServerThatRequiresClientCertificates() async throws {
        let certificates = try await TestCertificates.make()
        let redis = try await RedisServerProcess.start(
            tls: .using(certificates, requireClientCertificates: true)
        )
        let withCertificate = try RedisURL(
            parsing: "\(redis.urlString)?ssl_ca_certs=\(certificates.caFile)"
                + "&ssl_certfile=\(certificates.clientCertificate)&ssl_keyfile=\(certificates.clientKey)"
        )
        try await self.expectRoundTrip(withCertificate)
        let without = try redis.url.applyingTLS(RedisTLSConfiguration(caFile: certificates.caFile))
        try await self.expectRefusal(
            without,
            saying: "the server requires a client certificate: set ssl_certfile and ssl_keyfile",
            code: .connectionClosed
        )
        await redis.stop()
    }

    @Test func aPlainServerIsNotMistakenForTLS() async throws {
        let certificates = try await TestCertificates.make()
        let redis = try await RedisServerProcess.start()
        let url = try redis.url.applyingTLS(RedisTLSConfiguration(caFile: certificates.caFile))
        try await self.expectRefusal(
            url,
            saying: "TLS handshake with 127.0.0.1 did not finish within 500 ms: does this port speak TLS?",
            code: .timeout,
            connectTimeout: .milliseconds(500)
        )
        await redis.stop()
    }
}
