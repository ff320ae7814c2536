import Foundation
import JWTKit
import Logging
import NIOCore
import SocketGatewayCore

/// A JSON Web Key Set, fetched when first needed and again as ``JWKSRefreshStateMachine`` decides; the fetch runs
/// inside the authentication that needs it (so it belongs to that connection's task) and callers that need a new
/// key wait for it, bounded by the fetch timeout. A failed fetch keeps the last good set and is logged.
actor JWKSKeyStore {
    /// One usable key of the set.
    private struct Key {
        /// The one algorithm the key verifies: its `alg`, or the one its type implies (an RSA key without `alg`
        /// is taken as RS256).
        var algorithm: JWTAuthenticator.Algorithm
    }

    /// A loaded set: jwt-kit's collection and what it holds, by `kid`.
    private struct LoadedSet {
        var collection: JWTKeyCollection
        var keys: [String: Key]
    }

    private let location: JWKSLocation
    private let fetchTimeout: TimeAmount
    private let logger: Logger
    private var machine: JWKSRefreshStateMachine
    private var current: LoadedSet?
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(
        location: JWKSLocation,
        refreshInterval: TimeAmount,
        minimumFetchInterval: TimeAmount,
        fetchTimeout: TimeAmount,
        logger: Logger
    ) {
        self.location = location
        self.fetchTimeout = fetchTimeout
        self.logger = logger
        self.machine = JWKSRefreshStateMachine(
            refreshInterval: refreshInterval,
            minimumFetchInterval: minimumFetchInterval
        )
    }

    /// The collection holding the key `kid`, fetching the set first when the machine says so.
    /// - Throws: `JWTError` `unknownKey` when the set (after any fetch) has no such key, `unsupportedAlgorithm`
    ///   when the key is for another algorithm.
    func keys(for kid: String, algorithm: JWTAuthenticator.Algorithm) async throws(JWTError) -> JWTKeyCollection {
        let need: JWKSRefreshStateMachine.Need = self.current?.keys[kid] == nil ? .unknownKey : .knownKey
        switch self.machine.keysNeeded(need, at: .now()) {
        case .useCurrent:
            break
        case .waitForFetch:
            await withCheckedContinuation { self.waiters.append($0) }
        case .fetch:
            await self.refresh()
        }
        guard let set = self.current, let key = set.keys[kid] else {
            throw JWTError(
                code: .unknownKey,
                detail: "kid \(LogSafe.text(kid, limit: 64)) is not in the key set (\(self.location.description))"
            )
        }
        guard key.algorithm == algorithm else {
            throw JWTError(
                code: .unsupportedAlgorithm,
                detail: "key \(LogSafe.text(kid, limit: 64)) is for \(key.algorithm), the token says \(algorithm)"
            )
        }
        return set.collection
    }

    /// Fetches the set now unless a fetch runs or ran less than the minimum interval ago.
    /// - Returns: Why the fetch failed, or nil.
    func load() async -> String? {
        guard case .fetch = self.machine.keysNeeded(.unknownKey, at: .now()) else { return nil }
        return await self.refresh().map { "\($0)" }
    }

    @discardableResult
    private func refresh() async -> (any Error)? {
        var failure: (any Error)?
        do {
            let bytes = try await JWKSFetcher.fetch(self.location, timeout: self.fetchTimeout)
            let set = try await self.load(bytes)
            self.current = set
            self.machine.fetchSucceeded(at: .now())
            self.logger.debug(
                "JWT key set loaded",
                metadata: ["source": "\(self.location.description)", "kids": "\(set.keys.keys.sorted())"]
            )
        } catch {
            failure = error
            self.machine.fetchFailed(at: .now())
            self.logger.warning(
                "JWT key set refresh failed; keeping the last good set",
                metadata: [
                    "source": "\(self.location.description)", "error": "\(error)",
                    "kept": "\(self.current.map { "\($0.keys.count) keys" } ?? "none")",
                ]
            )
        }
        let waiters = self.waiters
        self.waiters = []
        for waiter in waiters { waiter.resume() }
        return failure
    }

    /// Parses a set, keeping the keys that have a `kid`, a supported type and valid material.
    private func load(_ bytes: [UInt8]) async throws(JWKSFetchError) -> LoadedSet {
        guard let document = try? JSONValue.parse(bytes), case .array(let entries)? = document["keys"] else {
            throw JWKSFetchError(message: "\(self.location.description) is not a JSON object with a keys array")
        }
        let collection = JWTKeyCollection()
        var keys: [String: Key] = [:]
        for entry in entries {
            guard case .string(let kid)? = entry["kid"] else {
                self.logger.debug("JWT key set: key without kid skipped")
                continue
            }
            do {
                var jwk = try JSONDecoder().decode(JWK.self, from: Data(entry.jsonString.utf8))
                guard let algorithm = Self.algorithm(of: jwk) else {
                    self.logger.debug("JWT key set: key of an unsupported type skipped", metadata: ["kid": "\(kid)"])
                    continue
                }
                if jwk.algorithm == nil { jwk.algorithm = JWK.Algorithm(rawValue: algorithm.name) }
                try await collection.add(jwk: jwk)
                keys[kid] = Key(algorithm: algorithm)
            } catch {
                self.logger.warning(
                    "JWT key set: unusable key skipped",
                    metadata: ["kid": "\(LogSafe.text(kid, limit: 64))", "error": "\(error)"]
                )
            }
        }
        guard !keys.isEmpty else {
            throw JWKSFetchError(message: "\(self.location.description) holds no usable key with a kid")
        }
        return LoadedSet(collection: collection, keys: keys)
    }

    /// The algorithm a key verifies, or nil for a key this server does not use.
    private static func algorithm(of jwk: JWK) -> JWTAuthenticator.Algorithm? {
        if let name = jwk.algorithm?.rawValue {
            guard let algorithm = JWTAuthenticator.Algorithm(name: name), algorithm.name == name,
                !algorithm.isHMAC
            else { return nil }
            return algorithm
        }
        switch jwk.keyType {
        case .rsa: return .rs256
        case .ecdsa:
            switch jwk.curve?.rawValue {
            case "P-256": return .es256
            case "P-384": return .es384
            case "P-521": return .es512
            default: return nil
            }
        case .octetKeyPair: return jwk.curve?.rawValue == "Ed25519" ? .eddsa : nil
        default: return nil
        }
    }
}
