import Foundation
import JWTKit
import SocketGatewayCore
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

#if canImport(Glibc)
import Glibc
#endif

/// Key sets (JWKS) from a file and from a real HTTP server on 127.0.0.1 (`python3 -m http.server`): tokens pick
/// their key by `kid`, a rotated-in key is picked up by its kid, fetches are bounded, a failed refresh keeps the last
/// good set.
@Suite struct JWKSTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let valid: JSONValue = ["sub": "42", "exp": .int(1_800_000_060)]

    /// A key of each kind with its JWK (public part) and a collection that signs with it under its kid.
    struct TestKey {
        var kid: String
        var jwk: JSONValue
        var signer: JWTKeyCollection

        func token(_ claims: JSONValue = JWKSTests.valid) async throws -> String {
            try await TestTokens.sign(claims, with: self.signer, kid: self.kid)
        }

        static func ec(_ kid: String) async throws -> TestKey {
            let key = ES256PrivateKey()
            let parameters = try #require(key.publicKey.parameters)
            return TestKey(
                kid: kid,
                jwk: [
                    "kty": "EC", "crv": "P-256", "kid": .string(kid), "use": "sig", "x": .string(parameters.x),
                    "y": .string(parameters.y),
                ],
                signer: await JWTKeyCollection().add(ecdsa: key, kid: JWKIdentifier(string: kid))
            )
        }

        static func rsa(_ kid: String) async throws -> TestKey {
            let pem = try await OpenSSLKeys.rsa()
            let key = try Insecure.RSA.PrivateKey(pem: pem.privatePEM)
            let primitives = try key.publicKey.getKeyPrimitives()
            return TestKey(
                kid: kid,
                jwk: [
                    "kty": "RSA", "alg": "RS256", "kid": .string(kid), "use": "sig",
                    "n": .string(Base64.encodeToString(Array(primitives.modulus), urlSafe: true)),
                    "e": .string(Base64.encodeToString(Array(primitives.publicExponent), urlSafe: true)),
                ],
                signer: await JWTKeyCollection().add(
                    rsa: key,
                    digestAlgorithm: .sha256,
                    kid: JWKIdentifier(string: kid)
                )
            )
        }

        static func ed25519(_ kid: String) async throws -> TestKey {
            let key = try EdDSA.PrivateKey()
            return TestKey(
                kid: kid,
                jwk: [
                    "kty": "OKP", "crv": "Ed25519", "kid": .string(kid),
                    "x": .string(Base64.encodeToString(Array(key.publicKey.rawRepresentation), urlSafe: true)),
                ],
                signer: await JWTKeyCollection().add(eddsa: key, kid: JWKIdentifier(string: kid))
            )
        }
    }

    static func write(_ keys: [TestKey], to path: String) throws {
        let document: JSONValue = ["keys": .array(keys.map(\.jwk))]
        try Data(document.jsonString.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    func authenticator(
        _ source: JWTAuthenticator.KeySetSource,
        minimumFetchInterval: Duration = .seconds(3600),
        audiences: [String] = []
    ) throws -> JWTAuthenticator {
        let fixed = Self.now
        return try JWTAuthenticator(
            configuration: .init(
                keySet: source,
                audiences: audiences,
                keySetRefreshInterval: .seconds(3600),
                keySetMinimumFetchInterval: minimumFetchInterval
            ),
            now: { fixed }
        )
    }

    func code(_ authenticator: JWTAuthenticator, _ token: String) async -> JWTError.Code? {
        do {
            _ = try await authenticator.verify(auth: ["token": .string(token)])
            return nil
        } catch {
            return error.code
        }
    }

    /// Verifies until accepted (a refetch may be throttled by a minimum interval of a millisecond), bounded.
    func eventuallyAccepted(_ authenticator: JWTAuthenticator, _ token: String) async throws -> JWTError.Code? {
        var last: JWTError.Code?
        for _ in 0..<50 {
            last = await self.code(authenticator, token)
            if last == nil { return nil }
            try await Task.sleep(for: .milliseconds(10))
        }
        return last
    }

    /// Whether a forced load of the key set fails (a millisecond minimum interval may throttle one), bounded.
    func eventuallyFails(_ authenticator: JWTAuthenticator) async throws -> Bool {
        for _ in 0..<50 {
            if await authenticator.loadKeySet() != nil { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test func aKeySetFileHoldsKeysOfEveryKindAndRotationIsPickedUpByKid() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("jwks.json")
        let ec = try await TestKey.ec("ec-1")
        let ed = try await TestKey.ed25519("ed-1")
        let rotated = try await TestKey.ec("ec-2")
        try Self.write([ec, ed], to: path)
        let authenticator = try self.authenticator(.file(path), minimumFetchInterval: .milliseconds(1))
        #expect(await self.code(authenticator, try await ec.token()) == nil)
        #expect(await self.code(authenticator, try await ed.token()) == nil)
        // A token naming a key the set lacks; a token without kid; a token whose kid names another key.
        #expect(await self.code(authenticator, try await rotated.token()) == .unknownKey)
        let noKid = try await TestTokens.sign(Self.valid, with: await JWTKeyCollection().add(ecdsa: ES256PrivateKey()))
        #expect(await self.code(authenticator, noKid) == .unknownKey)
        var impostor = rotated
        impostor.kid = "ec-1"
        impostor.signer = await JWTKeyCollection().add(ecdsa: ES256PrivateKey(), kid: "ec-1")
        #expect(await self.code(authenticator, try await impostor.token()) == .badSignature)
        // A token that names an EC key but says EdDSA.
        var mislabelled = ed
        mislabelled.kid = "ec-1"
        #expect(await self.code(authenticator, try await mislabelled.token()) == .unsupportedAlgorithm)
        // The identity provider rotates: ec-2 in, ec-1 out.
        try Self.write([rotated, ed], to: path)
        #expect(try await self.eventuallyAccepted(authenticator, try await rotated.token()) == nil)
        #expect(await self.code(authenticator, try await ec.token()) == .unknownKey)
        // The file becomes unreadable JSON: the refresh fails, the last good set stays.
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
        let unknown = try await TestKey.ec("ec-3")
        #expect(await self.code(authenticator, try await unknown.token()) == .unknownKey)
        #expect(await self.code(authenticator, try await rotated.token()) == nil)
        #expect(try await self.eventuallyFails(authenticator))
        #expect(await self.code(authenticator, try await ed.token()) == nil)
    }

    @Test func aKeySetServedOverHTTPIsFetchedBoundedAndKeptWhenTheServerIsGone() async throws {
        let directory = try TemporaryDirectory()
        let rsa = try await TestKey.rsa("rsa-1")
        let ec = try await TestKey.ec("ec-1")
        let later = try await TestKey.ec("ec-2")
        try Self.write([rsa, ec], to: directory.path("jwks.json"))
        let server = try await LocalHTTPServer.start(directory: directory)
        let url = "http://127.0.0.1:\(server.port)/jwks.json"

        // At most one fetch per minimum interval (an hour here), however many unknown kids arrive.
        let throttled = try self.authenticator(.url(url), audiences: ["socket"])
        let token = try await rsa.token(["sub": "42", "exp": .int(1_800_000_060), "aud": ["web", "socket"]])
        #expect(await self.code(throttled, token) == nil)
        #expect(
            await self.code(throttled, try await ec.token(["sub": "7", "exp": .int(1_800_000_060), "aud": "socket"]))
                == nil
        )
        #expect(
            await self.code(throttled, try await rsa.token(["sub": "42", "exp": .int(1_800_000_060), "aud": "web"]))
                == .wrongAudience
        )
        for _ in 0..<20 {
            #expect(await self.code(throttled, try await later.token()) == .unknownKey)
        }
        #expect(try server.requestCount() == 1)

        // With a short minimum interval, a rotated-in key is fetched when a token names it.
        let rotating = try self.authenticator(.url(url), minimumFetchInterval: .milliseconds(1))
        #expect(await self.code(rotating, try await rsa.token()) == nil)
        try Self.write([rsa, ec, later], to: directory.path("jwks.json"))
        #expect(try await self.eventuallyAccepted(rotating, try await later.token()) == nil)
        let fetches = try server.requestCount()
        #expect(fetches >= 3)

        // The server goes away: refreshes fail, the last good set keeps working.
        await server.stop()
        let unknown = try await TestKey.ec("ec-3")
        #expect(await self.code(rotating, try await unknown.token()) == .unknownKey)
        #expect(try await self.eventuallyFails(rotating))
        #expect(await self.code(rotating, try await later.token()) == nil)
        #expect(await self.code(rotating, try await rsa.token()) == nil)
    }
}

/// A temporary directory removed when the value is deinitialised.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { self.url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: self.url) }
}

