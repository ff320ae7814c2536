import Foundation
import JWTKit
import SocketGatewayCore
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

/// The JWT authenticator at a fixed `now`: every algorithm with keys made in the test (RSA by the `openssl` CLI,
/// EC and Ed25519 by jwt-kit), every claim rule, and the refusals with their reasons.
@Suite struct JWTTests {
    /// 64 bytes: long enough for HS512 (RFC 7518 §3.2).
    static let secret = String(repeating: "s3cret-for-tests", count: 4)
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    /// Claims that pass every default rule at ``now``.
    static let valid: JSONValue = ["sub": "42", "exp": .int(1_800_000_060)]

    private func authenticator(_ configuration: JWTAuthenticator.Configuration) throws -> JWTAuthenticator {
        let fixed = Self.now
        return try JWTAuthenticator(configuration: configuration, now: { fixed })
    }

    private func hmacKeys(_ digest: DigestAlgorithm, secret: String = Self.secret) async -> JWTKeyCollection {
        await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: digest)
    }

    /// The refusal code of verifying `token`, or nil when it was accepted.
    private func code(_ authenticator: JWTAuthenticator, _ token: String) async -> JWTError.Code? {
        do {
            _ = try await authenticator.verify(auth: ["token": .string(token)])
            return nil
        } catch {
            return error.code
        }
    }

    @Test func secretInitKeepsWorkingForHS256AndGivesTheClaims() async throws {
        let token = try await TestTokens.sign(
            ["sub": "42", "exp": .int(1_800_000_060), "role": "admin"],
            with: await self.hmacKeys(.sha256)
        )
        let fixed = Self.now
        let user = try await JWTAuthenticator(secret: Self.secret, now: { fixed }).verify(auth: [
            "token": .string(token)
        ])
        #expect(user.id == "42")
        #expect(user.claims["role"] == "admin")
        #expect(user.claims["exp"] == .int(1_800_000_060))
    }

    @Test func everyHMACAlgorithm() async throws {
        let authenticator = try self.authenticator(.init(secret: Self.secret))
        for digest in [DigestAlgorithm.sha256, .sha384, .sha512] {
            let token = try await TestTokens.sign(Self.valid, with: await self.hmacKeys(digest))
            #expect(await self.code(authenticator, token) == nil, "\(digest)")
            let forged = try await TestTokens.sign(
                Self.valid,
                with: await self.hmacKeys(digest, secret: String(repeating: "o", count: 64))
            )
            #expect(await self.code(authenticator, forged) == .badSignature, "\(digest)")
        }
        // A 32-byte secret verifies HS256 only: HS384 and HS512 need 48 and 64 bytes (RFC 7518 §3.2).
        let short = String(repeating: "k", count: 32)
        let shortAuthenticator = try self.authenticator(.init(secret: short))
        let hs256 = try await TestTokens.sign(Self.valid, with: await self.hmacKeys(.sha256, secret: short))
        #expect(await self.code(shortAuthenticator, hs256) == nil)
        let hs384 = try await TestTokens.sign(Self.valid, with: await self.hmacKeys(.sha384, secret: Self.secret))
        #expect(await self.code(shortAuthenticator, hs384) == .unsupportedAlgorithm)
        // Only the configured algorithms are accepted.
        let only256 = try self.authenticator(.init(secret: Self.secret, algorithms: [.hs256]))
        let hs512 = try await TestTokens.sign(Self.valid, with: await self.hmacKeys(.sha512))
        #expect(await self.code(only256, hs512) == .unsupportedAlgorithm)
    }

    @Test func everyRSAAlgorithmFromAPublicKeyAndACertificate() async throws {
        let rsa = try await OpenSSLKeys.rsa()
        let privateKey = try Insecure.RSA.PrivateKey(pem: rsa.privatePEM)
        for pem in [rsa.publicPEM, rsa.certificatePEM] {
            let authenticator = try self.authenticator(.init(publicKeyPEM: pem))
            for (digest, name) in [(DigestAlgorithm.sha256, "RS256"), (.sha384, "RS384"), (.sha512, "RS512")] {
                let keys = await JWTKeyCollection().add(rsa: privateKey, digestAlgorithm: digest)
                let token = try await TestTokens.sign(Self.valid, with: keys)
                #expect(await self.code(authenticator, token) == nil, "\(name)")
            }
            // An HS256 token "signed" with the public key's text (algorithm confusion) is refused.
            let confused = try await TestTokens.sign(Self.valid, with: await self.hmacKeys(.sha256, secret: pem))
            #expect(await self.code(authenticator, confused) == .unsupportedAlgorithm)
        }
        // Another RSA key's token: bad signature.
        let other = try await OpenSSLKeys.rsa()
        let otherKeys = await JWTKeyCollection().add(
            rsa: try Insecure.RSA.PrivateKey(pem: other.privatePEM),
            digestAlgorithm: .sha256
        )
        let authenticator = try self.authenticator(.init(publicKeyPEM: rsa.publicPEM))
        #expect(await self.code(authenticator, try await TestTokens.sign(Self.valid, with: otherKeys)) == .badSignature)
    }

    @Test func everyECDSACurveAndEdDSA() async throws {
        let p256 = ES256PrivateKey()
        let p384 = ES384PrivateKey()
        let p521 = ES512PrivateKey()
        let ed25519 = try EdDSA.PrivateKey()
        let cases: [(String, String, JWTKeyCollection)] = [
            ("ES256", p256.publicKey.pemRepresentation, await JWTKeyCollection().add(ecdsa: p256)),
            ("ES384", p384.publicKey.pemRepresentation, await JWTKeyCollection().add(ecdsa: p384)),
            ("ES512", p521.publicKey.pemRepresentation, await JWTKeyCollection().add(ecdsa: p521)),
            ("EdDSA", ed25519.publicKey.pemRepresentation, await JWTKeyCollection().add(eddsa: ed25519)),
        ]
        for (name, pem, keys) in cases {
            let authenticator = try self.authenticator(.init(publicKeyPEM: pem))
            let token = try await TestTokens.sign(Self.valid, with: keys)
            #expect(await self.code(authenticator, token) == nil, "\(name)")
            // A token of another key of the same kind: bad signature.
            let otherKeys: JWTKeyCollection
            switch name {
            case "ES256": otherKeys = await JWTKeyCollection().add(ecdsa: ES256PrivateKey())
            case "ES384": otherKeys = await JWTKeyCollection().add(ecdsa: ES384PrivateKey())
            case "ES512": otherKeys = await JWTKeyCollection().add(ecdsa: ES512PrivateKey())
            default: otherKeys = await JWTKeyCollection().add(eddsa: try EdDSA.PrivateKey())
            }
            #expect(
                await self.code(authenticator, try await TestTokens.sign(Self.valid, with: otherKeys)) == .badSignature
            )
            // Not accepted when its algorithm is not configured.
            let allButThis = Set(JWTAuthenticator.Algorithm.all.filter { $0.name != name })
            #expect(throws: SocketServerConfigurationError.self) {
                try self.authenticator(.init(publicKeyPEM: pem, algorithms: allButThis))
            }
            let without = try self.authenticator(.init(secret: Self.secret, publicKeyPEM: pem, algorithms: allButThis))
            #expect(await self.code(without, token) == .unsupportedAlgorithm, "\(name)")
        }
    }

    @Test func expirationIsRequiredByDefaultAndExclusive() async throws {
        let keys = await self.hmacKeys(.sha256)
        let strict = try self.authenticator(.init(secret: Self.secret))
        let lenient = try self.authenticator(.init(secret: Self.secret, requireExpiration: false))
        let noExp = try await TestTokens.sign(["sub": "42"], with: keys)
        #expect(await self.code(strict, noExp) == .missingExpiration)
        #expect(await self.code(lenient, noExp) == nil)
        let atNow = try await TestTokens.sign(["sub": "42", "exp": .int(1_800_000_000)], with: keys)
        #expect(await self.code(strict, atNow) == .expired)
        let inOneSecond = try await TestTokens.sign(["sub": "42", "exp": .double(1_800_000_000.5)], with: keys)
        #expect(await self.code(strict, inOneSecond) == nil)
        let withLeeway = try self.authenticator(.init(secret: Self.secret, leeway: .seconds(30)))
        let expiredRecently = try await TestTokens.sign(["sub": "42", "exp": .int(1_799_999_980)], with: keys)
        #expect(await self.code(strict, expiredRecently) == .expired)
        #expect(await self.code(withLeeway, expiredRecently) == nil)
        let notANumber = try await TestTokens.sign(["sub": "42", "exp": "tomorrow"], with: keys)
        #expect(await self.code(strict, notANumber) == .malformed)
    }

    @Test func notBeforeWithLeeway() async throws {
        let keys = await self.hmacKeys(.sha256)
        let soon = try await TestTokens.sign(
            ["sub": "42", "exp": .int(1_800_000_600), "nbf": .int(1_800_000_020)],
            with: keys
        )
        #expect(await self.code(try self.authenticator(.init(secret: Self.secret)), soon) == .notYetValid)
        #expect(
            await self.code(try self.authenticator(.init(secret: Self.secret, leeway: .seconds(10))), soon)
                == .notYetValid
        )
        #expect(await self.code(try self.authenticator(.init(secret: Self.secret, leeway: .seconds(30))), soon) == nil)
        let bad = try await TestTokens.sign(["sub": "42", "exp": .int(1_800_000_600), "nbf": ["x"]], with: keys)
        #expect(await self.code(try self.authenticator(.init(secret: Self.secret)), bad) == .malformed)
    }

    @Test func audienceOneOrAListAnyMatch() async throws {
        let keys = await self.hmacKeys(.sha256)
        let authenticator = try self.authenticator(.init(secret: Self.secret, audiences: ["api", "socket"]))
        let cases: [(JSONValue?, JWTError.Code?)] = [
            ("socket", nil), (["other", "api"], nil), ("other", .wrongAudience), (["a", "b"], .wrongAudience),
            (nil, .wrongAudience), (5, .wrongAudience), ([], .wrongAudience),
        ]
        for (audience, expected) in cases {
            var claims: [(key: String, value: JSONValue)] = [("sub", "42"), ("exp", .int(1_800_000_060))]
            if let audience { claims.append(("aud", audience)) }
            let token = try await TestTokens.sign(.object(claims), with: keys)
            #expect(await self.code(authenticator, token) == expected, "\(String(describing: audience))")
        }
        // Without configured audiences, aud is not checked.
        let unchecked = try self.authenticator(.init(secret: Self.secret))
        let token = try await TestTokens.sign(["sub": "42", "exp": .int(1_800_000_060), "aud": "x"], with: keys)
        #expect(await self.code(unchecked, token) == nil)
    }

    @Test func issuerMustMatchWhenConfigured() async throws {
        let keys = await self.hmacKeys(.sha256)
        let authenticator = try self.authenticator(.init(secret: Self.secret, issuer: "https://idp.example"))
        let cases: [(JSONValue?, JWTError.Code?)] = [
            ("https://idp.example", nil), ("https://evil.example", .wrongIssuer), (nil, .wrongIssuer),
            (1, .wrongIssuer),
        ]
        for (issuer, expected) in cases {
            var claims: [(key: String, value: JSONValue)] = [("sub", "42"), ("exp", .int(1_800_000_060))]
            if let issuer { claims.append(("iss", issuer)) }
            let token = try await TestTokens.sign(.object(claims), with: keys)
            #expect(await self.code(authenticator, token) == expected, "\(String(describing: issuer))")
        }
    }

    @Test func userClaimMustBeANonEmptyString() async throws {
        let keys = await self.hmacKeys(.sha256)
        let bySub = try self.authenticator(.init(secret: Self.secret))
        let byEmail = try self.authenticator(.init(secret: Self.secret, userClaim: "email"))
        let cases: [(JSONValue, JWTError.Code?, JWTError.Code?)] = [
            (["sub": "42", "email": "a@example.com"], nil, nil),
            (["sub": 42, "email": "a@example.com"], .missingSubject, nil),
            (["sub": "", "email": 7], .missingSubject, .missingSubject),
            (["email": ["a"]], .missingSubject, .missingSubject),
        ]
        for (claims, subCode, emailCode) in cases {
            guard case .object(var pairs) = claims else { continue }
            pairs.append(("exp", .int(1_800_000_060)))
            let token = try await TestTokens.sign(.object(pairs), with: keys)
            #expect(await self.code(bySub, token) == subCode, "\(claims)")
            #expect(await self.code(byEmail, token) == emailCode, "\(claims)")
        }
        let user = try await byEmail.verify(
            auth: [
                "token": .string(
                    try await TestTokens.sign(["email": "a@example.com", "exp": .int(1_800_000_060)], with: keys)
                )
            ]
        )
        #expect(user.id == "a@example.com")
    }

    @Test func malformedTokensAndAuthPayloads() async throws {
        let authenticator = try self.authenticator(.init(secret: Self.secret))
        for auth: JSONValue? in [nil, ["token": 5], ["other": "x"], "token"] {
            do {
                _ = try await authenticator.verify(auth: auth)
                Issue.record("accepted \(String(describing: auth))")
            } catch {
                #expect(error.code == .malformed)
            }
        }
        let good = try await TestTokens.sign(Self.valid, with: await self.hmacKeys(.sha256))
        let parts = good.split(separator: ".").map(String.init)
        #expect(await self.code(authenticator, "garbage") == .malformed)
        #expect(await self.code(authenticator, "bm90IGpzb24.\(parts[1]).\(parts[2])") == .malformed)
        #expect(await self.code(authenticator, "\(parts[0]).\(parts[1]).A") != nil)
        let none = Base64.encodeToString(Array(#"{"alg":"none"}"#.utf8), urlSafe: true)
        #expect(await self.code(authenticator, "\(none).\(parts[1]).") == .unsupportedAlgorithm)
        let noAlg = Base64.encodeToString(Array(#"{"typ":"JWT"}"#.utf8), urlSafe: true)
        #expect(await self.code(authenticator, "\(noAlg).\(parts[1]).\(parts[2])") == .unsupportedAlgorithm)
        let huge = good + String(repeating: "x", count: JWTAuthenticator.maxTokenLength)
        #expect(await self.code(authenticator, huge) == .malformed)
        // A refusal is answered with nil.
        #expect(await authenticator.authenticate(auth: ["token": "nope"], handshake: SocketHandshake(auth: nil)) == nil)
    }

    @Test func badConfigurationsAreRefusedNamingTheSetting() throws {
        func variable(_ configuration: JWTAuthenticator.Configuration) -> String? {
            do {
                _ = try JWTAuthenticator(configuration: configuration)
                return nil
            } catch {
                return error.variable
            }
        }
        #expect(throws: SocketServerConfigurationError.self) { try JWTAuthenticator(secret: "") }
        #expect(variable(.init()) == "keys")
        #expect(variable(.init(secret: "")) == "secret")
        #expect(variable(.init(secret: String(repeating: "x", count: 31))) == "secret")
        #expect(variable(.init(publicKeyPEM: "not a pem")) == "publicKeyPEM")
        #expect(variable(.init(publicKeyPEM: ES256PrivateKey().pemRepresentation)) == "publicKeyPEM")
        #expect(variable(.init(secret: Self.secret, algorithms: [])) == "algorithms")
        #expect(variable(.init(secret: Self.secret, algorithms: [.rs256])) == "algorithms")
        #expect(variable(.init(secret: Self.secret, leeway: .seconds(-1))) == "leeway")
        #expect(variable(.init(secret: Self.secret, userClaim: "")) == "userClaim")
        #expect(variable(.init(secret: Self.secret, audiences: [""])) == "audiences")
        #expect(variable(.init(keySet: .url("http://idp.example/jwks"))) == "keySet")
        #expect(variable(.init(keySet: .url("ftp://idp.example/jwks"))) == "keySet")
        #expect(
            variable(.init(keySet: .url("https://idp.example/jwks"), keySetRefreshInterval: .zero))
                == "keySetRefreshInterval"
        )
        #expect(variable(.init(keySet: .url("https://idp.example/.well-known/jwks.json"))) == nil)
        #expect(variable(.init(keySet: .url("http://127.0.0.1:8080/jwks"))) == nil)
    }

    @Test func environmentSettingsAndTheirRefusals() throws {
        #expect(try SocketServerConfiguration(environment: ["SOCKET_TOKEN_SECRET": Self.secret]).jwt == nil)
        let directory = try TemporaryDirectory()
        let pem = directory.path("key.pem")
        try ES256PrivateKey().publicKey.pemRepresentation.write(toFile: pem, atomically: true, encoding: .utf8)
        let configuration = try #require(
            try SocketServerConfiguration(environment: [
                "SOCKET_JWT_PUBLIC_KEY": pem, "SOCKET_JWT_JWKS": "https://idp.example/jwks.json",
                "SOCKET_JWT_JWKS_REFRESH": "20", "SOCKET_JWT_ALGORITHMS": "es256, RS256",
                "SOCKET_JWT_AUDIENCE": "a, b", "SOCKET_JWT_ISSUER": "https://idp.example", "SOCKET_JWT_LEEWAY": "2.5",
                "SOCKET_JWT_USER_CLAIM": "email", "SOCKET_JWT_REQUIRE_EXP": "false",
            ]).jwt
        )
        #expect(configuration.publicKeyPEM?.contains("BEGIN PUBLIC KEY") == true)
        #expect(configuration.keySet == .url("https://idp.example/jwks.json"))
        #expect(configuration.keySetRefreshInterval == .seconds(20))
        #expect(configuration.keySetMinimumFetchInterval == .seconds(20))
        #expect(configuration.algorithms == [.es256, .rs256])
        #expect(configuration.audiences == ["a", "b"])
        #expect(configuration.issuer == "https://idp.example")
        #expect(configuration.leeway == .milliseconds(2500))
        #expect(configuration.userClaim == "email")
        #expect(configuration.requireExpiration == false)
        _ = try JWTAuthenticator(configuration: configuration)
        for (name, value) in [
            ("SOCKET_JWT_PUBLIC_KEY", "/nonexistent.pem"), ("SOCKET_JWT_JWKS", "/nonexistent.json"),
            ("SOCKET_JWT_JWKS_REFRESH", "0"), ("SOCKET_JWT_ALGORITHMS", "HS256,none"), ("SOCKET_JWT_ALGORITHMS", ","),
            ("SOCKET_JWT_LEEWAY", "-1"), ("SOCKET_JWT_REQUIRE_EXP", "sometimes"),
        ] {
            do {
                _ = try SocketServerConfiguration(environment: [name: value])
                Issue.record("\(name)=\(value) accepted")
            } catch {
                #expect(error.variable == name)
            }
        }
    }

    @Test func algorithmNames() {
        #expect(JWTAuthenticator.Algorithm(name: "rs256") == .rs256)
        #expect(JWTAuthenticator.Algorithm(name: "EdDSA") == .eddsa)
        #expect(JWTAuthenticator.Algorithm(name: "none") == nil)
        #expect(JWTAuthenticator.Algorithm(name: "PS256") == nil)
        #expect(JWTAuthenticator.Algorithm.all.count == 10)
    }
}

/// RSA keys made by the `openssl` CLI in a temporary directory.
enum OpenSSLKeys {
    struct RSA {
        var privatePEM: String
        var publicPEM: String
        var certificatePEM: String
    }

    static func rsa(bits: Int = 2048) async throws -> RSA {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jwt-rsa-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = directory.appendingPathComponent("key.pem").path
        let publicKey = directory.appendingPathComponent("public.pem").path
        let certificate = directory.appendingPathComponent("cert.pem").path
        try await self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:\(bits)", "-out", key])
        try await self.openssl(["pkey", "-in", key, "-pubout", "-out", publicKey])
        try await self.openssl([
            "req", "-new", "-x509", "-key", key, "-subj", "/CN=jwt-test", "-days", "1", "-out", certificate,
        ])
        return RSA(
            privatePEM: try String(contentsOfFile: key, encoding: .utf8),
            publicPEM: try String(contentsOfFile: publicKey, encoding: .utf8),
            certificatePEM: try String(contentsOfFile: certificate, encoding: .utf8)
        )
    }

    private static func openssl(_ arguments: [String]) async throws {
        let result = try await ChildProcess.run("/usr/bin/openssl", arguments)
        guard result.status == 0 else {
            throw OpenSSLError(arguments: arguments, status: result.status)
        }
    }

    struct OpenSSLError: Error {
        var arguments: [String]
        var status: Int32
    }
}
