public import Foundation
import JWTKit
public import Logging
import NIOConcurrencyHelpers
import NIOCore
public import SocketGatewayCore

/// Accepts clients whose `auth.token` is a JSON Web Token signed by a configured key, verified with vapor/jwt-kit.
///
/// Keys come from a shared secret (HS256/384/512), a PEM public key or certificate (RS256/384/512, ES256/384/512,
/// EdDSA) and/or a JSON Web Key Set (a file or an https URL, fetched again on an interval and when a token names an
/// unknown `kid`). The claims `exp` (required unless configured otherwise), `nbf`, `iss` and `aud` are checked at
/// the authenticator's clock with the leeway; the user id is a string claim (`sub` unless configured). A refused
/// client gets CONNECT_ERROR `Unauthorized`; the reason is logged at most once per 10 s (with a count of the
/// refusals not logged), never the token.
public struct JWTAuthenticator: SocketAuthenticator {
    /// The longest token verified (8 KiB, a common HTTP header limit); a longer one is `malformed` before any
    /// decoding.
    public static let maxTokenLength = 8192

    /// The shortest secret accepted: 32 bytes, the output of SHA-256. HS384 and HS512 tokens are accepted only with
    /// a secret of at least 48 and 64 bytes (RFC 7518 §3.2 requires a key at least as long as the hash).
    public static let minimumSecretBytes = 32

    /// A signature algorithm (`alg`) a token may use.
    public struct Algorithm: Hashable, Sendable, CustomStringConvertible {
        /// The name in a token's header, e.g. `RS256`.
        public let name: String

        private init(_ name: String) { self.name = name }

        /// HMAC with SHA-256 (a shared secret).
        public static let hs256 = Algorithm("HS256")
        /// HMAC with SHA-384.
        public static let hs384 = Algorithm("HS384")
        /// HMAC with SHA-512.
        public static let hs512 = Algorithm("HS512")
        /// RSASSA-PKCS1-v1_5 with SHA-256 (an RSA key of at least 2048 bits).
        public static let rs256 = Algorithm("RS256")
        /// RSASSA-PKCS1-v1_5 with SHA-384.
        public static let rs384 = Algorithm("RS384")
        /// RSASSA-PKCS1-v1_5 with SHA-512.
        public static let rs512 = Algorithm("RS512")
        /// ECDSA on P-256 with SHA-256.
        public static let es256 = Algorithm("ES256")
        /// ECDSA on P-384 with SHA-384.
        public static let es384 = Algorithm("ES384")
        /// ECDSA on P-521 with SHA-512.
        public static let es512 = Algorithm("ES512")
        /// Ed25519.
        public static let eddsa = Algorithm("EdDSA")

        /// Every algorithm the authenticator can verify.
        public static let all: [Algorithm] = [
            .hs256, .hs384, .hs512, .rs256, .rs384, .rs512, .es256, .es384, .es512, .eddsa,
        ]

        /// The algorithm named `name` (`RS256`, `rs256`, `EdDSA`…), or nil.
        public init?(name: String) {
            guard let found = Self.all.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
            self = found
        }

        /// The name in a token's header.
        public var description: String { self.name }

        var isHMAC: Bool { self.name.hasPrefix("HS") }

        /// The bytes of the algorithm's hash output (the shortest HMAC key it may use).
        var hashBytes: Int { self.name.hasSuffix("512") ? 64 : self.name.hasSuffix("384") ? 48 : 32 }
    }

    /// Where a JSON Web Key Set is read.
    public enum KeySetSource: Sendable, Hashable {
        /// A file holding `{"keys":[…]}`, read again at every refresh.
        case file(String)
        /// An `https://` URL (plain `http://` only on a loopback address), fetched with a GET.
        case url(String)
    }

    /// How tokens are verified.
    public struct Configuration: Sendable {
        /// The HMAC secret of HS256/384/512 tokens, at least 32 bytes (48 for HS384, 64 for HS512 tokens to be
        /// accepted); nil: no HMAC key.
        public var secret: String?
        /// A PEM public key or certificate (RSA, EC P-256/384/521 or Ed25519); nil: none.
        public var publicKeyPEM: String?
        /// A JSON Web Key Set; tokens signed with one of its keys name it with `kid`.
        public var keySet: KeySetSource?
        /// The algorithms accepted (default: all of ``Algorithm/all``; each key accepts only those that fit it).
        public var algorithms: Set<Algorithm>
        /// The audiences accepted: the token's `aud` (a string or a list) must name one. Empty (the default):
        /// `aud` is not checked.
        public var audiences: [String]
        /// The issuer accepted: the token's `iss` must equal it. nil (the default): `iss` is not checked.
        public var issuer: String?
        /// Clock skew tolerated for `exp` and `nbf` (default none).
        public var leeway: Duration
        /// The claim whose string value is the user id (default `sub`).
        public var userClaim: String
        /// Whether a token without `exp` is refused (default true: a token that never expires cannot be revoked).
        public var requireExpiration: Bool
        /// How old the key set may grow before the next connect fetches it again (default 5 minutes).
        public var keySetRefreshInterval: Duration
        /// The shortest time between two fetches of the key set, also for unknown `kid`s (default 30 s).
        public var keySetMinimumFetchInterval: Duration
        /// How long one fetch of the key set may take (default 5 s).
        public var keySetFetchTimeout: Duration

