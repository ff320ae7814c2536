import JWTKit
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketGatewayCore
import SocketGatewayRedisTestKit
import Testing

@testable import SocketGatewayServer

/// A key set fetched from an identity provider that misbehaves (a real NIO server on 127.0.0.1, see
/// ``HostileJWKSServer``): it trickles the set, never answers, sends more than the 1 MiB cap, sends a head that
/// never ends, sends garbage, or redirects in a loop. Every refetch ends with an error naming the limit that ended
/// it, the keys loaded before keep verifying (also while the hostile fetch runs), a token with an unknown kid is
/// refused with the reason logged, and the client stops reading at the cap.
@Suite struct JWKSHostileServerTests {
    enum Attack: String, CaseIterable, CustomTestStringConvertible {
        case trickle, silent, oversized, endlessHeaders, garbage, redirectLoop

        var testDescription: String { self.rawValue }

        /// What the server does; `set` is a valid key set (the trickle sends it, too slowly to finish).
        func behaviour(set: [UInt8]) -> HostileJWKSServer.Behaviour {
            switch self {
            case .trickle: .trickle(set, interval: .milliseconds(100))
            case .silent: .silent
            case .oversized: .oversized(bytes: 64 << 20)
            case .endlessHeaders: .endlessHeaders
            case .garbage:
                .serve(Array("{\"keys\": [{\"kid\": ".utf8) + Array(repeating: UInt8(ascii: "["), count: 4096))
            case .redirectLoop: .redirectLoop
            }
        }

        /// A part of the fetch error that says which limit or fault ended the fetch.
        var expectedError: String {
            switch self {
            case .trickle, .silent: "no complete response within"
            case .oversized: "more than \(JWKSFetcher.maxBytes) bytes"
            case .endlessHeaders: "too many header bytes seen"
            case .garbage: "is not a JSON object with a keys array"
            case .redirectLoop: "answered 302 Found"
            }
        }
    }

    @Test(arguments: Attack.allCases)
    func aHostileKeySetServerEndsTheFetchAtItsLimitAndLoadedKeysKeepWorking(_ attack: Attack) async throws {
        let known = try await JWKSTests.TestKey.ec("known")
        let rotated = try await JWKSTests.TestKey.ec("rotated")
        let set = Array(JSONValue.object([("keys", .array([known.jwk, rotated.jwk]))]).jsonString.utf8)
        let good = Array(JSONValue.object([("keys", .array([known.jwk]))]).jsonString.utf8)
        let server = try await HostileJWKSServer(.serve(good))
        let lines = NIOLockedValueBox<[CapturingLogHandler.Line]>([])
        let logger = Logger(label: "jwks-hostile") { _ in CapturingLogHandler(lines: lines) }
        let fixed = JWKSTests.now
        let authenticator = try JWTAuthenticator(
            configuration: .init(
                keySet: .url(server.url),
                keySetRefreshInterval: .seconds(3600),
                keySetMinimumFetchInterval: .milliseconds(1),
                keySetFetchTimeout: .seconds(5)  // room for 1 MiB to arrive on a loaded machine
            ),
            logger: logger,
            now: { fixed }
        )
        #expect(await authenticator.loadKeySet() == nil)
        #expect(try await Self.code(authenticator, known.token()) == nil)

        // The provider turns hostile; a token naming a key the set lacks starts a refetch.
        server.behaviour = attack.behaviour(set: set)
        let requestsBefore = server.requests
        let rotatedToken = try await rotated.token()
        async let refused = authenticator.authenticate(
            auth: ["token": .string(rotatedToken)],
            handshake: SocketHandshake(auth: nil)
        )
        // While that fetch hangs on the hostile server, a token whose key is loaded is verified without waiting.
        for _ in 0..<500 where server.requests == requestsBefore {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.requests == requestsBefore + 1)
        #expect(try await Self.code(authenticator, known.token()) == nil)
        #expect(await refused == nil)

        // One request (a redirect is not followed), the error names the limit, the refusal names its reason.
        #expect(server.requests == requestsBefore + 1)
        // The failure is logged as the fetch ends, which may trail the refusal (bounded wait).
        for _ in 0..<500 where !lines.withLockedValue({ $0 }).contains(where: { $0.message.contains("refresh failed") })
        {
            try await Task.sleep(for: .milliseconds(10))
        }
        let logged = lines.withLockedValue { $0 }
        let failure = logged.first { $0.message.contains("JWT key set refresh failed") }
        #expect(failure?.text.contains(attack.expectedError) == true, "\(failure?.text ?? "no refresh failure logged")")
        #expect(failure?.text.contains("kept=1 keys") == true)
        let refusal = logged.first { $0.message.contains("socket.io client refused: invalid token") }
        #expect(refusal?.text.contains("reason=unknownKey") == true, "\(refusal?.text ?? "no refusal logged")")
        #expect(refusal?.text.contains("kid rotated is not in the key set") == true)
        if attack == .oversized {
            // The client stopped reading at the cap: the server got far less than its 64 MiB onto the wire.
            #expect(server.bodyBytesWritten < 16 << 20, "\(server.bodyBytesWritten) bytes written")
        }

        // The loaded key still works; once the provider recovers, the rotated key is fetched by its kid.
        #expect(try await Self.code(authenticator, known.token()) == nil)
        server.behaviour = .serve(set)
        var code: JWTError.Code? = .unknownKey
        for _ in 0..<50 where code != nil {
            code = try await Self.code(authenticator, rotated.token())
            if code != nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(code == nil)
        await server.stop()
    }

    /// The refusal code of verifying `token`, or nil when it was accepted.
    static func code(_ authenticator: JWTAuthenticator, _ token: String) async -> JWTError.Code? {
        do {
            _ = try await authenticator.verify(auth: ["token": .string(token)])
            return nil
        } catch {
            return error.code
        }
    }
}
