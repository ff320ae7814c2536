import Crypto
import Foundation
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

@Suite struct JWTTests {
    let secret = "s3cret-for-tests"
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    private func authenticator(leeway: Duration = .zero) -> JWTAuthenticator {
        let fixed = self.now
        // The secret is not empty, so this cannot throw.
        return try! JWTAuthenticator(secret: self.secret, leeway: leeway, now: { fixed })
    }

    private func sign(_ claims: JSONValue, secret: String? = nil) -> String {
        // The secrets here are not empty, so this cannot throw.
        try! HS256JWT.sign(claims: claims, secret: secret ?? self.secret)
    }

    private func code(_ body: () throws -> Void) -> JWTError.Code? {
        do {
            try body()
            return nil
        } catch let error as JWTError {
            return error.code
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func signThenVerifyGivesTheClaims() throws {
        let claims: JSONValue = ["sub": "42", "exp": .int(1_800_000_060), "role": "admin"]
        let token = self.sign(claims)
        #expect(token.split(separator: ".").count == 3)
        #expect(!token.contains("="))
        let verified = try HS256JWT.verify(token, secret: self.secret, now: self.now)
        #expect(verified == claims)
        let user = try self.authenticator().verify(auth: ["token": .string(token)])
        #expect(user == AuthenticatedUser(id: "42", claims: claims))
    }

    @Test func knownTokenFromAnotherImplementation() throws {
        // Token from jwt.io's HS256 example, secret "your-256-bit-secret".
        let token =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        let claims = try HS256JWT.verify(token, secret: "your-256-bit-secret", now: self.now)
        #expect(claims["sub"] == "1234567890")
        #expect(claims["iat"] == .int(1_516_239_022))
    }

    @Test func badSignatureIsRefused() {
        let token = self.sign(["sub": "42"], secret: "other-secret")
        #expect(self.code { _ = try HS256JWT.verify(token, secret: self.secret, now: self.now) } == .badSignature)
        // A payload swapped under a valid signature is refused too.
        let good = self.sign(["sub": "42"]).split(separator: ".")
        let forgedPayload = Base64.encodeToString(Array(#"{"sub":"1"}"#.utf8), urlSafe: true)
        let forged = "\(good[0]).\(forgedPayload).\(good[2])"
        #expect(self.code { _ = try HS256JWT.verify(forged, secret: self.secret, now: self.now) } == .badSignature)
    }

    @Test func expiredIsRefusedUnlessWithinLeeway() throws {
        let token = self.sign(["sub": "42", "exp": .int(1_799_999_990)])
        #expect(self.code { _ = try self.authenticator().verify(auth: ["token": .string(token)]) } == .expired)
        let user = try self.authenticator(leeway: .seconds(30)).verify(auth: ["token": .string(token)])
        #expect(user.id == "42")
    }

    @Test func notBeforeIsHonoured() {
        let token = self.sign(["sub": "42", "nbf": .int(1_800_000_100)])
        #expect(self.code { _ = try HS256JWT.verify(token, secret: self.secret, now: self.now) } == .notYetValid)
    }

    @Test func algNoneIsRefused() {
        let header = Base64.encodeToString(Array(#"{"alg":"none","typ":"JWT"}"#.utf8), urlSafe: true)
        let payload = Base64.encodeToString(Array(#"{"sub":"42"}"#.utf8), urlSafe: true)
        #expect(
            self.code { _ = try HS256JWT.verify("\(header).\(payload).", secret: self.secret, now: self.now) }
                == .unsupportedAlgorithm
        )
        let hs512 = Base64.encodeToString(Array(#"{"alg":"HS512"}"#.utf8), urlSafe: true)
        #expect(
            self.code { _ = try HS256JWT.verify("\(hs512).\(payload).AAAA", secret: self.secret, now: self.now) }
                == .unsupportedAlgorithm
        )
    }

    @Test func missingSubjectIsRefused() {
        let token = self.sign(["name": "nobody"])
        #expect(self.code { _ = try self.authenticator().verify(auth: ["token": .string(token)]) } == .missingSubject)
    }

    @Test func malformedTokensAreRefused() {
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.??.**"] {
            #expect(self.code { _ = try HS256JWT.verify(token, secret: self.secret, now: self.now) } == .malformed)
        }
        #expect(self.code { _ = try self.authenticator().verify(auth: nil) } == .malformed)
        #expect(self.code { _ = try self.authenticator().verify(auth: ["token": 5]) } == .malformed)
    }

    @Test func authenticatorReturnsNilOnRefusal() async {
        let user = await self.authenticator().authenticate(
            auth: ["token": "nope"],
            handshake: SocketHandshake(auth: nil)
        )
        #expect(user == nil)
    }

    // MARK: Hardening

    @Test func emptySecretIsRefusedEverywhere() {
        #expect(throws: SocketServerConfigurationError.self) { try JWTAuthenticator(secret: "") }
        #expect(self.code { _ = try HS256JWT.sign(claims: ["sub": "42"], secret: "") } == .emptySecret)
        // A token signed with an empty key (made by hand here) proves nothing: refused before it is read.
        let header = Base64.encodeToString(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8), urlSafe: true)
        let payload = Base64.encodeToString(Array(#"{"sub":"42"}"#.utf8), urlSafe: true)
        let token =
            "\(header).\(payload).\(base64url(hmacSHA256(key: [], message: Array("\(header).\(payload)".utf8))))"
        #expect(self.code { _ = try HS256JWT.verify(token, secret: "", now: self.now) } == .emptySecret)
        #expect(self.code { _ = try HS256JWT.verify(token, secret: self.secret, now: self.now) } == .badSignature)
    }

    @Test func expiryBoundariesAndLeeway() throws {
        // exp is exclusive: a token expiring exactly now is expired.
        let atNow = self.sign(["sub": "42", "exp": .int(1_800_000_000)])
        #expect(self.code { _ = try HS256JWT.verify(atNow, secret: self.secret, now: self.now) } == .expired)
        let inOneSecond = self.sign(["sub": "42", "exp": .int(1_800_000_001)])
        #expect(try HS256JWT.verify(inOneSecond, secret: self.secret, now: self.now)["sub"] == "42")
        // nbf within the leeway is accepted, beyond it refused.
        let soon = self.sign(["sub": "42", "nbf": .int(1_800_000_020)])
        #expect(try self.authenticator(leeway: .seconds(30)).verify(auth: ["token": .string(soon)]).id == "42")
        #expect(
            self.code { _ = try self.authenticator(leeway: .seconds(10)).verify(auth: ["token": .string(soon)]) }
                == .notYetValid
        )
        // exp and nbf must be numbers.
        #expect(
            self.code {
                _ = try HS256JWT.verify(
                    self.sign(["sub": "42", "exp": "tomorrow"]),
                    secret: self.secret,
                    now: self.now
                )
            } == .malformed
        )
        #expect(
            self.code {
                _ = try HS256JWT.verify(self.sign(["sub": "42", "nbf": ["x"]]), secret: self.secret, now: self.now)
            } == .malformed
        )
    }

    @Test func algorithmMustBeExactlyHS256() {
        let payload = Base64.encodeToString(Array(#"{"sub":"42"}"#.utf8), urlSafe: true)
        for header in [
            #"{"alg":"hs256"}"#, #"{"alg":"HS512","typ":"JWT"}"#, #"{"alg":"none"}"#, #"{"alg":null}"#,
            #"{"typ":"JWT"}"#, #"{"alg":["HS256"]}"#,
        ] {
            let encoded = Base64.encodeToString(Array(header.utf8), urlSafe: true)
            // Even with a signature that HS256 with the right secret would accept, the header decides first.
            let signature = base64url(
                hmacSHA256(key: Array(self.secret.utf8), message: Array("\(encoded).\(payload)".utf8))
            )
            #expect(
                self.code {
                    _ = try HS256JWT.verify("\(encoded).\(payload).\(signature)", secret: self.secret, now: self.now)
                } == .unsupportedAlgorithm,
                "\(header)"
            )
        }
    }

    @Test func refusalsAreLogSafe() {
        // The authenticator logs the refusal: an alg the client wrote must not break the log line.
        let header = Base64.encodeToString(Array(#"{"alg":"HS256\nforged log line \u001b[31m"}"#.utf8), urlSafe: true)
        let payload = Base64.encodeToString(Array(#"{"sub":"42"}"#.utf8), urlSafe: true)
        do {
            _ = try HS256JWT.verify("\(header).\(payload).AAAA", secret: self.secret, now: self.now)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .unsupportedAlgorithm)
            #expect(!error.description.contains("\n") && !error.description.contains("\u{1B}"), "\(error)")
        }
    }

    @Test func malformedBase64IsRefused() {
        let good = self.sign(["sub": "42"]).split(separator: ".").map(String.init)
        for token in [
            "\(good[0])=.\(good[1]).\(good[2])",  // padding
            "\(good[0]).\(good[1]).\(good[2])=",
            // The standard alphabet instead of base64url.
            "\(good[0]).\(good[1]).\(good[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"))+/",
            "\(good[0]).\(good[1]).A",  // a length no base64 has (4n + 1)
            "\(good[0]).\(good[1]).\(good[2])\u{00e9}",
            "e30.e30.",  // {} header: no alg
            "bm90IGpzb24.\(good[1]).\(good[2])",  // "not json"
            "W10.\(good[1]).\(good[2])",  // [] header
        ] {
            let code = self.code { _ = try HS256JWT.verify(token, secret: self.secret, now: self.now) }
            #expect(
                code == .malformed || code == .unsupportedAlgorithm || code == .badSignature,
                "\(token): \(String(describing: code))"
            )
            #expect(code != nil)
        }
        #expect(
            self.code { _ = try HS256JWT.verify("\(good[0]).\(good[1]).A", secret: self.secret, now: self.now) }
                == .malformed
        )
        #expect(
            self.code {
                _ = try HS256JWT.verify("bm90IGpzb24.\(good[1]).\(good[2])", secret: self.secret, now: self.now)
            } == .malformed
        )
        // A payload that is not JSON under a valid signature is malformed, not accepted.
        let header = good[0]
        let notJSON = Base64.encodeToString(Array("not json".utf8), urlSafe: true)
        let signature = base64url(hmacSHA256(key: Array(self.secret.utf8), message: Array("\(header).\(notJSON)".utf8)))
        #expect(
            self.code {
                _ = try HS256JWT.verify("\(header).\(notJSON).\(signature)", secret: self.secret, now: self.now)
            } == .malformed
        )
    }

    @Test func hugeTokenIsRefusedBeforeItIsRead() {
        // A validly signed token just over the limit is refused on its length alone.
        let padding = String(repeating: "x", count: HS256JWT.maxTokenLength)
        let huge = self.sign(["sub": "42", "pad": .string(padding)])
        #expect(huge.utf8.count > HS256JWT.maxTokenLength)
        #expect(self.code { _ = try HS256JWT.verify(huge, secret: self.secret, now: self.now) } == .malformed)
        #expect(
            self.code {
                _ = try HS256JWT.verify(String(repeating: "a", count: 1 << 20), secret: self.secret, now: self.now)
            } == .malformed
        )
        // A large token within the limit still verifies.
        let large = self.sign(["sub": "42", "pad": .string(String(repeating: "x", count: 4000))])
        #expect(large.utf8.count <= HS256JWT.maxTokenLength)
        #expect(self.code { _ = try HS256JWT.verify(large, secret: self.secret, now: self.now) } == nil)
    }
}

/// HMAC-SHA256 computed independently of `HS256JWT`, to make tokens it would refuse to sign.
private func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
    Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
}

/// base64url without padding, as JWTs write it (the package's one base64).
private func base64url(_ bytes: [UInt8]) -> String { Base64.encodeToString(bytes, urlSafe: true) }
