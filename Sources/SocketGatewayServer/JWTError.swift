/// Why a JSON Web Token was refused. The client is told only `Unauthorized`; this goes to the log.
public struct JWTError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case malformed, unsupportedAlgorithm, badSignature, expired, notYetValid, missingSubject, emptySecret
            case unknownKey, missingExpiration, wrongAudience, wrongIssuer
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The token is not three base64url parts holding JSON objects, a claim has the wrong type, or the token is
        /// longer than ``JWTAuthenticator/maxTokenLength``.
        public static let malformed = Code(.malformed)
        /// The header's `alg` is not one of the configured algorithms (`none` never is), or does not fit the key.
        public static let unsupportedAlgorithm = Code(.unsupportedAlgorithm)
        /// The signature does not match the key.
        public static let badSignature = Code(.badSignature)
        /// `exp` is in the past (beyond the leeway).
        public static let expired = Code(.expired)
        /// `nbf` is in the future (beyond the leeway).
        public static let notYetValid = Code(.notYetValid)
        /// The claim that names the user (``JWTAuthenticator/Configuration/userClaim``, `sub` by default) is
        /// missing, empty or not a string.
        public static let missingSubject = Code(.missingSubject)
        /// The secret to sign or verify with is empty: anyone could forge such a token, so none is accepted.
        public static let emptySecret = Code(.emptySecret)
        /// No configured key fits the token: its `kid` is not in the key set (after a refresh), or it has no `kid`
        /// and only a key set is configured.
        public static let unknownKey = Code(.unknownKey)
        /// The token has no `exp` and ``JWTAuthenticator/Configuration/requireExpiration`` is on.
        public static let missingExpiration = Code(.missingExpiration)
        /// The token's `aud` names none of the configured audiences.
        public static let wrongAudience = Code(.wrongAudience)
        /// The token's `iss` is not the configured issuer.
        public static let wrongIssuer = Code(.wrongIssuer)

        /// The text shown when this value is printed or logged.
        public var description: String { "\(self.base)" }
    }

    /// The kind of failure.
    public var code: Code
    /// What exactly was wrong (never the token).
    public var detail: String

    /// Creates an error.
    public init(code: Code, detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The text shown when this value is printed or logged.
    public var description: String { "JWT refused (\(self.code)): \(self.detail)" }
}