        /// Creates a configuration; give at least one of `secret`, `publicKeyPEM` and `keySet`.
        public init(
            secret: String? = nil,
            publicKeyPEM: String? = nil,
            keySet: KeySetSource? = nil,
            algorithms: Set<Algorithm> = Set(Algorithm.all),
            audiences: [String] = [],
            issuer: String? = nil,
            leeway: Duration = .zero,
            userClaim: String = "sub",
            requireExpiration: Bool = true,
            keySetRefreshInterval: Duration = .seconds(300),
            keySetMinimumFetchInterval: Duration = .seconds(30),
            keySetFetchTimeout: Duration = .seconds(5)
        ) {
            self.secret = secret
            self.publicKeyPEM = publicKeyPEM
            self.keySet = keySet
            self.algorithms = algorithms
            self.audiences = audiences
            self.issuer = issuer
            self.leeway = leeway
            self.userClaim = userClaim
            self.requireExpiration = requireExpiration
            self.keySetRefreshInterval = keySetRefreshInterval
            self.keySetMinimumFetchInterval = keySetMinimumFetchInterval
            self.keySetFetchTimeout = keySetFetchTimeout
        }
    }

    private let configuration: Configuration
    private let staticKeys: [StaticKey]
    private let keySet: JWKSKeyStore?
    private let now: @Sendable () -> Date
    private let logger: Logger
    private let refusalWarning: RateLimitedWarning

