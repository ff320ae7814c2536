import Foundation
import SocketGatewayCore
import Testing

@testable import SocketGatewayServer

@Suite struct JWTTests {
    let secret = "s3cret-for-tests"
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    private func authenticator(leeway: Duration = .zero) -> JWTAuthenticator {
        let fixed = self.now
        return JWTAuthenticator(secret: self.secret, leeway: leeway, now: { fixed })
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
        let token = HS256JWT.sign(claims: claims, secret: self.secret)
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
        let token = HS256JWT.sign(claims: ["sub": "42"], secret: "other-secret")
        #expect(self.code { _ = try HS256JWT.verify(token, secret: self.secret, now: self.now) } == .badSignature)
        // A payload swapped under a valid signature is refused too.
        let good = HS256JWT.sign(claims: ["sub": "42"], secret: self.secret).split(separator: ".")
        let forgedPayload = Base64URL.encode(Array(#"{"sub":"1"}"#.utf8))
        let forged = "\(good[0]).\(forgedPayload).\(good[2])"
        #expect(self.code { _ = try HS256JWT.verify(forged, secret: self.secret, now: self.now) } == .badSignature)
    }

    @Test func expiredIsRefusedUnlessWithinLeeway() throws {
        let token = HS256JWT.sign(claims: ["sub": "42", "exp": .int(1_799_999_990)], secret: self.secret)
        #expect(self.code { _ = try self.authenticator().verify(auth: ["token": .string(token)]) } == .expired)
        let user = try self.authenticator(leeway: .seconds(30)).verify(auth: ["token": .string(token)])
        #expect(user.id == "42")
    }

    @Test func notBeforeIsHonoured() {
        let token = HS256JWT.sign(claims: ["sub": "42", "nbf": .int(1_800_000_100)], secret: self.secret)
        #expect(self.code { _ = try HS256JWT.verify(token, secret: self.secret, now: self.now) } == .notYetValid)
    }

    @Test func algNoneIsRefused() {
        let header = Base64URL.encode(Array(#"{"alg":"none","typ":"JWT"}"#.utf8))
        let payload = Base64URL.encode(Array(#"{"sub":"42"}"#.utf8))
        #expect(self.code { _ = try HS256JWT.verify("\(header).\(payload).", secret: self.secret, now: self.now) } == .unsupportedAlgorithm)
        let hs512 = Base64URL.encode(Array(#"{"alg":"HS512"}"#.utf8))
        #expect(self.code { _ = try HS256JWT.verify("\(hs512).\(payload).AAAA", secret: self.secret, now: self.now) } == .unsupportedAlgorithm)
    }

    @Test func missingSubjectIsRefused() {
        let token = HS256JWT.sign(claims: ["name": "nobody"], secret: self.secret)
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
        let user = await self.authenticator().authenticate(auth: ["token": "nope"], handshake: SocketHandshake(auth: nil))
        #expect(user == nil)
    }
}