/// `python3 -m http.server` serving a directory on 127.0.0.1 and a free port; its request log counts fetches.
final class LocalHTTPServer: @unchecked Sendable {
    let port: Int
    private let process: Process
    private let logPath: String

    private init(port: Int, process: Process, logPath: String) {
        self.port = port
        self.process = process
        self.logPath = logPath
    }

    /// Kills a server the test did not stop (a test that threw); Foundation reaps it.
    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
    }

    /// Starts the server and waits (bounded: 10 s) until it reports its port.
    static func start(directory: TemporaryDirectory) async throws -> LocalHTTPServer {
        let logs = try TemporaryDirectory()
        let stdoutPath = logs.path("stdout")
        let logPath = directory.path("requests.log")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", directory.url.path]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..." — wait for it, bounded.
        for _ in 0..<200 {
            let text = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
            if let range = text.range(of: " port "), let port = Int(text[range.upperBound...].prefix { $0.isNumber }) {
                return LocalHTTPServer(port: port, process: process, logPath: logPath)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(process.processIdentifier, SIGKILL)
        _ = await ChildProcess.waitForExit(process)
        throw LocalHTTPServerError(message: "python3 -m http.server did not report its port within 10 s")
    }

    /// How many GETs the server answered so far.
    func requestCount() throws -> Int {
        let log = try String(contentsOfFile: self.logPath, encoding: .utf8)
        return log.split(separator: "\n").filter { $0.contains("\"GET /jwks.json") }.count
    }

    /// Stops the server with SIGKILL (a child of the test process inherits its blocked signals, so SIGTERM may
    /// never arrive) and waits (bounded: 10 s) until it has exited.
    func stop() async {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGKILL)
        _ = await ChildProcess.waitForExit(self.process)
    }

    struct LocalHTTPServerError: Error {
        var message: String
    }
}