    /// Creates an authenticator from a configuration, checking every key and setting.
    /// - Parameters:
    ///   - configuration: Keys and claim rules.
    ///   - logger: Where refusals (rate-limited) and key set fetch failures are logged.
    ///   - now: The clock of `exp`/`nbf`; tests pass a fixed time.
    /// - Throws: ``SocketServerConfigurationError`` naming the setting that cannot be used (no key, a short secret,
    ///   a PEM that holds no public key, a bad key set URL, an algorithm set that fits no key, a negative leeway).
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "socket-gateway.jwt"),
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws(SocketServerConfigurationError) {
        var keys: [StaticKey] = []
        if let secret = configuration.secret {
            guard !secret.isEmpty else {
                throw SocketServerConfigurationError(
                    variable: "secret",
                    message: "the JWT secret is empty; set one, or run without authentication with allowAnonymous"
                )
            }
            let bytes = secret.utf8.count
            guard bytes >= Self.minimumSecretBytes else {
                throw SocketServerConfigurationError(
                    variable: "secret",
                    message: "is \(bytes) bytes; an HMAC key must be at least as long as the hash, 32 bytes for HS256 "
                        + "(RFC 7518 §3.2): use e.g. `openssl rand -base64 32`"
                )
            }
            keys.append(.hmac(HMACKey(from: secret), bytes: bytes))
        }
        if let pem = configuration.publicKeyPEM {
            keys.append(try StaticKey(pem: pem))
        }
        var store: JWKSKeyStore?
        if let source = configuration.keySet {
            let location: JWKSLocation
            switch source {
            case .file(let path):
                location = .file(path)
            case .url(let text):
                do {
                    location = .url(try JWKSURL(parsing: text))
                } catch {
                    throw SocketServerConfigurationError(variable: "keySet", message: error.message)
                }
            }
            for (name, interval) in [
                ("keySetRefreshInterval", configuration.keySetRefreshInterval),
                ("keySetMinimumFetchInterval", configuration.keySetMinimumFetchInterval),
                ("keySetFetchTimeout", configuration.keySetFetchTimeout),
            ] where interval <= .zero {
                throw SocketServerConfigurationError(variable: name, message: "must be positive, got \(interval)")
            }
            store = JWKSKeyStore(
                location: location,
                refreshInterval: TimeAmount(configuration.keySetRefreshInterval),
                minimumFetchInterval: TimeAmount(configuration.keySetMinimumFetchInterval),
                fetchTimeout: TimeAmount(configuration.keySetFetchTimeout),
                logger: logger
            )
        }
        guard !keys.isEmpty || store != nil else {
            throw SocketServerConfigurationError(
                variable: "keys",
                message: "no key to verify tokens with: set a secret, a PEM public key or a key set"
            )
        }
        guard !configuration.algorithms.isEmpty else {
            throw SocketServerConfigurationError(
                variable: "algorithms",
                message: "is empty: no token could be accepted"
            )
        }
        if store == nil, !keys.contains(where: { key in configuration.algorithms.contains(where: key.fits) }) {
            let names = configuration.algorithms.map(\.name).sorted().joined(separator: ", ")
            throw SocketServerConfigurationError(
                variable: "algorithms",
                message: "\(names) fit none of the configured keys (\(keys.map(\.kind).joined(separator: ", ")))"
            )
        }
        guard configuration.leeway >= .zero else {
            throw SocketServerConfigurationError(variable: "leeway", message: "must not be negative")
        }
        guard !configuration.userClaim.isEmpty else {
            throw SocketServerConfigurationError(variable: "userClaim", message: "is empty")
        }
        if configuration.audiences.contains(where: \.isEmpty) {
            throw SocketServerConfigurationError(variable: "audiences", message: "holds an empty audience")
        }
        self.configuration = configuration
        self.staticKeys = keys
        self.keySet = store
        self.logger = logger
        self.now = now
        self.refusalWarning = RateLimitedWarning(interval: .seconds(10))
    }

    /// Creates an authenticator of HS256/384/512 tokens signed with a shared secret, the user id in `sub`.
    /// - Parameters:
    ///   - secret: The HMAC secret tokens are signed with; at least ``minimumSecretBytes`` long.
    ///   - leeway: Clock skew tolerated for `exp` and `nbf`.
    ///   - requireExpiration: Whether a token without `exp` is refused (default true).
    ///   - logger: Where refusals are logged (rate-limited).
    ///   - now: The clock; tests pass a fixed time.
    /// - Throws: ``SocketServerConfigurationError`` for a secret shorter than ``minimumSecretBytes`` (an empty one
    ///   included). To run without authentication, say so with ``SocketServerConfiguration/allowAnonymous``.
    public init(
        secret: String,
        leeway: Duration = .zero,
        requireExpiration: Bool = true,
        logger: Logger = Logger(label: "socket-gateway.jwt"),
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws(SocketServerConfigurationError) {
        try self.init(
            configuration: Configuration(secret: secret, leeway: leeway, requireExpiration: requireExpiration),
            logger: logger,
            now: now
        )
    }

    /// Fetches the key set now (if one is configured), as `serve` does at startup.
    /// - Returns: Why the set could not be loaded, or nil when it was (or no set is configured).
    public func loadKeySet() async -> String? {
        await self.keySet?.load()
    }

    /// Verifies `auth.token` and returns the user; a refusal is logged (rate-limited) and answered with nil.
    public func authenticate(auth: JSONValue?, handshake: SocketHandshake) async -> AuthenticatedUser? {
        do {
            return try await self.verify(auth: auth)
        } catch {
            // The detail may quote what the peer sent (a claim, a kid, a decoder message): escaped and cut.
            var metadata: Logger.Metadata = [
                "reason": "\(error.code)", "detail": "\(LogSafe.text(error.detail, limit: 300))",
            ]
            if let address = handshake.remoteAddress { metadata["peer"] = "\(address)" }
            self.refusalWarning.log(self.logger, "socket.io client refused: invalid token", metadata: metadata)
            return nil
        }
    }

    /// Verifies `auth.token` and returns the user, or throws why not.
    /// - Throws: `JWTError`.
    public func verify(auth: JSONValue?) async throws(JWTError) -> AuthenticatedUser {
        guard case .string(let token)? = auth?["token"] else {
            throw JWTError(code: .malformed, detail: "auth.token is missing or not a string")
        }
        let claims = try await self.verify(token: token)
        guard case .string(let id)? = claims[self.configuration.userClaim], !id.isEmpty else {
            throw JWTError(
                code: .missingSubject,
                detail: "claim \(LogSafe.text(self.configuration.userClaim, limit: 64)) is missing or not a string"
            )
        }
        return AuthenticatedUser(id: id, claims: claims)
    }

    /// Verifies `token`'s signature and claims and returns the claims (a JSON object).
    /// - Throws: `JWTError`.
    public func verify(token: String) async throws(JWTError) -> JSONValue {
        guard token.utf8.count <= Self.maxTokenLength else {
            throw JWTError(
                code: .malformed,
                detail: "token is \(token.utf8.count) bytes, more than \(Self.maxTokenLength)"
            )
        }
        let header = try Self.header(of: token)
        guard let algorithm = Algorithm(name: header.alg), algorithm.name == header.alg,
            self.configuration.algorithms.contains(algorithm)
        else {
            let accepted = self.configuration.algorithms.map(\.name).sorted().joined(separator: ", ")
            throw JWTError(
                code: .unsupportedAlgorithm,
                detail: "alg \(LogSafe.text(header.alg, limit: 32)) is not accepted; accepted: \(accepted)"
            )
        }
        let keys: JWTKeyCollection
        if let kid = header.kid, let keySet = self.keySet {
            keys = try await keySet.keys(for: kid, algorithm: algorithm)
        } else if let key = self.staticKeys.first(where: { $0.fits(algorithm) }) {
            keys = await key.collection(for: algorithm)
        } else {
            throw JWTError(
                code: header.kid == nil && self.keySet != nil ? .unknownKey : .unsupportedAlgorithm,
                detail: header.kid == nil && self.keySet != nil
                    ? "the token has no kid and no static key fits \(algorithm)"
                    : "no configured key fits \(algorithm)"
                        + (algorithm.isHMAC ? " (its HMAC secret needs \(algorithm.hashBytes) bytes)" : "")
            )
        }
        let claims: JSONValue
        do {
            claims = try await keys.verify(token, as: JWTClaimsPayload.self).claims
        } catch let error as JWTKit.JWTError {
            throw JWTError(
                code: error.errorType == .signatureVerificationFailed ? .badSignature : .malformed,
                detail: error.errorType == .signatureVerificationFailed
                    ? "signature does not match the \(algorithm) key" : "\(error.errorType): \(error.reason ?? "")"
            )
        } catch {
            throw JWTError(code: .malformed, detail: "\(error)")
        }
        try self.check(claims, at: self.now())
        return claims
    }

    /// Checks `exp`, `nbf`, `iss` and `aud` at `now`.
    private func check(_ claims: JSONValue, at now: Date) throws(JWTError) {
        guard case .object = claims else {
            throw JWTError(code: .malformed, detail: "the payload is not a JSON object")
        }
        let nowSeconds = now.timeIntervalSince1970
        let leeway = self.configuration.leeway
        let leewaySeconds = Double(leeway.components.seconds) + Double(leeway.components.attoseconds) / 1e18
        if let exp = claims["exp"] {
            guard let expiry = exp.doubleValue else {
                throw JWTError(code: .malformed, detail: "exp is not a number")
            }
            if nowSeconds >= expiry + leewaySeconds {
                throw JWTError(code: .expired, detail: "expired at \(expiry), now \(nowSeconds)")
            }
        } else if self.configuration.requireExpiration {
            throw JWTError(code: .missingExpiration, detail: "the token has no exp")
        }
        if let nbf = claims["nbf"] {
            guard let notBefore = nbf.doubleValue else {
                throw JWTError(code: .malformed, detail: "nbf is not a number")
            }
            if nowSeconds + leewaySeconds < notBefore {
                throw JWTError(code: .notYetValid, detail: "not valid before \(notBefore), now \(nowSeconds)")
            }
        }
        if let issuer = self.configuration.issuer {
            guard case .string(let actual)? = claims["iss"], actual == issuer else {
                throw JWTError(
                    code: .wrongIssuer,
                    detail: "iss \(claims["iss"].map { LogSafe.text($0.jsonString, limit: 80) } ?? "missing")"
                )
            }
        }
        if !self.configuration.audiences.isEmpty {
            let audiences: [String]
            switch claims["aud"] {
            case .string(let audience)?: audiences = [audience]
            case .array(let values)?: audiences = values.compactMap(\.stringValue)
            default: audiences = []
            }
            guard audiences.contains(where: self.configuration.audiences.contains) else {
                throw JWTError(
                    code: .wrongAudience,
                    detail: "aud \(claims["aud"].map { LogSafe.text($0.jsonString, limit: 80) } ?? "missing")"
                )
            }
        }
    }

    /// The header fields that pick the key, decoded without trusting them.
    private static func header(of token: String) throws(JWTError) -> (alg: String, kid: String?) {
        guard let dot = token.firstIndex(of: "."),
            let bytes = Base64.decode(urlSafe: token[..<dot]),
            let header = try? JSONValue.parse(bytes),
            case .object = header
        else {
            throw JWTError(code: .malformed, detail: "the header is not a base64url JSON object")
        }
        guard case .string(let alg)? = header["alg"] else {
            throw JWTError(code: .unsupportedAlgorithm, detail: "the header has no alg")
        }
        switch header["kid"] {
        case nil, .null?: return (alg, nil)
        case .string(let kid)?: return (alg, kid)
        default: throw JWTError(code: .malformed, detail: "the header's kid is not a string")
        }
    }
}

