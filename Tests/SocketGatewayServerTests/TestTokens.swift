import Foundation
import JWTKit
import SocketGatewayCore
import SocketGatewayServer

/// Tokens minted with jwt-kit, as an application's token endpoint or an identity provider does.
enum TestTokens {
    /// Any JSON object as a jwt-kit payload (claims are checked by the authenticator under test, not here).
    struct Payload: JWTPayload {
        var claims: JSONValue

        init(_ claims: JSONValue) { self.claims = claims }
        init(from decoder: any Decoder) throws { self.claims = try JSONValue(from: decoder) }
        func encode(to encoder: any Encoder) throws { try self.claims.encode(to: encoder) }
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// Signs `claims` with the default key of `keys` (or the one named `kid`, which goes into the header).
    static func sign(_ claims: JSONValue, with keys: JWTKeyCollection, kid: String? = nil) async throws -> String {
        try await keys.sign(Payload(claims), kid: kid.map { JWKIdentifier(string: $0) })
    }

    /// An HS256 token with `claims`; `exp` an hour from now is added when `claims` has none.
    static func hs256(_ claims: JSONValue, secret: String) async throws -> String {
        var claims = claims
        if claims["exp"] == nil, case .object(var pairs) = claims {
            pairs.append((key: "exp", value: .int(Int64(Date().timeIntervalSince1970) + 3600)))
            claims = .object(pairs)
        }
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await Self.sign(claims, with: keys)
    }

    /// A CONNECT `auth` payload's text, `{"token":"…"}`, with an HS256 token of user `user` (in `sub`) expiring an
    /// hour from now.
    static func auth(user: String, secret: String) async throws -> String {
        #"{"token":"\#(try await Self.hs256(["sub": .string(user)], secret: secret))"}"#
    }
}

/// The server's refusal reason (jwt-kit has a `JWTError` of its own).
typealias JWTError = SocketGatewayServer.JWTError
