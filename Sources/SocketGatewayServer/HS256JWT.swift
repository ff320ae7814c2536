import Crypto
public import Foundation
public import SocketGatewayCore

/// Why a JSON Web Token was refused.
public struct JWTError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case malformed, unsupportedAlgorithm, badSignature, expired, notYetValid, missingSubject, emptySecret
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The token is not three base64url parts holding JSON objects, or is longer than
        /// ``HS256JWT/maxTokenLength``.
        public static let malformed = Code(.malformed)
        /// The header's `alg` is not `HS256` (`none` included).
        public static let unsupportedAlgorithm = Code(.unsupportedAlgorithm)
        /// The signature does not match the secret.
        public static let badSignature = Code(.badSignature)
        /// `exp` is in the past (beyond the leeway).
        public static let expired = Code(.expired)
        /// `nbf` is in the future (beyond the leeway).
        public static let notYetValid = Code(.notYetValid)
        /// The claims have no string `sub`.
        public static let missingSubject = Code(.missingSubject)
        /// The secret to sign or verify with is empty: anyone could forge such a token, so none is made or accepted.
        public static let emptySecret = Code(.emptySecret)

        /// The text shown when this value is printed or logged.
        public var description: String { "\(self.base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// What exactly was wrong.
    public var detail: String

    /// Creates an error.
    public init(code: Code, detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The text shown when this value is printed or logged.
    public var description: String { "JWT refused (\(self.code)): \(self.detail)" }
}

/// JSON Web Tokens signed with HMAC-SHA256 (`alg: HS256`), the only algorithm this server accepts.
public enum HS256JWT {
    /// The longest token `verify` reads (8 KiB, a common HTTP header limit); a longer one is `malformed` before any
    /// decoding or hashing.
    public static let maxTokenLength = 8192

    /// Signs `claims` (a JSON object) with `secret`.
    /// - Parameters:
    ///   - claims: The payload, e.g. `{"sub":"42","exp":1700000000}`.
    ///   - secret: The shared HMAC secret; must not be empty.
    /// - Returns: The compact token `header.payload.signature`.
    /// - Throws: `JWTError` with code `emptySecret` for an empty secret.
    public static func sign(claims: JSONValue, secret: String) throws(JWTError) -> String {
        guard !secret.isEmpty else {
            throw JWTError(code: .emptySecret, detail: "refusing to sign with an empty secret")
        }
        let header = Base64.encodeToString(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8), urlSafe: true)
        let payload = Base64.encodeToString(Array(claims.jsonString.utf8), urlSafe: true)
        let signingInput = header + "." + payload
        let key = SymmetricKey(data: Array(secret.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: key)
        return signingInput + "." + Base64.encodeToString(Array(mac), urlSafe: true)
    }

    /// Verifies `token` and returns its claims.
    ///
    /// The header's `alg` must be `HS256`; the signature is compared in constant time; `exp` and `nbf`, when
    /// present, are checked against `now` with `leeway`.
    /// - Parameters:
    ///   - token: The compact token.
    ///   - secret: The shared HMAC secret.
    ///   - now: The current time.
    ///   - leeway: Clock skew tolerated for `exp` and `nbf`.
    /// - Returns: The claims (a JSON object).
    /// - Throws: `JWTError`; `emptySecret` for an empty secret, whatever the token.
    public static func verify(
        _ token: String,
        secret: String,
        now: Date,
        leeway: Duration = .zero
    ) throws(JWTError) -> JSONValue {
        guard !secret.isEmpty else {
            throw JWTError(code: .emptySecret, detail: "refusing to verify with an empty secret")
        }
        guard token.utf8.count <= Self.maxTokenLength else {
            throw JWTError(
                code: .malformed,
                detail: "token is \(token.utf8.count) bytes, more than \(Self.maxTokenLength)"
            )
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw JWTError(code: .malformed, detail: "expected 3 dot-separated parts, found \(parts.count)")
        }
        guard let headerBytes = Base64.decode(urlSafe: parts[0]), let header = try? JSONValue.parse(headerBytes),
            case .object = header
        else {
            throw JWTError(code: .malformed, detail: "header is not a base64url JSON object")
        }
        guard case .string(let algorithm)? = header["alg"] else {
            throw JWTError(code: .unsupportedAlgorithm, detail: "header has no alg")
        }
        guard algorithm == "HS256" else {
            throw JWTError(
                code: .unsupportedAlgorithm,
                detail: "alg \(LogSafe.text(algorithm, limit: 32)) is not accepted; only HS256 is"
            )
        }
        guard let signature = Base64.decode(urlSafe: parts[2]) else {
            throw JWTError(code: .malformed, detail: "signature is not base64url")
        }
        let key = SymmetricKey(data: Array(secret.utf8))
        let signingInput = token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: Array(signingInput), using: key) else {
            throw JWTError(code: .badSignature, detail: "signature does not match")
        }
        guard let payloadBytes = Base64.decode(urlSafe: parts[1]), let claims = try? JSONValue.parse(payloadBytes),
            case .object = claims
        else {
            throw JWTError(code: .malformed, detail: "payload is not a base64url JSON object")
        }
        let nowSeconds = now.timeIntervalSince1970
        let leewaySeconds = Double(leeway.components.seconds) + Double(leeway.components.attoseconds) / 1e18
        if let exp = claims["exp"] {
            guard let expiry = exp.doubleValue else {
                throw JWTError(code: .malformed, detail: "exp is not a number")
            }
            if nowSeconds >= expiry + leewaySeconds {
                throw JWTError(code: .expired, detail: "expired at \(expiry), now \(nowSeconds)")
            }
        }
        if let nbf = claims["nbf"] {
            guard let notBefore = nbf.doubleValue else {
                throw JWTError(code: .malformed, detail: "nbf is not a number")
            }
            if nowSeconds + leewaySeconds < notBefore {
                throw JWTError(code: .notYetValid, detail: "not valid before \(notBefore), now \(nowSeconds)")
            }
        }
        return claims
    }
}