/// A token's payload as JSON; jwt-kit verifies the signature, ``JWTAuthenticator`` the claims at its clock.
struct JWTClaimsPayload: JWTPayload {
    var claims: JSONValue

    init(from decoder: any Decoder) throws {
        self.claims = try JSONValue(from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        try self.claims.encode(to: encoder)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A key given as a secret or a PEM, with the algorithms it fits.
private enum StaticKey: Sendable {
    case hmac(HMACKey, bytes: Int)
    case rsa(JWTKit.Insecure.RSA.PublicKey)
    case es256(ES256PublicKey)
    case es384(ES384PublicKey)
    case es512(ES512PublicKey)
    case eddsa(EdDSA.PublicKey)

    /// Parses a PEM public key or certificate.
    init(pem: String) throws(SocketServerConfigurationError) {
        if pem.contains("PRIVATE KEY-----") {
            throw SocketServerConfigurationError(
                variable: "publicKeyPEM",
                message: "holds a private key; give the public key or the certificate (the server never signs)"
            )
        }
        if pem.contains("-----BEGIN CERTIFICATE-----") {
            if let key = try? JWTKit.Insecure.RSA.PublicKey(certificatePEM: pem) {
                self = .rsa(key)
                return
            }
            if let key = try? ES256PublicKey(certificate: pem) {
                self = .es256(key)
                return
            }
            if let key = try? ES384PublicKey(certificate: pem) {
                self = .es384(key)
                return
            }
            if let key = try? ES512PublicKey(certificate: pem) {
                self = .es512(key)
                return
            }
        } else {
            if let key = try? JWTKit.Insecure.RSA.PublicKey(pem: pem) {
                self = .rsa(key)
                return
            }
            if let key = try? ES256PublicKey(pem: pem) {
                self = .es256(key)
                return
            }
            if let key = try? ES384PublicKey(pem: pem) {
                self = .es384(key)
                return
            }
            if let key = try? ES512PublicKey(pem: pem) {
                self = .es512(key)
                return
            }
            if let key = try? EdDSA.PublicKey(pem: pem) {
                self = .eddsa(key)
                return
            }
        }
        throw SocketServerConfigurationError(
            variable: "publicKeyPEM",
            message: "holds no RSA (2048 bits or more), EC P-256/384/521 or Ed25519 public key or certificate"
        )
    }

    /// What kind of key it is, for messages.
    var kind: String {
        switch self {
        case .hmac: "HMAC secret"
        case .rsa: "RSA key"
        case .es256: "EC P-256 key"
        case .es384: "EC P-384 key"
        case .es512: "EC P-521 key"
        case .eddsa: "Ed25519 key"
        }
    }

    /// Whether tokens signed with `algorithm` can be verified with this key.
    func fits(_ algorithm: JWTAuthenticator.Algorithm) -> Bool {
        switch self {
        case .hmac(_, let bytes): algorithm.isHMAC && bytes >= algorithm.hashBytes
        case .rsa: [.rs256, .rs384, .rs512].contains(algorithm)
        case .es256: algorithm == .es256
        case .es384: algorithm == .es384
        case .es512: algorithm == .es512
        case .eddsa: algorithm == .eddsa
        }
    }

    /// A jwt-kit key collection holding only this key, for `algorithm` (which it fits).
    func collection(for algorithm: JWTAuthenticator.Algorithm) async -> JWTKeyCollection {
        let keys = JWTKeyCollection()
        switch self {
        case .hmac(let key, _):
            let digest: DigestAlgorithm = algorithm == .hs512 ? .sha512 : algorithm == .hs384 ? .sha384 : .sha256
            await keys.add(hmac: key, digestAlgorithm: digest)
        case .rsa(let key):
            let digest: DigestAlgorithm = algorithm == .rs512 ? .sha512 : algorithm == .rs384 ? .sha384 : .sha256
            await keys.add(rsa: key, digestAlgorithm: digest)
        case .es256(let key): await keys.add(ecdsa: key)
        case .es384(let key): await keys.add(ecdsa: key)
        case .es512(let key): await keys.add(ecdsa: key)
        case .eddsa(let key): await keys.add(eddsa: key)
        }
        return keys
    }
}
